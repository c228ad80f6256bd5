"""Hole punching (p2p/relay/holepunch.py) between our nodes on 127.0.0.1.

Three of our nodes: R serves Circuit Relay v2, A holds a reservation on it, B dials A by
its circuit address. A received the relayed connection, so A starts DCUtR; both dial from
their listen ports and a direct connection replaces the relayed one, which then carries
a transfer larger than the relay allows. On loopback nothing stands in the way of a dial,
so this shows the exchange, the roles and the switch of paths; the NAT lab
(tests/nat/test_holepunch_nat.py) shows the punch through NATs. Malformed, oversized and
out-of-turn messages are refused, and so is a DCUtR stream on a direct connection.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
import trio
from libp2p.custom_types import TProtocol

from ipfs_mcp.backends.core import varint
from ipfs_mcp.backends.errors import HolePunchError
from ipfs_mcp.p2p import P2PNode
from ipfs_mcp.p2p._net import NET_ERRORS, FrameReader, frame
from ipfs_mcp.p2p.relay.holepunch import (
    CONNECT,
    MAX_MESSAGE,
    PROTOCOL,
    SYNC,
    HolePunchConfig,
    HolePunchMessage,
    read_message,
)
from ipfs_mcp.p2p.relay.limits import direct_connections, is_limited, wait_direct

from .nodes import FAST, add_bytes, node_at, repo_at

pytestmark = pytest.mark.anyio


async def _reserved(node: P2PNode) -> None:
    with trio.fail_after(30):
        while not node.relay.reservations():
            await node.relay.changed()


def _remote(conn: object) -> str:
    return " ".join(str(a) for a in conn.get_transport_addresses())  # type: ignore[attr-defined]


async def test_a_relayed_connection_is_hole_punched_to_a_direct_one_that_carries_bulk(
        tmp_path: Path) -> None:
    async with node_at(tmp_path / "r", replace(FAST, relay_service=True)) as relay:
        reserving = replace(FAST, relays=(relay.addrs[0],))
        async with node_at(tmp_path / "a", reserving) as a, node_at(tmp_path / "b") as b:
            await _reserved(a)
            a_id, b_id = a.host.get_id(), b.host.get_id()
            for node in (a, b):  # a round lost to the race below costs 3 s, not 10
                node.holepunch.config = HolePunchConfig(dial_timeout=3.0)
            # Larger than the relay's 128 KiB per direction: it can only travel direct.
            cid = add_bytes(repo_at(tmp_path / "a"), os.urandom(600_000))
            circuit = f"{relay.addrs[0]}/p2p-circuit/p2p/{a.peer_id}"
            with trio.fail_after(30):
                await b.connect_peer(circuit)
            assert any(is_limited(c) for c in b.host.get_network().get_connections(a_id))
            with trio.fail_after(60):
                assert await wait_direct(b.host, a_id, 50)
                assert await wait_direct(a.host, b_id, 50)
            for node, other in ((a, b_id), (b, a_id)):
                direct = direct_connections(node.host, other)
                assert direct and all("p2p-circuit" not in _remote(c) for c in direct)
            with trio.fail_after(60):
                for node in (a, b):  # each round's end is recorded right after its dial
                    while not any(p.direct for p in node.holepunch.punches):
                        await node.holepunch.recorded()
            initiated = a.holepunch.punches[-1]
            answered = next(p for p in b.holepunch.punches if p.direct)
            assert (initiated.role, initiated.direct, initiated.peer) == (
                "initiator", True, b.peer_id)
            # Without NATs the initiator's dial may reach the responder's listener before
            # the responder dials: both then wait as noise responders and the round times
            # out (through NATs that SYN is dropped or meets the other as one connection).
            # The next round settles it.
            assert 1 <= initiated.rounds <= 3 and initiated.rtt is not None
            assert (answered.role, answered.direct) == ("responder", True)
            # New streams take the direct connection: the whole DAG arrives, verified.
            with trio.fail_after(60):
                report = await b.fetch_dag(cid, providers=[a.peer_id])
            assert report.bytes_fetched >= 600_000


async def test_the_relayed_connection_closes_after_the_grace_period(tmp_path: Path) -> None:
    async with node_at(tmp_path / "r", replace(FAST, relay_service=True)) as relay:
        reserving = replace(FAST, relays=(relay.addrs[0],))
        async with node_at(tmp_path / "a", reserving) as a, node_at(tmp_path / "b") as b:
            a.holepunch.config = HolePunchConfig(relay_grace=0.0)
            await _reserved(a)
            with trio.fail_after(30):
                await b.connect_peer(f"{relay.addrs[0]}/p2p-circuit/p2p/{a.peer_id}")
            network = a.host.get_network()
            with trio.fail_after(60):
                # Bounded by the fail_after: each pass waits for the next swarm change.
                while any(is_limited(c) for c in network.get_connections(b.host.get_id())) \
                        or not direct_connections(a.host, b.host.get_id()):
                    await trio.sleep(0.05)


async def test_a_dcutr_stream_on_a_direct_connection_is_refused(tmp_path: Path) -> None:
    async with node_at(tmp_path / "a") as a, node_at(tmp_path / "b") as b:
        with trio.fail_after(30):
            await a.connect_peer(b.addrs[0])
            # B resets the stream as it opens (the open fails) or before answering.
            with pytest.raises((HolePunchError, *NET_ERRORS)):
                stream = await a.host.new_stream(b.host.get_id(), [PROTOCOL])
                await stream.write(frame(HolePunchMessage(
                    type=CONNECT, ObsAddrs=[b"\x04\x7f\x00\x00\x01\x06\x0f\xa1"]
                ).SerializeToString()))
                await read_message(FrameReader(stream, MAX_MESSAGE), CONNECT)
        assert not b.holepunch.punches  # refused before any exchange


class _Bytes:
    """A stream that reads out fixed bytes, then ends: what a lying peer sent."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def read(self, n: int | None = None) -> bytes:
        n = len(self._data) if n is None else n
        out, self._data = self._data[:n], self._data[n:]
        return out


@pytest.mark.parametrize(("sent", "expected", "says"), [
    (varint.encode(MAX_MESSAGE + 1) + b"\0" * 16, CONNECT, "cap"),
    (frame(b"\xff\xff\xff"), CONNECT, "malformed"),
    (frame(HolePunchMessage(type=SYNC).SerializeToString()), CONNECT, "expected CONNECT"),
    (frame(HolePunchMessage(type=CONNECT).SerializeToString())[:-1], SYNC, "inside"),
    (b"", CONNECT, "closed"),
], ids=["oversized", "garbage", "out-of-turn", "cut-short", "ended"])
async def test_a_lying_peers_dcutr_messages_are_refused(sent: bytes, expected: int,
                                                         says: str) -> None:
    with pytest.raises(HolePunchError, match=says):
        await read_message(FrameReader(_Bytes(sent), MAX_MESSAGE), expected)  # type: ignore[arg-type]


def test_the_protocol_id_is_kubos() -> None:
    assert PROTOCOL == TProtocol("/libp2p/dcutr")
