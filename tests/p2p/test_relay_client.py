"""The Circuit Relay v2 client against Kubo 0.43.1 as the relay, on loopback.

A Kubo with ``Swarm.RelayService`` and ``Internal.Libp2pForceReachability=public`` grants
reservations and relays circuits between peers on 127.0.0.1 (go-libp2p's relay service does
not look at whether addresses are public; only its client side and hole punching do). Our
node A reserves a slot on it; our node B dials A by ``<relay>/p2p-circuit/p2p/<A>`` and
fetches a small file, verified; a Kubo dials A the same way. Failures say why: a relay that
refuses, a peer that is no relay, a relay that is down, content over a limited connection's
budget.
"""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import anyio
import pytest
import trio
from libp2p.abc import INetStream
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from multiaddr import Multiaddr

from ipfs_mcp.backends.core import varint
from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.core.exporter import Exporter
from ipfs_mcp.backends.errors import RelayError, RelayLimitExceeded
from ipfs_mcp.p2p import P2PNode
from ipfs_mcp.p2p.host import peer_info_from_addr
from ipfs_mcp.p2p.relay.circuit_dial import parse_circuit
from ipfs_mcp.p2p.relay.limits import direct_connections, is_limited, relayed
from ipfs_mcp.p2p.relay.wire import (
    HOP_PROTOCOL,
    STOP_PROTOCOL,
    Status,
    StopMessage,
    read_hop,
    read_stop,
    stop_connect,
    write_message,
)

from .nodes import FAST, add_bytes, node_at, repo_at

pytestmark = pytest.mark.anyio

DCUTR = TProtocol("/libp2p/dcutr")  # hole punching (relay/holepunch.py)

# What Kubo's relay service needs to relay on loopback: its service on, and told it is
# public (otherwise it never starts the service: it waits for AutoNAT to say public).
RELAY_CONFIG = {
    "Swarm.RelayService.Enabled": True,
    "Internal.Libp2pForceReachability": "public",
}


@pytest.fixture(scope="module")
def kubo_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from interop.kubo_daemon import KuboDaemon

    with KuboDaemon(tmp_path_factory.mktemp("relay"), config=RELAY_CONFIG) as relay:
        yield relay


def relay_addr(relay: object) -> str:
    return str(relay.dial_addr)  # type: ignore[attr-defined]


def circuit_to(relay: object, peer: str) -> str:
    return f"{relay_addr(relay)}/p2p-circuit/p2p/{peer}"


@asynccontextmanager
async def reserved_node(path: Path, relay: object) -> AsyncIterator[P2PNode]:
    """Our node with ``--relay`` on the Kubo relay, once its reservation is held."""
    async with node_at(path, replace(FAST, relays=(relay_addr(relay),))) as node:
        with trio.fail_after(30):
            while not node.relay.reservations():
                await node.relay.changed()
        yield node


async def test_a_node_reserves_and_another_fetches_from_it_through_the_kubo_relay(
        kubo_relay: object, tmp_path: Path) -> None:
    data = os.urandom(6000)
    async with reserved_node(tmp_path / "a", kubo_relay) as a, \
            node_at(tmp_path / "b") as b:
        granted = next(iter(a.relay.reservations().values()))
        assert granted.limit.data_bytes == 128 << 10 and granted.limit.duration_s == 120
        # A advertises its circuit address (identify, provider records).
        relay_id = kubo_relay.peer_id  # type: ignore[attr-defined]
        assert any(f"/p2p/{relay_id}/p2p-circuit/p2p/{a.peer_id}" in x for x in a.addrs)
        cid = add_bytes(repo_at(tmp_path / "a"), data)
        # No hole punch: on loopback it would replace the circuit this test looks at.
        b.host.remove_stream_handler(DCUTR)
        with trio.fail_after(60):
            await b.connect_peer(circuit_to(kubo_relay, a.peer_id))
            conns = b.host.get_network().get_connections(ID.from_base58(a.peer_id))
            assert conns and all(is_limited(c) for c in conns)
            report = await b.fetch_dag(cid, providers=[a.peer_id])
        assert report.blocks >= 1
        assert repo_at(tmp_path / "b").blocks.get(cid) == repo_at(tmp_path / "a").blocks.get(cid)
        # A saw it as relayed too, and counted it.
        back = a.host.get_network().get_connections(ID.from_base58(b.peer_id))
        circuit = relayed(back[0]) if back else None
        assert circuit is not None and circuit.sent > len(data)


