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
- **Window updates in batches.** By default the library sends one encrypted
  WINDOW_UPDATE for every read that its hysteresis would defer ("release on read"),
  about one per 64 KiB received: a fifth of the receiver's time in profiles. Its own knob,
  the ``PY_YAMUX_RELEASE_ON_READ`` environment variable (read at each read), turns that
  off; credit then goes back once half the window has been consumed, as go-yamux does.
  A value the user set is left alone.

And one adapter, :class:`BufferedTCPStream`: noise reads each message as a 2-byte length
and then its body, each read one ``recv`` on the socket (about three system calls per 64
KiB). Under the raw TCP connection we put a reader that takes up to 256 KiB per ``recv``
and serves those small reads from memory: the bytes and their order are unchanged, only
the number of system calls (and trio's work around each) drops. It is installed on each
TCP connection before its security handshake (see ``host._buffer_tcp_reads``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from libp2p.io.abc import ReadWriteCloser
from libp2p.io.trio import TrioTCPStream
from libp2p.security.noise.io import MAX_PLAINTEXT_LENGTH
from libp2p.stream_muxer.yamux import yamux as _yamux

# One yamux frame, its 12-byte header included, per noise message.
YAMUX_FRAME_SIZE = MAX_PLAINTEXT_LENGTH
RELEASE_ON_READ_ENV = "PY_YAMUX_RELEASE_ON_READ"
# What one recv may take from the socket: four full noise messages.
TCP_READ_SIZE = 1 << 18


@dataclass(frozen=True)
class TransportTuning:
    """What the library will do now (read back from it, not from what we asked)."""

    yamux_frame_size: int  # bytes per DATA frame written, header included
    release_on_read: bool  # one WINDOW_UPDATE per read instead of per half window


def current_tuning() -> TransportTuning:
    return TransportTuning(yamux_frame_size=_yamux.MAX_MESSAGE_SIZE,
                           release_on_read=_yamux._yamux_release_on_read())


def apply_transport_tuning() -> TransportTuning:
    """Set both knobs (idempotent) and return what the library now reports."""
    _yamux.MAX_MESSAGE_SIZE = YAMUX_FRAME_SIZE
    os.environ.setdefault(RELEASE_ON_READ_ENV, "0")
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
