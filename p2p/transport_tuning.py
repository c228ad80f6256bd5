"""Bulk-transfer tuning of py-libp2p's yamux, in one place, applied when a host is built.

Two settings, both measured (``bench/transport.py``) and both invisible on the wire to a
stock peer:

- **Frames sized to one noise message.** py-libp2p writes yamux DATA frames of
  ``MAX_MESSAGE_SIZE`` = 65536 bytes (header included); noise carries at most 65519
  plaintext bytes per message, so every frame became two encrypted messages (65519 + 17
  bytes), doubling the per-message work (an AEAD call, a length prefix, a socket write) on
  both sides. With 65519 the frame is exactly one message. Any yamux peer accepts it: it
  is smaller than the 64 KiB go-yamux sends and far below the 256 KiB initial window. The
  library has no argument for it; the module constant is read at each write, so it is set
  here, once.
- **Window updates as go-yamux sends them** (:class:`HalfWindowStream`). The library's
  credit logic sends a WINDOW_UPDATE after almost every read: its "partial slack" branch
  fires whenever anything at all has been consumed and less than half the window is due,
  and grants that amount twice. A bulk receive read in 64-256 KiB pieces thus answered
  each with an encrypted frame and a socket write (``send_window_update``: 10.7% of the
  receiving event loop, Kubo -> ours). go-yamux's ``GrowTo`` grants only once half the
  window has been read, and then grants all of it back; the stream class here does that,
  with the library's own auto-tuning of the window size kept.
- **A larger window for streams a peer opens** (:func:`grant_on_accept`). Kubo's bitswap
  sends each response on a new stream, and a 256 KiB block with its framing and
  multistream header is a little more than the 256 KiB a new yamux stream may carry, so
  every block stalled on a round trip for one WINDOW_UPDATE. The ACK that accepts a
  stream now carries :data:`INBOUND_GRANT` more (the ACK is a WINDOW_UPDATE frame and
  may carry a delta, which go-yamux, rust-yamux and js-libp2p's yamux add to the send
  window), so a whole block message fits.
- **The receive window enforced** (:class:`WindowedBuffers`). py-libp2p's yamux logs a
  peer that sends past a stream's window and keeps the bytes, so a peer could make us
  buffer without bound on any stream we read slowly (a bitswap stream waits while 16 of its
  messages are being stored). Here a frame past the window is not buffered, and the
  connection is closed with a protocol error, as go-yamux does (``ErrRecvWindowExceeded``).

And one adapter, :class:`BufferedTCPStream`: noise reads each message as a 2-byte length
and then its body, each read one ``recv`` on the socket (about three system calls per 64
KiB). Under the raw TCP connection we put a reader that takes up to 256 KiB per ``recv``
and serves those small reads from memory: the bytes and their order are unchanged, only
the number of system calls (and trio's work around each) drops. It is installed on each
TCP connection before its security handshake (see ``host._buffer_tcp_reads``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from libp2p.io.abc import ReadWriteCloser
from libp2p.io.trio import TrioTCPStream
from libp2p.security.noise.io import MAX_PLAINTEXT_LENGTH
from libp2p.stream_muxer.yamux import yamux as _yamux

# One yamux frame, its 12-byte header included, per noise message.
YAMUX_FRAME_SIZE = MAX_PLAINTEXT_LENGTH
# A stream a peer opens may carry this much at first: the spec's 256 KiB and this grant.
INBOUND_GRANT = 768 << 10
# What one recv may take from the socket: four full noise messages.
TCP_READ_SIZE = 1 << 18


class HalfWindowStream(_yamux.YamuxStream):
    """py-libp2p's yamux stream, granting window as go-yamux's ``GrowTo`` does: nothing
    until half the target window has been read, then all of it back in one update."""

    async def _auto_tune_and_send_window_update(self, *, bytes_read: int = 0) -> None:
        # The window the peer may still fill, and what it filled that is not yet read.
        buffered = len(self.conn.stream_buffers.get(self.stream_id, b""))
        delta = self.target_recv_window - (self.recv_window + buffered)
        if delta <= 0 or delta < self.target_recv_window // 2:
            return
        # No await between reading the window and raising it: trio runs one task at a time.
        self.recv_window += delta
        delta += self._apply_autotune_epoch(buffered)  # the library's: doubles within 4 RTT
        await self.send_window_update(delta)


def grant_on_accept(conn: _yamux.Yamux, frame: bytes) -> bytes:
    """``frame`` as the muxer is about to write it; the ACK of a stream the peer opened
    carries :data:`INBOUND_GRANT` more window (the ACK is written before the muxer reads
    the stream's next frame, so nothing it received is counted twice)."""
    if len(frame) != _yamux.HEADER_SIZE or frame[1] != _yamux.TYPE_WINDOW_UPDATE:
        return frame
    version, kind, flags, stream_id, length = struct.unpack(_yamux.YAMUX_HEADER_FORMAT, frame)
    if flags != _yamux.FLAG_ACK or length:
        return frame
    stream = conn.streams.get(stream_id)
    if stream is None or stream.is_initiator:
        return frame
    stream.recv_window += INBOUND_GRANT
    stream.target_recv_window += INBOUND_GRANT
    return struct.pack(_yamux.YAMUX_HEADER_FORMAT, version, kind, flags, stream_id,
                       INBOUND_GRANT)


class WindowExceeded(Exception):
    """A peer sent more on a stream than the window we granted it."""


class _StreamBuffer(bytearray):
    """One stream's buffer of received bytes that refuses a frame past the stream's window.

    The muxer appends each frame with ``extend`` before it lowers ``recv_window`` by it, so
    ``recv_window`` is then what the peer may still send."""

    def __init__(self, buffers: WindowedBuffers, stream_id: int, data: bytes = b"") -> None:
        super().__init__(data)
        self._buffers = buffers
        self._stream_id = stream_id

    def extend(self, data: object) -> None:
        stream = self._buffers.conn.streams.get(self._stream_id)
        size = len(data)  # type: ignore[arg-type]
        if stream is not None and size > stream.recv_window:
            self._buffers.exceeded(self._stream_id, size, stream.recv_window)
        super().extend(data)  # type: ignore[arg-type]


class WindowedBuffers(dict[int, bytearray]):
    """A yamux connection's ``stream_buffers``: each buffer made a :class:`_StreamBuffer`.
    A frame past its stream's window raises :class:`WindowExceeded` (the muxer's frame loop
    drops the frame and ends the stream) and stops the loop; the connection then closes
    (``host.FrameAtomicYamux.handle_incoming``)."""

    def __init__(self, conn: _yamux.Yamux) -> None:
        super().__init__()
        self.conn = conn
        self.violation: str | None = None

    def __setitem__(self, stream_id: int, buffer: bytearray) -> None:
        if not isinstance(buffer, _StreamBuffer):
            buffer = _StreamBuffer(self, stream_id, bytes(buffer))
        super().__setitem__(stream_id, buffer)

    def exceeded(self, stream_id: int, size: int, window: int) -> None:
        self.violation = (f"a {size}-byte frame on stream {stream_id}, whose receive window "
                          f"had {window} bytes left")
        self.conn.event_shutting_down.set()  # the frame loop stops after this frame
        raise WindowExceeded(self.violation)


@dataclass(frozen=True)
class TransportTuning:
    """What the library will do now (read back from it, not from what we asked)."""

    yamux_frame_size: int  # bytes per DATA frame written, header included
    stream_class: type  # the class every new yamux stream is made of


def current_tuning() -> TransportTuning:
    return TransportTuning(yamux_frame_size=_yamux.MAX_MESSAGE_SIZE,
                           stream_class=_yamux.YamuxStream)


def apply_transport_tuning() -> TransportTuning:
    """Set the frame size and the stream class (idempotent) and return what the library
    now reports. The muxer makes its streams from the module's name ``YamuxStream`` when
    it opens or accepts one, so setting that name is enough."""
    _yamux.MAX_MESSAGE_SIZE = YAMUX_FRAME_SIZE
    _yamux.YamuxStream = HalfWindowStream  # type: ignore[misc]
    return current_tuning()


class BufferedTCPStream(ReadWriteCloser):
    """A TCP stream whose reads take up to :data:`TCP_READ_SIZE` bytes from the socket at a
    time and hand them out as asked. Writes, close and addresses go to the stream as they
    are. Only one task reads a connection (the security session's reader), as before."""

    def __init__(self, stream: TrioTCPStream) -> None:
        self.stream = stream
        self._buf = bytearray()
        self.recvs = 0  # socket reads made, for the tests

    async def read(self, n: int | None = None) -> bytes:
        if n == 0:
            return b""
        if not self._buf:
            self.recvs += 1
            chunk = await self.stream.read(max(n or 0, TCP_READ_SIZE))
            if n is None or len(chunk) <= n:
                return chunk  # all of it is asked for (or the end: b"")
            self._buf += chunk
        take = len(self._buf) if n is None else min(n, len(self._buf))
        with memoryview(self._buf) as view:
            out = bytes(view[:take])
        del self._buf[:take]
        return out

    async def write(self, data: bytes) -> None:
        await self.stream.write(data)

    async def close(self) -> None:
        await self.stream.close()

    def get_remote_address(self) -> tuple[str, int] | None:
        return self.stream.get_remote_address()