async def test_a_kubo_dials_our_node_through_the_relay(
        kubo_relay: object, tmp_path: Path) -> None:
    from interop.kubo_daemon import KuboDaemon

    data = os.urandom(3000)
    async with reserved_node(tmp_path / "a", kubo_relay) as a:
        cid = add_bytes(repo_at(tmp_path / "a"), data)
        kubo = await anyio.to_thread.run_sync(lambda: KuboDaemon(tmp_path / "kubo"))
        try:
            with trio.fail_after(60):
                await anyio.to_thread.run_sync(
                    lambda: kubo.connect(circuit_to(kubo_relay, a.peer_id)))
                got = await anyio.to_thread.run_sync(
                    lambda: kubo.cli("cat", cid_str(cid), timeout=30))
        finally:
            await anyio.to_thread.run_sync(kubo.close)
    assert got == data


async def test_a_peer_without_a_reservation_is_refused_with_the_relays_reason(
        kubo_relay: object, tmp_path: Path) -> None:
    nobody = ID.from_pubkey(create_new_key_pair().public_key)
    async with node_at(tmp_path / "b") as b:
        with trio.fail_after(30), pytest.raises(RelayError) as caught:
            await b.connect_peer(circuit_to(kubo_relay, str(nobody)))
    assert caught.value.status == "NO_RESERVATION"
    assert "no reservation" in str(caught.value)


async def test_a_peer_that_is_no_relay_refuses_a_reservation_clearly(tmp_path: Path) -> None:
    async with node_at(tmp_path / "plain") as plain, node_at(tmp_path / "a") as a:
        assert HOP_PROTOCOL not in plain.host.get_mux().handlers
        with trio.fail_after(30), pytest.raises(RelayError, match="is not a relay"):
            await a.relay.reserve(peer_info_from_addr(plain.addrs[0]))
        assert a.relay.reservations() == {}


async def test_a_circuit_through_a_relay_that_is_down_fails_fast_and_says_so(
        tmp_path: Path) -> None:
    # A port nothing listens on: bound, then closed.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    relay = ID.from_pubkey(create_new_key_pair().public_key)
    target = ID.from_pubkey(create_new_key_pair().public_key)
    async with node_at(tmp_path / "b") as b:
        with trio.fail_after(20), pytest.raises(RelayError, match="unreachable"):
            await b.connect_peer(f"/ip4/127.0.0.1/tcp/{port}/p2p/{relay}/p2p-circuit/p2p/{target}")


async def test_content_over_the_relays_budget_is_refused_when_the_peer_cannot_hole_punch(
        kubo_relay: object, tmp_path: Path) -> None:
    data = os.urandom(400 << 10)  # over Kubo's 128 KiB per relayed connection
    async with reserved_node(tmp_path / "a", kubo_relay) as a, \
            node_at(tmp_path / "b", replace(FAST, relay_direct_wait=1.0)) as b:
        # B speaks no DCUtR (as a peer with hole punching off): the circuit stays the only way.
        b.host.remove_stream_handler(DCUTR)
        cid = add_bytes(repo_at(tmp_path / "a"), data)
        with trio.fail_after(60):
            await b.connect_peer(circuit_to(kubo_relay, a.peer_id))
            with pytest.raises(RelayLimitExceeded) as caught:
                await b.fetch_dag(cid, providers=[a.peer_id])
        # Refused before the relay's limit was reached: the connection is still up.
        conns = b.host.get_network().get_connections(ID.from_base58(a.peer_id))
        circuit = relayed(conns[0]) if conns else None
        assert circuit is not None and circuit.received < circuit.limit.data_bytes
    message = str(caught.value)
    for words in ("only through a relay", "hole punching", "--relay-service", "port"):
        assert words in message


