"""Answering multistream-select on the streams peers open to us, in one write.

Why by hand: py-libp2p 0.8.1's responder (``Multiselect.negotiate``) writes its header,
then reads the dialer's header and proposal one varint byte at a time, each byte a read
through the muxer (a lock, a window check, a log line formatted), then writes the echo as a
second frame. Kubo's bitswap opens a new stream for every message it sends, and sends its
header and proposal at once with the message behind them (go-multistream's lazy dialer),
so that work came once per 256 KiB block: ``Multiselect.negotiate`` took 13% of our event
loop receiving from Kubo, and its two writes (each an encrypted frame and a socket send)
a share of the 17% that frame writes took.

:class:`BufferedMultiselect` reads whole messages from the yamux stream's buffer and
answers header and echo together when the dialer's proposal is already there. A dialer that
waits for our header before it proposes (py-libp2p's own, or any non-lazy one) gets the
header as soon as its own has been read and nothing more is buffered, so no dialer waits on
us (every dialer sends its header first, unasked). The wire is the
spec's either way (github.com/multiformats/multistream-select): the same messages, in the
same order, only fewer writes. Streams of other muxers go to the library's responder.
"""

from __future__ import annotations

import trio
from libp2p.abc import IMultiselectCommunicator
from libp2p.custom_types import StreamHandlerFn, TProtocol
from libp2p.protocol_muxer.exceptions import MultiselectError
from libp2p.protocol_muxer.multiselect import (
    DEFAULT_NEGOTIATE_TIMEOUT,
    MULTISELECT_PROTOCOL_ID,
    PROTOCOL_NOT_FOUND_MSG,
    Multiselect,
)
from libp2p.stream_muxer.yamux.yamux import YamuxStream
from libp2p.utils import encode_delim

from ._net import NET_ERRORS

# go-multistream refuses longer messages too.
MAX_MESSAGE = 1024
# Commands a dialer may send before it settles on a protocol (each "na" or "ls" answered).
MAX_COMMANDS = 32


class BufferedMultiselect(Multiselect):
    """The host's responder (``BasicHost.multiselect``), sharing its handlers dict."""

    async def negotiate(self, communicator: IMultiselectCommunicator,
                        negotiate_timeout: int = DEFAULT_NEGOTIATE_TIMEOUT
                        ) -> tuple[TProtocol | None, StreamHandlerFn | None]:
        stream = getattr(communicator, "read_writer", None)
        muxed = getattr(stream, "muxed_stream", None)
        if stream is None or not isinstance(muxed, YamuxStream):
            return await super().negotiate(communicator, negotiate_timeout)
        try:
            with trio.fail_after(negotiate_timeout):
                return await self._answer(stream, muxed)
        except trio.TooSlowError:
            raise MultiselectError("handshake read timeout") from None
        except NET_ERRORS as exc:
            raise MultiselectError(f"stream failed during negotiation: {exc}") from exc

    async def _answer(self, stream: object, muxed: YamuxStream
                      ) -> tuple[TProtocol | None, StreamHandlerFn | None]:
        # Every dialer sends its header unasked (go-, js-, rust- and py-multistream alike),
        # so ours can wait for it, and go out with the answer to a proposal sent with it.
        if await _take(muxed, bytearray(), stream) != MULTISELECT_PROTOCOL_ID:
            raise MultiselectError("multiselect protocol ID mismatch")
        out = bytearray(encode_delim(MULTISELECT_PROTOCOL_ID.encode()))
        for _ in range(MAX_COMMANDS):
            command = await _take(muxed, out, stream)
            if command == "ls":
                listed = "\n".join(p for p in self.handlers if p is not None) + "\n"
                out += encode_delim(listed.encode())
                continue
            protocol = TProtocol(command) if command else None
            if protocol in self.handlers:
                out += encode_delim(command.encode())
                await stream.write(bytes(out))  # type: ignore[attr-defined]
                return protocol, self.handlers[protocol]
            out += encode_delim(PROTOCOL_NOT_FOUND_MSG.encode())
        raise MultiselectError(f"no protocol agreed after {MAX_COMMANDS} proposals")


async def _take(muxed: YamuxStream, out: bytearray, stream: object) -> str:
    """The next whole message the dialer sent, from the stream's buffer. Before waiting for
    one, what we owe the dialer (``out``) is written: it may be waiting for it."""
    conn, sid = muxed.conn, muxed.stream_id
    while True:
        buffer = conn.stream_buffers.get(sid)
        if buffer is None:
            raise MultiselectError("stream closed during negotiation")
        message = _parse(buffer)
        if message is not None:
            text, used = message
            del buffer[:used]
            await muxed._auto_tune_and_send_window_update(bytes_read=used)
            return text
        if muxed.reset_received or muxed.recv_closed:
            raise MultiselectError("stream ended during negotiation")
        if out:
            await stream.write(bytes(out))  # type: ignore[attr-defined]
            out.clear()
        event = conn.stream_events.get(sid)
        if event is None:
            raise MultiselectError("stream closed during negotiation")
        await event.wait()
        conn.stream_events[sid] = trio.Event()  # as YamuxStream.read re-arms it


def _parse(buffer: bytearray) -> tuple[str, int] | None:
    """A varint-length-prefixed, newline-ended message at the start of ``buffer``: its text
    and the bytes it takes, or None while it is incomplete."""
    length = shift = pos = 0
    while True:
        if pos >= len(buffer):
            return None
        byte = buffer[pos]
        length |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            break
        shift += 7
        if pos > 2:  # 2 bytes of varint already reach 16383, far over MAX_MESSAGE
            raise MultiselectError("multistream message length prefix too long")
    if not 0 < length <= MAX_MESSAGE:
        raise MultiselectError(f"multistream message of {length} bytes")
    if len(buffer) < pos + length:
        return None
    body = bytes(buffer[pos:pos + length])
    if not body.endswith(b"\n"):
        raise MultiselectError("multistream message not ended by a newline")
    try:
        return body[:-1].decode(), pos + length
    except UnicodeDecodeError as exc:
        raise MultiselectError("multistream message is not UTF-8") from exc


def answer_in_one_write(host: object) -> None:
    """Make ``host``'s responder a :class:`BufferedMultiselect` with the same handlers."""
    current = getattr(host, "multiselect", None)
    if isinstance(current, Multiselect) and not isinstance(current, BufferedMultiselect):
        host.multiselect = BufferedMultiselect(current.handlers)  # type: ignore[attr-defined]
