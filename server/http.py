"""Streamable HTTP: the SDK's Starlette app behind a bearer-token check, served by hypercorn
on the trio loop.

- It binds 127.0.0.1 unless told otherwise; binding anything else requires a token
  (enforced when the settings are loaded).
- When ``IPFS_MCP_TOKEN`` is set, every request must carry ``Authorization: Bearer
  <token>``, loopback included. The comparison is constant-time.
- DNS rebinding: the Host header must be a loopback name, the bind address, or a host the
  user allowed; browsers' Origin headers must match the same set.
- The request body limit is :data:`~.config.DEFAULT_MAX_BODY` unless configured.
- Sessions are bounded in number and end when idle; a response whose client stops reading
  is dropped (:class:`~.config.ServingLimits`). hypercorn runs through
  :mod:`.hypercorn_worker`, where one connection's error never stops the listener.
- The roots a client declares count only with a token, and only inside ``--allow-root``
  (:attr:`~.config.ServerSettings.client_roots`).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from typing import Any

import trio
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from .config import ServerSettings

log = logging.getLogger("ipfs_mcp.server")

MCP_PATH = "/mcp"
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


class BearerToken:
    """Refuse HTTP requests without the right bearer token (401, as RFC 6750 says)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = b""
            for name, value in scope.get("headers", ()):
                if name == b"authorization":
                    given = value
                    break
            if not hmac.compare_digest(given, self._expected):
                body = b"missing or wrong bearer token (Authorization: Bearer <token>)"
                await send({"type": "http.response.start", "status": 401, "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"www-authenticate", b'Bearer realm="ipfs-mcp"'),
                    (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def transport_security(settings: ServerSettings) -> TransportSecuritySettings:
    """Accept only Host (and browser Origin) headers naming this server, so a web page
    whose DNS name was rebound to 127.0.0.1 cannot talk to it."""
    assert settings.http is not None
    host, _ = settings.http
    names = list(_LOOPBACK_HOSTS)
    if host not in ("0.0.0.0", "::"):  # a wildcard bind has no name of its own
        names.append(f"[{host}]" if ":" in host else host)
    names.extend(settings.allowed_hosts)
    names = list(dict.fromkeys(names))
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[*names, *(f"{n}:*" for n in names)],
        allowed_origins=[f"{scheme}://{n}{port}" for n in names for scheme in ("http", "https")
                         for port in ("", ":*")])


class Mounted:
    """Requests for one of ``mounts``' paths go to its app (the daemon's metrics); the rest,
    lifespan included, to ``app``. Mounted inside the token check, so it guards them too,
    and behind the same Host and Origin check as MCP (DNS rebinding)."""

    def __init__(self, app: ASGIApp, mounts: Mapping[str, ASGIApp],
                 security: TransportSecuritySettings) -> None:
        self.app = app
        self.mounts = dict(mounts)
        self.security = TransportSecurityMiddleware(security)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        mounted = self.mounts.get(scope.get("path", "")) if scope["type"] == "http" else None
        if mounted is None:
            await self.app(scope, receive, send)
            return
        refused = await self.security.validate_request(Request(scope, receive))
        await (refused or mounted)(scope, receive, send)


def asgi_app(server: MCPServer[Any], settings: ServerSettings,
             mounts: Mapping[str, ASGIApp] | None = None) -> ASGIApp:
    app: ASGIApp = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        max_request_body_size=settings.max_body,
        # Each session holds memory until it ends: a bounded number, each ending when idle;
        # the SDK answers one session too many with 503 "Too many open sessions".
        max_sessions=settings.serving.max_sessions,
        session_idle_timeout=settings.serving.session_idle,
        transport_security=transport_security(settings),
        host=settings.http[0] if settings.http else "127.0.0.1",
    )
    if mounts:
        app = Mounted(app, mounts, transport_security(settings))
    if settings.token:
        app = BearerToken(app, settings.token)
    return app


async def serve_http(server: MCPServer[Any], settings: ServerSettings,
                     task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
                     mounts: Mapping[str, ASGIApp] | None = None) -> None:
    """Serve until cancelled; ``task_status`` receives the bound URLs (port 0 resolved).
    ``mounts`` serves other apps at exact paths beside MCP's (see :class:`Mounted`)."""
    from hypercorn.config import Config

    from .hypercorn_worker import serve_asgi

    assert settings.http is not None
    host, port = settings.http
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = "-"  # stderr: stdout is never used by this server
    config.loglevel = settings.log_level
    await serve_asgi(asgi_app(server, settings, mounts), config, write_timeout=settings.serving.send_idle,
                     task_status=task_status)