async def test_content_over_the_relays_budget_moves_over_the_hole_punched_connection(
        kubo_relay: object, tmp_path: Path) -> None:
    data = os.urandom(400 << 10)
    async with reserved_node(tmp_path / "a", kubo_relay) as a, \
            node_at(tmp_path / "b", replace(FAST, relay_direct_wait=30.0)) as b:
        cid = add_bytes(repo_at(tmp_path / "a"), data)
        peer = ID.from_base58(a.peer_id)
        with trio.fail_after(60):
            await b.connect_peer(circuit_to(kubo_relay, a.peer_id))
            circuit = relayed(b.host.get_network().get_connections(peer)[0])
            await b.fetch_dag(cid, providers=[a.peer_id])
        assert circuit is not None and circuit.received < circuit.limit.data_bytes
        assert direct_connections(b.host, peer)
    assert Exporter(repo_at(tmp_path / "b").blocks.get).read(cid) == data


async def test_a_lying_relay_that_announces_an_oversized_answer_is_refused(
        tmp_path: Path) -> None:
    async def lying_hop(stream: INetStream) -> None:
        await read_hop(stream)
        await stream.write(varint.encode(1 << 20) + b"\x00" * 64)  # 1 MiB, over the 4 KiB cap

    async with node_at(tmp_path / "liar") as liar, node_at(tmp_path / "a") as a:
        liar.host.set_stream_handler(HOP_PROTOCOL, lying_hop)
        with trio.fail_after(30), pytest.raises(RelayError) as caught:
            await a.relay.reserve(peer_info_from_addr(liar.addrs[0]))
    assert caught.value.status == "MALFORMED_MESSAGE" and "cap" in str(caught.value)
    assert a.relay.reservations() == {}


async def test_a_stop_connect_from_a_peer_we_hold_no_slot_on_is_refused(
        tmp_path: Path) -> None:
    async with node_at(tmp_path / "stranger") as stranger, node_at(tmp_path / "a") as a:
        await stranger.connect_peer(a.addrs[0])
        with trio.fail_after(30):
            stream = await stranger.host.new_stream(ID.from_base58(a.peer_id), [STOP_PROTOCOL])
            await write_message(stream, stop_connect(stranger.host.get_id()))
            answer = await read_stop(stream)
        assert answer.type == StopMessage.STATUS and answer.status == Status.PERMISSION_DENIED
        conns = a.host.get_network().get_connections(ID.from_base58(stranger.peer_id))
        assert conns and not any(relayed(c) for c in conns)  # only the direct one


async def test_a_silent_direct_address_does_not_hold_up_the_relayed_one(
        kubo_relay: object, tmp_path: Path) -> None:
    """A deliberately silent listener stands for a direct address behind a NAT that drops
    the dial: the relayed address is tried beside it and connects."""
    async def silent(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()  # accepts and never answers: the handshake hangs

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, silent, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        async with reserved_node(tmp_path / "a", kubo_relay) as a, \
                node_at(tmp_path / "b") as b:
            b.host.remove_stream_handler(DCUTR)
            peer = ID.from_base58(a.peer_id)
            circuit = parse_circuit(circuit_to(kubo_relay, a.peer_id)).for_target(peer)
            with trio.fail_after(30):
                await b.peers.connect(
                    PeerInfo(peer, [Multiaddr(f"/ip4/127.0.0.1/tcp/{port}"), circuit]),
                    timeout=20)
            conns = b.host.get_network().get_connections(peer)
            assert conns and all(is_limited(c) for c in conns)
        nursery.cancel_scope.cancel()
