"""Serving an ASGI app with hypercorn on the running trio loop: the MCP HTTP transport and the
gateway both go through :func:`serve_asgi`, in place of ``hypercorn.trio.serve``.

hypercorn's trio worker (0.18.0, with trio 0.35) has two faults that anyone who can connect
can use, so each connection here is hypercorn's own ``TCPServer`` with two changes:

- **One connection's error ended the whole server.** ``worker_serve`` runs every connection
  in the nursery that also holds the listeners, and ``TCPServer.run`` lets every error but
  ``OSError`` out, so one stray exception cancels the listeners: the process keeps running
  and nothing answers (upstream: pgjones/hypercorn#225, "Entire hypercorn server crashes";
  the mitigation merged as #228 is not in 0.18.0's trio worker). A client triggers it at
  will: a request that promises a body (``Content-Length: 5``), sends none and half-closes
  the socket. The app answers (the gateway refuses a POST without reading its body) while
  the reading task sees the end of the stream; ``TCPServer._close`` then calls
  ``send_eof()`` outside the connection's send lock, so the other task's ``send_all``
  raises ``trio.BusyResourceError``, which ``protocol_send`` does not catch (it catches a
  broken or closed stream only). Here a busy stream counts as a closing one, and whatever
  else escapes a connection ends that connection alone, logged as one line.
- **A client that stops reading held its response forever.** ``protocol_send`` shields
  ``send_all`` from cancellation and has no deadline, so neither the app nor the server can
  take back a response the client never reads. Here each piece of at most
  :data:`WRITE_PIECE` bytes must be taken by the client within ``write_timeout`` seconds,
  or the connection is closed and the app sees ``http.disconnect``.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import trio
from anyio.abc import TaskStatus
from hypercorn.config import Config
from hypercorn.events import Closed, Event, RawData
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState, LifespanState
from hypercorn.utils import repr_socket_addr, wrap_app

log = logging.getLogger("ipfs_mcp.server")

# What a client must take within the write timeout: small enough that an honest client on a
# slow link always makes it, so the timeout measures "not reading", not "reading slowly".
WRITE_PIECE = 64 * 1024
DEFAULT_WRITE_TIMEOUT = 60.0

# A closing stream (``BusyResourceError``: ``_close`` is sending the end of stream right
# now), a broken or closed one, or a client that stopped reading: the connection is over.
_GONE = (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError,
         trio.TooSlowError)


class _Connection(TCPServer):
    """One client connection: hypercorn's, with a write deadline, ending alone on error."""

    def __init__(self, app: Any, config: Config, context: WorkerContext,
                 state: LifespanState, stream: Any, *, write_timeout: float) -> None:
        super().__init__(app, config, context, state, stream)
        self.write_timeout = write_timeout

    async def protocol_send(self, event: Event) -> None:
        if not isinstance(event, RawData):
            await super().protocol_send(event)
            return
        async with self.send_lock:
            try:
                # Shielded as in hypercorn: an app cancelled mid-write must not leave half
                # a frame on the wire. The deadline inside the shield still fires.
                with trio.CancelScope(shield=True):
                    await self._write(event.data)
            except _GONE as exc:
                if isinstance(exc, trio.TooSlowError):
                    log.info("dropped a response: %s read nothing for %s s",
                             self._peer(), self.write_timeout)
                await self.stream.aclose()
                await self.protocol.handle(Closed())

    async def _write(self, data: bytes) -> None:
        """Raises: trio.TooSlowError: a piece was not taken within the write timeout."""
        view = memoryview(data)
        for start in range(0, len(view), WRITE_PIECE):
            with trio.fail_after(self.write_timeout):
                await self.stream.send_all(view[start:start + WRITE_PIECE])

    def _peer(self) -> str:
        try:
            return str(self.protocol.client[0])  # type: ignore[index]
        except (AttributeError, IndexError, TypeError):
            return "a client"

    async def serve(self) -> None:
        """Serve the connection to its end; any error ends it, and only it."""
        try:
            await self.run()
        except Exception as exc:  # one connection's fault is never the listener's
            log.warning("a connection ended with an error: %r", exc)
        except BaseExceptionGroup as group:
            cancelled, other = group.split(trio.Cancelled)
            if other is not None:
                log.warning("a connection ended with an error: %r", other)
            if cancelled is not None:
                raise cancelled from None


async def serve_asgi(app: Any, config: Config, *, write_timeout: float = DEFAULT_WRITE_TIMEOUT,
                     task_status: TaskStatus[list[str]] = anyio.TASK_STATUS_IGNORED
                     ) -> None:
    """Serve ``app`` with ``config`` (binds, TLS, header bounds) until cancelled;
    ``task_status`` receives the bound URLs (port 0 resolved). As ``hypercorn.trio.serve``,
    lifespan included, for the TCP binds (no QUIC, no worker processes).

    Raises:
        OSError: a bind failed.
    """
    wrapped = wrap_app(app, config.wsgi_max_body_size, "asgi")
    state: LifespanState = {}
    lifespan = Lifespan(wrapped, config, state)
    context = WorkerContext(None)
    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        sockets = config.create_sockets()
        listeners: list[trio.abc.Listener[Any]] = []
        binds = []
        ssl_context = config.create_ssl_context()
        for sock in sockets.secure_sockets:
            assert ssl_context is not None  # secure sockets exist only with a certificate
            sock.listen(config.backlog)
            listeners.append(trio.SSLListener(
                trio.SocketListener(trio.socket.from_stdlib_socket(sock)), ssl_context,
                https_compatible=True))
            binds.append(f"https://{repr_socket_addr(sock.family, sock.getsockname())}")
        for sock in sockets.insecure_sockets:
            sock.listen(config.backlog)
            listeners.append(trio.SocketListener(trio.socket.from_stdlib_socket(sock)))
            binds.append(f"http://{repr_socket_addr(sock.family, sock.getsockname())}")

        async def connection(stream: Any) -> None:
            await _Connection(wrapped, config, context, ConnectionState(state.copy()), stream,
                              write_timeout=write_timeout).serve()

        try:
            async with trio.open_nursery() as connections:
                task_status.started(binds)
                await trio.serve_listeners(connection, listeners,
                                           handler_nursery=connections)
        finally:
            await context.terminated.set()
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()
