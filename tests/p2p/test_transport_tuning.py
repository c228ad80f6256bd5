"""The yamux tuning of p2p/transport_tuning.py takes effect on real hosts, on the wire."""

from __future__ import annotations

import hashlib
import os
from functools import partial

import pytest
import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.custom_types import TProtocol
from libp2p.io.trio import TrioTCPStream
from libp2p.security.noise.io import MAX_PLAINTEXT_LENGTH
from libp2p.stream_muxer.yamux.yamux import HEADER_SIZE
from multiaddr import Multiaddr

from ipfs_mcp.p2p.host import build_host, peer_info_from_addr
from ipfs_mcp.p2p.transport_tuning import (
    RELEASE_ON_READ_ENV,
    YAMUX_FRAME_SIZE,
    BufferedTCPStream,
    apply_transport_tuning,
    current_tuning,
)

from .nodes import FAST

pytestmark = pytest.mark.anyio

PROTOCOL = TProtocol("/test/bulk/1.0.0")
SIZE = 4 << 20
SMALL_READ = 16 << 10  # small reads: one WINDOW_UPDATE each unless updates are batched


def test_building_a_host_applies_the_tuning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RELEASE_ON_READ_ENV, raising=False)
    build_host(create_new_key_pair(), FAST)
    tuning = current_tuning()
    assert tuning.yamux_frame_size == YAMUX_FRAME_SIZE == MAX_PLAINTEXT_LENGTH == 65519
    assert tuning.release_on_read is False


def test_a_value_the_user_set_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RELEASE_ON_READ_ENV, "1")
    assert apply_transport_tuning().release_on_read is True


async def test_frames_fit_one_noise_message_and_window_updates_are_batched(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RELEASE_ON_READ_ENV, raising=False)
    sender = build_host(create_new_key_pair(), FAST)
    receiver = build_host(create_new_key_pair(), FAST)
    data = os.urandom(SIZE)
    got = bytearray()
    done = trio.Event()
    updates: dict[str, int] = {}
    reads = 0
    socket: list[BufferedTCPStream] = []

    async def handler(stream: object) -> None:
        nonlocal reads
        while len(got) < SIZE:
            reads += 1
            got.extend(await stream.read(SMALL_READ))  # type: ignore[attr-defined]
        muxed = stream.muxed_stream  # type: ignore[attr-defined]
        # yamux -> secure session -> noise reader -> its packet reader -> the raw connection
        noise = stream.muxed_conn.secured_conn.conn  # type: ignore[attr-defined]
        socket.append(noise.read_writer.read_write_closer.stream)
        # The library counts each WINDOW_UPDATE it sends, by the branch that sent it.
        updates["per_read"] = muxed._window_update_bytes_read_only
        done.set()

    receiver.set_stream_handler(PROTOCOL, handler)
    listen = [Multiaddr("/ip4/127.0.0.1/tcp/0")]
    with trio.fail_after(30):
        async with receiver.run(listen), sender.run(listen):
            addr = f"{receiver.get_addrs()[0]}"
            info = peer_info_from_addr(addr)
            await sender.connect(info)
            stream = await sender.new_stream(info.peer_id, [PROTOCOL])
            # Observe (not replace) what the sender's muxer hands to noise: one frame a call.
            secured = stream.muxed_conn.secured_conn  # type: ignore[attr-defined]
            written: list[int] = []
            write = secured.write

            async def observed_write(frame: bytes) -> None:
                written.append(len(frame))
                await write(frame)

            secured.write = observed_write
            await stream.write(data)
            await done.wait()
            await stream.close()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    data_frames = [n for n in written if n > HEADER_SIZE]
    assert max(data_frames) == YAMUX_FRAME_SIZE  # one noise message, never two
    assert sum(n - HEADER_SIZE for n in data_frames) == SIZE
    # At the library's default every small read that its hysteresis defers sends its own
    # WINDOW_UPDATE (about one per read here); with the knob off that branch never runs.
    assert reads >= SIZE // SMALL_READ
    assert updates["per_read"] == 0
    # Under noise the receiver's socket is read in large pieces: at the library's default
    # each noise message costs two recvs at least (its length, then its body).
    [buffered] = socket
    assert isinstance(buffered, BufferedTCPStream)
    noise_messages = len(written)
    assert 0 < buffered.recvs < 2 * noise_messages


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
