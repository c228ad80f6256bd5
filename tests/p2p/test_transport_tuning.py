"""The yamux tuning of p2p/transport_tuning.py takes effect on real hosts, on the wire."""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
import trio
from libp2p.abc import IHost
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.custom_types import TProtocol
from libp2p.io.trio import TrioTCPStream
from libp2p.peer.id import ID
from libp2p.security.noise.io import MAX_PLAINTEXT_LENGTH
from libp2p.stream_muxer.yamux.yamux import (
    DEFAULT_WINDOW_SIZE,
    HEADER_SIZE,
    TYPE_DATA,
    TYPE_WINDOW_UPDATE,
    YAMUX_HEADER_FORMAT,
    Yamux,
)
from libp2p.utils import encode_delim
from multiaddr import Multiaddr

from ipfs_mcp.p2p._net import NET_ERRORS
from ipfs_mcp.p2p.host import build_host, peer_info_from_addr
from ipfs_mcp.p2p.transport_tuning import (
    INBOUND_GRANT,
    YAMUX_FRAME_SIZE,
    BufferedTCPStream,
    HalfWindowStream,
    current_tuning,
)

from .nodes import FAST

pytestmark = pytest.mark.anyio

PROTOCOL = TProtocol("/test/bulk/1.0.0")
SIZE = 4 << 20
SMALL_READ = 16 << 10  # small reads: the library answered each with a WINDOW_UPDATE
LISTEN = [Multiaddr("/ip4/127.0.0.1/tcp/0")]


def test_building_a_host_applies_the_tuning() -> None:
    build_host(create_new_key_pair(), FAST)
    tuning = current_tuning()
    assert tuning.yamux_frame_size == YAMUX_FRAME_SIZE == MAX_PLAINTEXT_LENGTH == 65519
    assert tuning.stream_class is HalfWindowStream


async def _connected(sender: IHost, receiver: IHost) -> ID:
    info = peer_info_from_addr(f"{receiver.get_addrs()[0]}")
    await sender.connect(info)
    return info.peer_id


@asynccontextmanager
async def _connected_pair(handler: Callable[[Any], Awaitable[None]]
                          ) -> AsyncIterator[tuple[IHost, IHost, ID]]:
    """A sender connected to a receiver that serves PROTOCOL with ``handler``, both on
    127.0.0.1, within 30 s: (sender, receiver, the receiver's id)."""
    sender = build_host(create_new_key_pair(), FAST)
    receiver = build_host(create_new_key_pair(), FAST)
    receiver.set_stream_handler(PROTOCOL, handler)
    with trio.fail_after(30):
        async with receiver.run(LISTEN), sender.run(LISTEN):
            yield sender, receiver, await _connected(sender, receiver)


def _observe_writes(stream: object) -> list[bytes]:
    """What the stream's muxer hands to noise from now on, one frame a call (observed, not
    replaced)."""
    secured = stream.muxed_conn.secured_conn  # type: ignore[attr-defined]
    written: list[bytes] = []
    write = secured.write

    async def observed_write(frame: bytes) -> None:
        written.append(bytes(frame))
        await write(frame)

    secured.write = observed_write
    return written


def _window_updates(frames: list[bytes]) -> list[int]:
    """The increments of the plain WINDOW_UPDATE frames among ``frames`` (no SYN or ACK)."""
    out = []
    for f in frames:
        if len(f) == HEADER_SIZE and f[1] == TYPE_WINDOW_UPDATE:
            _, _, flags, _, length = struct.unpack(YAMUX_HEADER_FORMAT, f)
            if flags == 0:
                out.append(length)
    return out


async def test_frames_fit_one_noise_message_and_window_updates_come_per_half_window() -> None:
    data = os.urandom(SIZE)
    got = bytearray()
    done = trio.Event()
    reads = 0
    socket: list[BufferedTCPStream] = []
    receiver_frames: list[bytes] = []

    async def handler(stream: object) -> None:
        nonlocal reads
        frames = _observe_writes(stream)
        while len(got) < SIZE:
            reads += 1
            got.extend(await stream.read(SMALL_READ))  # type: ignore[attr-defined]
        receiver_frames.extend(frames)
        # yamux -> secure session -> noise reader -> its packet reader -> the raw connection
        noise = stream.muxed_conn.secured_conn.conn  # type: ignore[attr-defined]
        socket.append(noise.read_writer.read_write_closer.stream)
        done.set()

    async with _connected_pair(handler) as (sender, _, peer):
        stream = await sender.new_stream(peer, [PROTOCOL])
        written = _observe_writes(stream)
        await stream.write(data)
        await done.wait()
        await stream.close()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    data_frames = [len(f) for f in written if len(f) > HEADER_SIZE]
    assert max(data_frames) == YAMUX_FRAME_SIZE  # one noise message, never two
    assert sum(n - HEADER_SIZE for n in data_frames) == SIZE
    # The library's own credit logic answered about every small read with a WINDOW_UPDATE
    # (256 here); granted per half window, a 4 MiB stream takes a handful, each of at
    # least half the spec's initial window.
    assert reads >= SIZE // SMALL_READ
    updates = _window_updates(receiver_frames)
    assert 0 < len(updates) <= SIZE // (DEFAULT_WINDOW_SIZE // 2)
    assert min(updates) >= DEFAULT_WINDOW_SIZE // 2
    # Under noise the receiver's socket is read in large pieces: at the library's default
    # each noise message costs two recvs at least (its length, then its body).
    [buffered] = socket
    assert isinstance(buffered, BufferedTCPStream)
    assert 0 < buffered.recvs < 2 * len(written)


