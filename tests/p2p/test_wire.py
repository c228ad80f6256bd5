"""The bitswap wire format, checked with a raw libp2p peer that speaks it by hand.

The raw peer is a real host (noise, yamux) whose only bitswap logic is this test's: it
writes length-prefixed messages built by the encoder and reads what our node sends back.
Replies must arrive on a stream our node opens (Kubo never reads the requester's stream),
in the dialect the peer registered.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio.testing
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.custom_types import TProtocol
from libp2p.network.stream.exceptions import StreamClosed, StreamEOF, StreamReset
from multiaddr import Multiaddr
from multiformats import varint

from ipfs_mcp.backends.core.cids import cid_of_block, make_cid
from ipfs_mcp.p2p._net import FrameReader, frame
from ipfs_mcp.p2p.bitswap.message import (
    MAX_MESSAGE_SIZE,
    PROTOCOL_100,
    PROTOCOL_110,
    PROTOCOL_120,
    Message,
    Payload,
    Presence,
    WantEntry,
    WantType,
    block_cid,
    decode_message,
    encode_message,
)
from ipfs_mcp.p2p.host import build_host, peer_info_from_addr

from .nodes import FAST, node_at, repo_at

pytestmark = pytest.mark.anyio


class RawPeer:
    def __init__(self, protocols: tuple[str, ...]) -> None:
        self.host = build_host(create_new_key_pair(), FAST)
        self.inbox: trio.MemorySendChannel[Message]
        self.inbox, self.received = trio.open_memory_channel[Message](100)
        self.protocols_seen: list[str] = []
        for proto in protocols:
            self.host.set_stream_handler(TProtocol(proto), self._handle)

    async def _handle(self, stream: object) -> None:
        self.protocols_seen.append(str(stream.get_protocol()))  # type: ignore[attr-defined]
        reader = FrameReader(stream, MAX_MESSAGE_SIZE)  # type: ignore[arg-type]
        try:
            while (body := await reader.next()) is not None:
                await self.inbox.send(decode_message(body))
        except Exception:  # the node closes its stream when it stops
            return

    async def send(self, node_peer: object, msg: Message, protocol: str = PROTOCOL_120,
                   raw: bytes | None = None) -> object:
        stream = await self.host.new_stream(node_peer, [TProtocol(protocol)])  # type: ignore[arg-type]
        await stream.write(raw if raw is not None else frame(encode_message(msg, protocol)))
        return stream

    async def next(self) -> Message:
        with trio.fail_after(10):
            return await self.received.receive()


async def read_to_end(stream: object) -> bytes:
    """Everything the other side writes on ``stream`` until it closes its end."""
    out = b""
    with trio.fail_after(10):
        while True:
            try:
                chunk = await stream.read(65536)  # type: ignore[attr-defined]
            except StreamEOF:
                return out
            if not chunk:
                return out
            out += chunk


@asynccontextmanager
async def raw_peer(protocols: tuple[str, ...] = (PROTOCOL_120,)) -> AsyncIterator[RawPeer]:
    peer = RawPeer(protocols)
    async with peer.host.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        try:
            yield peer
        finally:
            with trio.CancelScope(shield=True):
                await peer.host.close()


async def test_want_have_want_block_and_dont_have_on_our_own_stream(tmp_path: Path) -> None:
    small, big = b"tiny block", b"b" * 300_000
    present, large = cid_of_block(small), cid_of_block(big)
    absent = cid_of_block(b"not here")
    repo = repo_at(tmp_path / "n")
    repo.blocks.put(present, small)
    repo.blocks.put(large, big)
    with trio.fail_after(30):
        async with node_at(tmp_path / "n") as node, raw_peer() as peer:
            target = peer_info_from_addr(node.addrs[0])
            await peer.host.connect(target)
            mine = await peer.send(target.peer_id, Message(wants=[
                WantEntry(present, WantType.HAVE, send_dont_have=True),
                WantEntry(absent, WantType.HAVE, send_dont_have=True),
                WantEntry(absent, WantType.BLOCK, send_dont_have=True),
            ]))
            reply = await peer.next()
            assert sorted((bytes(c), p) for c, p in reply.presences) == sorted(
                [(bytes(present), Presence.HAVE), (bytes(absent), Presence.DONT_HAVE)])
            await peer.send(target.peer_id, Message(wants=[WantEntry(large), WantEntry(present)]))
            got = {}
            while len(got) < 2:
                for payload in (await peer.next()).payloads:
                    got[block_cid(payload)] = payload.data
            assert got == {large: big, present: small}
            assert peer.protocols_seen == [PROTOCOL_120]
            # Nothing was written back on the stream the raw peer opened: once the peer
            # ends its side, the node reads to the end and closes, having written nothing.
            await mine.close()  # type: ignore[attr-defined]
            assert await read_to_end(mine) == b""
            ledger = node.bitswap.ledger(peer.host.get_id())
            assert ledger.blocks_sent == 2 and ledger.bytes_sent == len(small) + len(big)


@pytest.mark.parametrize("protocol", [PROTOCOL_110, PROTOCOL_100])
async def test_older_dialects(tmp_path: Path, protocol: str) -> None:
    """A 1.1.0 peer gets blocks with CID prefixes, a 1.0.0 peer bare blocks (CIDv0)."""
    data = b"legacy block" * 100
    cid = make_cid(0, "dag-pb", hashlib.sha256(data).digest())
    repo = repo_at(tmp_path / "n")
    repo.blocks.put_block(bytes(cid), data)  # any bytes are a valid block for this test
    with trio.fail_after(30):
        async with node_at(tmp_path / "n") as node, raw_peer((protocol,)) as peer:
            target = peer_info_from_addr(node.addrs[0])
            await peer.host.connect(target)
            await peer.send(target.peer_id, Message(wants=[WantEntry(cid)]), protocol)
            reply = await peer.next()
            assert peer.protocols_seen == [protocol]
            assert reply.presences == []
            (payload,) = reply.payloads
            assert (payload.prefix is None) == (protocol == PROTOCOL_100)
            assert block_cid(payload) == cid and payload.data == data


async def test_oversize_message_and_wantlist_caps(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with node_at(tmp_path / "n") as node, raw_peer() as peer:
            target = peer_info_from_addr(node.addrs[0])
            await peer.host.connect(target)
            # A length prefix over the 4 MiB cap: the stream is dropped, unread.
            stream = await peer.send(target.peer_id, Message(),
                                     raw=varint.encode(MAX_MESSAGE_SIZE + 1) + b"\x00" * 64)
            with trio.fail_after(10):
                while node.bitswap.protocol_errors == 0:
                    await trio.testing.wait_all_tasks_blocked()
            # Reset, not merely closed: the stream is dead in both directions.
            assert await read_to_end(stream) == b""
            with pytest.raises((StreamReset, StreamClosed)):
                await stream.write(b"more")  # type: ignore[attr-defined]
            # A wantlist longer than the cap: only the first max_wantlist entries count.
            cap = node.config.bitswap.max_wantlist
            wants = [WantEntry(cid_of_block(i.to_bytes(4, "big")), WantType.HAVE,
                               send_dont_have=True) for i in range(cap + 50)]
            await peer.send(target.peer_id, Message(wants=wants))
            seen = 0
            while seen < cap:
                seen += len((await peer.next()).presences)
            assert seen == cap
            assert node.bitswap.ledger(peer.host.get_id()).wants_received == cap


async def test_unknown_bytes_from_a_peer_never_reach_the_store(tmp_path: Path) -> None:
    """Blocks nobody asked for are dropped and their sender penalised."""
    junk = b"unsolicited"
    with trio.fail_after(30):
        async with node_at(tmp_path / "n") as node, raw_peer() as peer:
            target = peer_info_from_addr(node.addrs[0])
            await peer.host.connect(target)
            cid = cid_of_block(junk)
            await peer.send(target.peer_id, Message(blocks=[(cid, junk)]))
            with trio.fail_after(10):
                while node.bitswap.ledger(peer.host.get_id()).bad_blocks == 0:
                    await trio.testing.wait_all_tasks_blocked()
            assert not repo_at(tmp_path / "n").blocks.has(cid)
            assert node.reputation.record(peer.host.get_id()).bad_blocks == 1


def test_message_round_trip_and_prefixes() -> None:
    raw = cid_of_block(b"x")
    v0 = make_cid(0, "dag-pb", hashlib.sha256(b"y").digest())
    msg = Message(wants=[WantEntry(raw, WantType.HAVE, send_dont_have=True),
                         WantEntry(v0, cancel=True)],
                  blocks=[(raw, b"x"), (v0, b"y")],
                  presences=[(v0, Presence.DONT_HAVE)], pending_bytes=7)
    back = decode_message(encode_message(msg))
    assert back.wants == msg.wants and back.presences == msg.presences
    assert back.pending_bytes == 7
    assert [block_cid(p) for p in back.payloads] == [raw, v0]
    # A lying prefix cannot make bytes pass for another block: the digest is computed.
    assert block_cid(Payload(back.payloads[0].prefix, b"not x")) != raw
