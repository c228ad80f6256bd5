"""Custom protocols: handlers for libp2p streams under ``/x/``, and streams opened to them.

The replaced design's ``register_protocol_handler(protocol, handler)``, made real. A
handler is an async function given a :class:`ProtocolStream` each time a peer opens a
stream with that protocol id; :meth:`CustomProtocols.open` opens one to a peer. This is
what Kubo's ``ipfs p2p listen`` / ``ipfs p2p forward`` (``Experimental.Libp2pStreamMounting``)
speak, so a Kubo node can forward a TCP connection to our handler, and we can reach a
service Kubo mounts.

Rules:

* protocol ids are under ``/x/``, as Kubo requires of ``ipfs p2p`` (without
  ``--allow-custom-protocol``), and printable ASCII without spaces;
* a handler never takes over a protocol the node already serves (bitswap, Kademlia,
  identify, ping, ...), nor another handler's id: :class:`InvalidInput` says which;
* each handler serves at most ``max_streams`` streams at once; a stream beyond that is
  reset at once (counted in ``refused``), so a peer cannot pile up handler tasks;
* the stream is closed when the handler returns and reset when it raises; a handler's
  failure is logged and counted, never raised into the host.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType

import trio
from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from ipfs_mcp.backends.errors import InvalidInput, NetworkError

from ._net import NET_ERRORS, close_quietly

log = logging.getLogger(__name__)

__all__ = ["CUSTOM_PREFIX", "DEFAULT_MAX_STREAMS", "CustomProtocols", "HandlerStats",
           "ProtocolStream", "StreamHandler"]

CUSTOM_PREFIX = "/x/"  # Kubo's ipfs p2p refuses other ids unless told otherwise
DEFAULT_MAX_STREAMS = 16  # streams one handler serves at once
# Families the node's own protocols live in, refused even before their handler is set.
_BUILTIN_PREFIXES = ("/ipfs/", "/libp2p/", "/p2p/", "/meshsub/", "/floodsub/",
                     "/multistream/")
_MAX_ID_LENGTH = 200  # multistream-select lines are short; an id is a name, not data
_READ_SIZE = 1 << 16
# A stream that failed under a handler: the peer's doing, not the handler's bug.
_STREAM_FAILURES: tuple[type[BaseException], ...] = (NetworkError, *NET_ERRORS)


class ProtocolStream:
    """One libp2p stream of a custom protocol, with the network's errors translated.

    ``read`` returns ``b""`` once the other side has finished writing.
    """

    def __init__(self, stream: INetStream, protocol: str) -> None:
        self.raw = stream  # the py-libp2p stream, for what this wrapper does not cover
        self.protocol = protocol
        self.peer_id = str(stream.muxed_conn.peer_id)

    async def read(self, max_bytes: int = _READ_SIZE) -> bytes:
        """Up to ``max_bytes`` bytes; ``b""`` at the end of the stream.

        Raises:
            NetworkError: the stream was reset or the connection failed.
        """
        try:
            return await self.raw.read(max_bytes)
        except EOFError:  # py-libp2p ends a stream with StreamEOF, an EOFError
            return b""
        except NET_ERRORS as exc:
            raise NetworkError(f"reading a {self.protocol} stream from {self.peer_id}: "
                               f"{exc!r}") from exc

    async def write(self, data: bytes) -> None:
        """Raises: NetworkError: the stream was reset or the connection failed."""
        try:
            await self.raw.write(data)
        except NET_ERRORS as exc:
            raise NetworkError(f"writing a {self.protocol} stream to {self.peer_id}: "
                               f"{exc!r}") from exc

    async def close(self) -> None:
        """Finish writing and release the stream (never raises)."""
        await close_quietly(self.raw)

    async def reset(self) -> None:
        """Abort the stream both ways (never raises)."""
        with trio.CancelScope(shield=True), trio.move_on_after(1):
            try:
                await self.raw.reset()
            except NET_ERRORS as exc:
                log.debug("p2p: resetting a %s stream: %r", self.protocol, exc)

    async def __aenter__(self) -> ProtocolStream:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is None:
            await self.close()
        else:
            await self.reset()


StreamHandler = Callable[[ProtocolStream], Awaitable[None]]


@dataclass
class HandlerStats:
    """One handler's streams: served at once now, in all, refused over the bound, failed."""

    max_streams: int
    active: int = 0
    served: int = 0
    refused: int = 0
    failed: int = 0