async def test_a_stream_a_peer_opens_may_carry_a_whole_block_message_before_any_read() -> None:
    """Kubo sends each bitswap block on a new stream, a little over the spec's 256 KiB
    initial window: the ACK grants more, so the sender never waits for the reader. Here the
    receiver reads nothing until the sender's write has returned: without the grant that
    write waits for a WINDOW_UPDATE that never comes (and times out)."""
    size = DEFAULT_WINDOW_SIZE + INBOUND_GRANT - 4096
    data = os.urandom(size)
    written = trio.Event()
    got = bytearray()
    done = trio.Event()

    async def handler(stream: object) -> None:
        await written.wait()
        while len(got) < size:
            got.extend(await stream.read(1 << 20))  # type: ignore[attr-defined]
        done.set()

    async with _connected_pair(handler) as (sender, _, peer):
        stream = await sender.new_stream(peer, [PROTOCOL])
        with trio.fail_after(4):  # under the library's 5 s wait for a window update
            await stream.write(data)
        written.set()
        await done.wait()
        await stream.close()
    assert bytes(got) == data


async def test_buffered_reads_hand_out_exactly_the_bytes_sent() -> None:
    """A real TCP connection under the buffered reader: reads of every size, in order, to
    the end of the stream."""
    data = os.urandom(3 << 20)
    got = bytearray()
    sizes = [1, 2, 3, 65535, 12, 1 << 20, 7, 300_000]

    async def serve(tcp: trio.SocketStream) -> None:
        async with tcp:
            await tcp.send_all(data)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            [listener] = await nursery.start(partial(trio.serve_tcp, serve, 0, host="127.0.0.1"))
            port = listener.socket.getsockname()[1]
            client = BufferedTCPStream(TrioTCPStream(await trio.open_tcp_stream("127.0.0.1", port)))
            i = 0
            while chunk := await client.read(sizes[i % len(sizes)]):
                assert len(chunk) <= sizes[i % len(sizes)]
                got += chunk
                i += 1
            assert await client.read(None) == b""
            await client.close()
            nursery.cancel_scope.cancel()
    assert got == data
    assert client.recvs < i


async def test_a_peer_that_sends_past_a_streams_window_loses_the_connection() -> None:
    """A deliberately lying sender writes yamux DATA frames straight to the connection,
    ignoring the window we granted, on a stream whose handler reads nothing. The receiver
    buffers no more than the window and closes the connection (before, the library logged
    the overrun and kept every byte); a well-behaved peer connects afterwards as before."""
    buffers: list[bytearray] = []
    accepted = trio.Event()

    async def never_reads(stream: object) -> None:
        muxed = stream.muxed_stream  # type: ignore[attr-defined]
        buffers.append(muxed.conn.stream_buffers[muxed.stream_id])
        accepted.set()
        await trio.sleep_forever()

    window = DEFAULT_WINDOW_SIZE + INBOUND_GRANT
    async with _connected_pair(never_reads) as (sender, receiver, peer):
        [conn] = sender.get_network().get_connections(peer)
        muxed = conn.muxed_conn
        assert isinstance(muxed, Yamux)
        [theirs] = receiver.get_network().get_connections(sender.get_id())
        stream = await muxed.open_stream()
        await stream.write(encode_delim(b"/multistream/1.0.0") + encode_delim(PROTOCOL.encode()))
        await accepted.wait()
        chunk = os.urandom(60_000)
        sent = 0
        try:
            while sent < 3 * window and not muxed.is_closed:
                await muxed._write_frame(struct.pack(
                    YAMUX_HEADER_FORMAT, 0, TYPE_DATA, 0, stream.stream_id, len(chunk)) + chunk)
                sent += len(chunk)
            await muxed.event_closed.wait()  # the receiver closed it
        except NET_ERRORS:  # a write on the connection the receiver closed
            pass
        [buffer] = buffers
        assert len(buffer) <= window
        await theirs.muxed_conn.event_closed.wait()  # type: ignore[attr-defined]
        # The receiver serves on: a well-behaved peer's stream goes through.
        honest = build_host(create_new_key_pair(), FAST)
        async with honest.run(LISTEN):
            peer = await _connected(honest, receiver)
            buffers.clear()
            accepted = trio.Event()
            await (await honest.new_stream(peer, [PROTOCOL])).write(b"hello")
            await accepted.wait()
