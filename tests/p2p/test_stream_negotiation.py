"""Multistream-select on the streams peers open to us (p2p/stream_negotiation.py), between
two real hosts on 127.0.0.1. The dialer here writes raw bytes on a yamux stream it opened,
so it can be the lazy dialer Kubo is, a waiting one, or a broken one."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.custom_types import TProtocol
from libp2p.stream_muxer.exceptions import MuxedStreamEOF, MuxedStreamReset
from libp2p.stream_muxer.yamux.yamux import HEADER_SIZE, TYPE_DATA, YamuxStream
from libp2p.utils import encode_delim
from multiaddr import Multiaddr

from ipfs_mcp.p2p.host import build_host, peer_info_from_addr

from .nodes import FAST

pytestmark = pytest.mark.anyio

PROTOCOL = TProtocol("/test/negotiation/1.0.0")
OTHER = TProtocol("/test/other/1.0.0")
HEADER = encode_delim(b"/multistream/1.0.0")
DEADLINE = 20


def delim(text: str) -> bytes:
    return encode_delim(text.encode())


class Pair:
    """A receiver serving PROTOCOL (its handler keeps what it reads) and a connected dialer;
    ``frames`` are the DATA frames the receiver's muxer writes, one (stream id, payload) per
    frame."""

    def __init__(self) -> None:
        self.sender = build_host(create_new_key_pair(), FAST)
        self.receiver = build_host(create_new_key_pair(), FAST)
        self.payloads: list[bytes] = []
        self.frames: list[tuple[int, bytes]] = []
        self.handled = trio.Event()

    async def handler(self, stream: object) -> None:
        got = bytearray()
        try:
            while chunk := await stream.read(1 << 16):  # type: ignore[attr-defined]
                got += chunk
        except EOFError:  # py-libp2p ends a stream with StreamEOF, an EOFError
            pass
        self.payloads.append(bytes(got))
        self.handled.set()
        await stream.close()  # type: ignore[attr-defined]

    async def open(self) -> YamuxStream:
        info = peer_info_from_addr(f"{self.receiver.get_addrs()[0]}")
        await self.sender.connect(info)
        [conn] = self.sender.get_network().get_connections(info.peer_id)
        [back] = self.receiver.get_network().get_connections(self.sender.get_id())
        secured = back.muxed_conn.secured_conn  # type: ignore[attr-defined]
        write = secured.write

        async def observed(frame: bytes) -> None:
            if len(frame) > HEADER_SIZE and frame[1] == TYPE_DATA:
                sid = int.from_bytes(frame[4:8], "big")
                self.frames.append((sid, bytes(frame[HEADER_SIZE:])))
            await write(frame)

        secured.write = observed
        stream = await conn.muxed_conn.open_stream()
        assert isinstance(stream, YamuxStream)
        return stream


async def _read_exactly(stream: YamuxStream, n: int) -> bytes:
    got = bytearray()
    while len(got) < n:
        got += await stream.read(n - len(got))
    return bytes(got)


@asynccontextmanager
async def _stream_to_a_receiver(pair: Pair) -> AsyncIterator[YamuxStream]:
    """Both hosts running on 127.0.0.1, the receiver serving PROTOCOL, and a raw yamux
    stream the dialer opened to it (within :data:`DEADLINE`)."""
    pair.receiver.set_stream_handler(PROTOCOL, pair.handler)
    listen = [Multiaddr("/ip4/127.0.0.1/tcp/0")]
    with trio.fail_after(DEADLINE):
        async with pair.receiver.run(listen), pair.sender.run(listen):
            yield await pair.open()


async def test_a_lazy_dialer_gets_header_and_echo_in_one_frame_and_its_message_intact() -> None:
    """Kubo's way: header, proposal and the first message in one write."""
    pair = Pair()
    payload = os.urandom(300_000)
    async with _stream_to_a_receiver(pair) as stream:
        await stream.write(HEADER + delim(PROTOCOL) + payload)
        await stream.close()
        answer = await _read_exactly(stream, len(HEADER + delim(PROTOCOL)))
        await pair.handled.wait()
    assert answer == HEADER + delim(PROTOCOL)
    # Our stream's first frame from the receiver (identify streams share the connection).
    [first, *_] = [body for sid, body in pair.frames if sid == stream.stream_id]
    assert first == HEADER + delim(PROTOCOL)  # one frame; the library wrote two
    assert pair.payloads == [payload]


async def test_a_dialer_that_waits_for_our_header_gets_it_first() -> None:
    """A dialer that proposes only after it has our header: we must not wait for it."""
    pair = Pair()
    async with _stream_to_a_receiver(pair) as stream:
        await stream.write(HEADER)
        assert await _read_exactly(stream, len(HEADER)) == HEADER
        await stream.write(delim(OTHER))  # not served: "na", then the one that is
        assert await _read_exactly(stream, len(delim("na"))) == delim("na")
        await stream.write(delim("ls"))
        listed = await stream.read(4096)
        assert PROTOCOL.encode() in listed
        await stream.write(delim(PROTOCOL) + b"after the echo")
        assert await _read_exactly(stream, len(delim(PROTOCOL))) == delim(PROTOCOL)
        await stream.close()
        await pair.handled.wait()
    assert pair.payloads == [b"after the echo"]


@pytest.mark.parametrize("garbage", [
    encode_delim(b"/multistream/2.0.0"),  # another header
    HEADER + b"\x05/abc/",  # no newline at its end
    HEADER + b"\xff\xff\xff\x7f",  # an endless length
    HEADER + b"\x02\xff\n",  # not UTF-8
    HEADER + delim("/not/served/1.0.0") * 40,  # proposals without end
], ids=["wrong-header", "no-newline", "huge-length", "not-utf8", "endless-proposals"])
async def test_a_broken_dialer_loses_its_stream_and_the_host_serves_on(garbage: bytes) -> None:
    pair = Pair()
    async with _stream_to_a_receiver(pair) as stream:
        await stream.write(garbage)
        with pytest.raises((MuxedStreamReset, MuxedStreamEOF)):
            while await stream.read(4096):
                pass
        assert stream.reset_received  # no protocol, no handler: reset, not closed
        # The same connection still negotiates a good stream.
        good = await pair.sender.new_stream(pair.receiver.get_id(), [PROTOCOL])
        await good.write(b"still served")
        await good.close()
        await pair.handled.wait()
    assert pair.payloads == [b"still served"]
