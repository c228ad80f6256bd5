"""Small helpers at the boundary with py-libp2p: framing, and which errors mean "the network"."""

from __future__ import annotations

from collections.abc import Callable

import trio
from libp2p.abc import INetConn, INetStream, INetwork, INotifee
from libp2p.exceptions import BaseLibp2pError
from libp2p.peer.id import ID
from multiaddr import Multiaddr

from ipfs_mcp.backends.core import varint
from ipfs_mcp.backends.errors import NetworkError

# Everything a stream, a dial or a muxer may raise when the other side or the wire fails.
# Caught at the boundary and turned into NetworkError or a peer failure.
NET_ERRORS: tuple[type[BaseException], ...] = (
    BaseLibp2pError,
    OSError,
    EOFError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
)

_READ_CHUNK = 1 << 18


class FrameReader:
    """Reads uvarint-length-prefixed messages from one stream.

    Buffers across reads so that a message split over several muxer frames, or several
    messages in one frame, cost one ``read`` each rather than one per varint byte.
    """

    def __init__(self, stream: INetStream, max_size: int) -> None:
        self._stream = stream
        self._max = max_size
        self._buf = bytearray()
        self._eof = False

    async def _fill(self, want: int) -> bool:
        while len(self._buf) < want:
            if self._eof:
                return False
            try:
                chunk = await self._stream.read(max(_READ_CHUNK, want - len(self._buf)))
            except EOFError:  # py-libp2p signals the end with StreamEOF, an EOFError
                chunk = b""
            if not chunk:
                self._eof = True
                return False
            self._buf += chunk
        return True

    async def next(self) -> bytes | None:
        """The next message body, or None at a clean end of stream.

        Raises:
            NetworkError: a declared length over the cap, or the stream ended mid-message.
        """
        length = shift = 0
        pos = 0
        while True:
            if not await self._fill(pos + 1):
                if pos == 0 and not self._buf:
                    return None
                raise NetworkError("stream ended inside a length prefix")
            byte = self._buf[pos]
            length |= (byte & 0x7F) << shift
            pos += 1
            if byte < 0x80:
                break
            shift += 7
            if pos > 9:
                raise NetworkError("length prefix longer than 9 bytes")
        if length > self._max:
            raise NetworkError(f"peer announced a {length}-byte message; the cap is {self._max}")
        if not await self._fill(pos + length):
            raise NetworkError("stream ended inside a message")
        with memoryview(self._buf) as view:  # one copy of the body, not two
            body = bytes(view[pos:pos + length])
        del self._buf[:pos + length]
        return body


def frame(body: bytes) -> bytes:
    """``body`` behind its length: one buffer, so it goes out as one write."""
    return varint.encode(len(body)) + body


async def close_quietly(stream: INetStream) -> None:
    """Close ``stream`` within a second, even from a cancelled scope; a stream the other
    side already broke is simply gone."""
    with trio.CancelScope(shield=True), trio.move_on_after(1):
        try:
            await stream.close()
        except NET_ERRORS:
            pass


async def reset_quietly(stream: INetStream) -> None:
    """Reset ``stream`` within a second, even from a cancelled scope (the other side sees an
    error, not an end); a stream already broken is simply gone."""
    with trio.CancelScope(shield=True), trio.move_on_after(1):
        try:
            await stream.reset()
        except NET_ERRORS:
            pass


class ConnectionEvents(INotifee):
    """The swarm's connection events, passed on as plain calls with the peer's id.

    py-libp2p's notifee has six abstract methods; the node's parts care about two.
    ``on_disconnected`` is called when a connection to the peer closes (others may remain).
    """

    def __init__(self, on_connected: Callable[[ID], object],
                 on_disconnected: Callable[[INetwork, ID], object] | None = None) -> None:
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        self._on_connected(conn.muxed_conn.peer_id)

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        if self._on_disconnected is not None:
            self._on_disconnected(network, conn.muxed_conn.peer_id)

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def listen(self, network: INetwork, multiaddr: Multiaddr) -> None:
        return None

    async def listen_close(self, network: INetwork, multiaddr: Multiaddr) -> None:
        return None