class CustomProtocols:
    """The node's custom protocol handlers on ``host`` (see the module docstring).

    Args:
        host: the libp2p host whose streams are handled and opened.
        open_timeout: seconds opening an outbound stream (negotiation included) may take.
    """

    def __init__(self, host: IHost, *, open_timeout: float = 15.0) -> None:
        self.host = host
        self.open_timeout = open_timeout
        self.stats: dict[str, HandlerStats] = {}

    def _check_id(self, protocol: object) -> str:
        """The protocol id, if a custom handler may serve it.

        Raises:
            InvalidInput: a built-in protocol, another handler's, or not a ``/x/`` id.
        """
        if not isinstance(protocol, str):
            raise InvalidInput(f"a protocol id is a string, not {type(protocol).__name__}")
        if protocol in self.stats:
            raise InvalidInput(f"{protocol} already has a handler; unregister it first")
        if (TProtocol(protocol) in self.host.get_mux().handlers
                or protocol.startswith(_BUILTIN_PREFIXES)):
            raise InvalidInput(f"{protocol} is one of the node's own protocols (served: "
                               f"{', '.join(sorted(self.builtin()))}); a custom handler "
                               "cannot take it over")
        name = protocol[len(CUSTOM_PREFIX):]
        if (not protocol.startswith(CUSTOM_PREFIX) or not name.strip("/")
                or len(protocol) > _MAX_ID_LENGTH
                or not all(0x21 <= ord(c) < 0x7F for c in protocol)):
            raise InvalidInput(f"{protocol!r} is not a custom protocol id: use "
                               f"{CUSTOM_PREFIX}<name>[/<version>] (printable ASCII, no "
                               f"spaces, at most {_MAX_ID_LENGTH} characters), as Kubo's "
                               "ipfs p2p requires")
        return protocol

    def builtin(self) -> list[str]:
        """The protocols the node serves itself (every handler on the host but ours)."""
        return [str(p) for p in self.host.get_mux().handlers
                if p is not None and str(p) not in self.stats]

    def register(self, protocol: str, handler: StreamHandler, *,
                 max_streams: int = DEFAULT_MAX_STREAMS) -> None:
        """Serve ``protocol`` with ``handler``, at most ``max_streams`` streams at once.

        Raises:
            InvalidInput: see :meth:`_check_id`; ``max_streams`` below 1.
        """
        protocol = self._check_id(protocol)
        if max_streams < 1:
            raise InvalidInput(f"max_streams must be at least 1, not {max_streams}")
        stats = HandlerStats(max_streams)

        async def serve(stream: INetStream) -> None:
            await self._serve(protocol, handler, stats, stream)

        self.stats[protocol] = stats
        self.host.set_stream_handler(TProtocol(protocol), serve)

    def unregister(self, protocol: str) -> None:
        """Stop serving ``protocol`` (streams already open run on).

        Raises:
            InvalidInput: no handler of ours serves it.
        """
        if protocol not in self.stats:
            raise InvalidInput(f"{protocol!r} has no custom handler")
        self.host.remove_stream_handler(TProtocol(protocol))
        del self.stats[protocol]

    async def _serve(self, protocol: str, handler: StreamHandler, stats: HandlerStats,
                     raw: INetStream) -> None:
        stream = ProtocolStream(raw, protocol)
        if stats.active >= stats.max_streams:
            stats.refused += 1
            log.debug("p2p: %s: refused a stream from %s (%d open)", protocol,
                      stream.peer_id, stats.active)
            await stream.reset()
            return
        stats.active += 1
        stats.served += 1
        try:
            await handler(stream)
        except _STREAM_FAILURES as exc:
            stats.failed += 1
            log.debug("p2p: %s stream from %s failed: %r", protocol, stream.peer_id, exc)
            await stream.reset()
        except Exception:
            # The handler's own bug: logged and counted; the host and its other streams
            # carry on (an exception here would end the connection's muxer).
            stats.failed += 1
            log.exception("p2p: the %s handler failed on a stream from %s", protocol,
                          stream.peer_id)
            await stream.reset()
        else:
            await stream.close()
        finally:
            stats.active -= 1

    async def open(self, peer_id: ID, protocol: str, *, timeout: float | None = None
                   ) -> ProtocolStream:
        """A stream to ``peer_id`` speaking ``protocol`` (dialled from the peerstore's
        addresses if not connected), within ``timeout`` (default ``open_timeout``) s.

        Raises:
            InvalidInput: not a ``/x/`` protocol id.
            NetworkError: the peer cannot be reached, or does not speak ``protocol``, in
                time.
        """
        if not isinstance(protocol, str) or not protocol.startswith(CUSTOM_PREFIX):
            raise InvalidInput(f"{protocol!r} is not a custom protocol id "
                               f"({CUSTOM_PREFIX}<name>)")
        limit = self.open_timeout if timeout is None else timeout
        try:
            with trio.fail_after(limit):
                raw = await self.host.new_stream(peer_id, [TProtocol(protocol)])
        except trio.TooSlowError as exc:
            raise NetworkError(f"opening {protocol} to {peer_id} took over {limit:g} s"
                               ) from exc
        except NET_ERRORS as exc:
            raise NetworkError(f"{peer_id} did not open {protocol}: {exc}") from exc
        return ProtocolStream(raw, protocol)
