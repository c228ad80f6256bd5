"""The gateway's ASGI app: a read-only trustless gateway and a UnixFS path gateway.

``GET``/``HEAD /ipfs/{cid}[/path]`` answers in one of three forms: a raw block
(``application/vnd.ipld.raw``), a CAR stream (``application/vnd.ipld.car``, see
:mod:`.car_scope`), or the deserialized UnixFS file or folder listing (all answered by
:mod:`.content`). ``/routing/v1`` is :mod:`.routing`.

Written as a bare ASGI callable, not on a framework, because the spec's details live exactly
where frameworks decide for you: which headers a CAR carries (no Content-Length,
``Accept-Ranges: none``), a CAR that must end *truncated* when a child block is missing (the
app stops without finishing the body, so the client sees an incomplete message, never a
well-formed short CAR), and HEAD answers that never read the body.

Safety, whatever the client sends:
- nothing is fetched for an anonymous client unless a ``remote`` source was given (the
  user's ``--gateway-recursive``), and then at most ``max_fetch_bytes`` per request;
- requests in flight are bounded, in all (``max_in_flight``) and from one client address
  (``max_per_client``), so no one client takes every slot; beyond either, 429 with
  ``Retry-After`` (:mod:`.slots`); a response whose client stops reading is dropped by
  the server (:func:`.serve.serve_gateway`'s ``write_timeout``), and a request whose client
  is gone stops there, freeing its slot;
- paths, queries, Range headers and listings are bounded (:mod:`.request`);
- no answer names a local path or quotes a library: errors from below the gateway are
  answered by kind (:mod:`.failures`), as HTML for browsers and text for other clients
  (:mod:`.pages`), and ``/`` says what this gateway is;
- a path only follows links inside the DAG of its root CID.
"""

from __future__ import annotations

import anyio

from ipfs_mcp.backends.errors import IpfsMcpError

from . import ipns_paths, pages
from .asgi import (
    CORS_HEADERS,
    Receive,
    Scope,
    Send,
    header_map,
    header_text,
    lifespan,
    plain,
    send_page,
)
from .content import ContentRequest
from .loader import AnyioThreads, GatewayLimits, WorkerThreads
from .request import BadRequest, parse_request
from .routing import RoutingEndpoints
from .slots import RequestSlots, client_key
from .source import BlockSource, ProviderLookup
from .subdomain import ORIGIN_KEY, Origin, Redirect, Rewrite, SubdomainHosts
from .subdomain import _split_host as split_host  # the Host's name, without its port

__all__ = ["Gateway", "GatewayLimits"]

_ALLOWED_METHODS = ("GET", "HEAD", "OPTIONS")


async def _cancel_on_disconnect(receive: Receive, handler: anyio.CancelScope) -> None:
    """Cancel ``handler`` once its client is gone (it hung up, or the server dropped it for
    reading nothing), so the request stops fetching for no one and frees its slot now.

    A request without a body brings an empty body message or two (servers differ), then,
    when the client is gone, the disconnect. At a body with bytes in it this stops
    watching: the gateway reads no bodies, and reading one here would let a client keep
    the server busy discarding bytes.
    """
    for _ in range(4):
        message = await receive()
        if message["type"] == "http.disconnect":
            handler.cancel()
            return
        if message.get("body"):
            return


class Gateway:
    """The ASGI app. Components come in through the constructor; nothing is built here.

    ``local`` serves blocks already here. ``remote`` (None unless the user asked for a
    recursive gateway) may fetch from peers and gateways. ``providers`` backs ``/routing/v1``
    (None: those endpoints answer 501). ``threads`` runs the block reads (default: anyio's
    worker threads). ``subdomains`` names the hosts served as subdomain gateways (default:
    ``localhost``, as Kubo does).
    """

    def __init__(self, local: BlockSource, *, remote: BlockSource | None = None,
                 providers: ProviderLookup | None = None,
                 limits: GatewayLimits | None = None,
                 threads: WorkerThreads | None = None,
                 subdomains: SubdomainHosts | None = None,
                 names: ipns_paths.NameLookup | None = None) -> None:
        self.local = local
        self.names = names  # /ipns/ (None: answered 501)
        self.remote = remote
        self.limits = limits or GatewayLimits()
        self.threads = threads or AnyioThreads()
        self.routing = RoutingEndpoints(providers)
        self.subdomains = subdomains or SubdomainHosts()
        self._slots = RequestSlots(self.limits.max_in_flight, self.limits.max_per_client)

    @property
    def recursive(self) -> bool:
        return self.remote is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # websockets: not served
        client = client_key(scope)
        refused = self._slots.take(client)
        if refused is not None:
            await plain(send, 429, f"{refused}\n".encode(), [(b"retry-after", b"1")])
            return
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_cancel_on_disconnect, receive, tg.cancel_scope)
                await self._handle(scope, send)
                tg.cancel_scope.cancel()
        finally:
            self._slots.give_back(client)

    async def _handle(self, scope: Scope, send: Send) -> None:
        method = scope["method"]
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        raw_path = raw_path.split(b"?", 1)[0]
        if raw_path.startswith(b"/routing/v1/"):
            await self.routing.handle(scope, send)
            return
        if method not in _ALLOWED_METHODS:
            await plain(send, 405, b"read-only gateway: GET, HEAD and OPTIONS only\n",
                         [(b"allow", b"GET, HEAD, OPTIONS")])
            return
        if method == "OPTIONS":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [*CORS_HEADERS, (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        headers = header_map(scope)
        accept = headers.get("accept", "")
        head = method == "HEAD"
        routed = await self._by_host(scope, raw_path, headers, send, head)
        if routed is None:
            return
        scope, raw_path = routed
        if raw_path == b"/":
            body, content_type = pages.landing(self.recursive, self.routing.lookup is not None,
                                               accept)
            await send_page(send, 200, body, content_type, list(CORS_HEADERS), head)
            return
        if raw_path.startswith(b"/ipns/") and self.names is not None:
            resolved = await self._by_name(scope, raw_path, accept, send, head)
            if resolved is None:
                return
            scope = {**scope, ORIGIN_KEY: ipns_paths.resolved_origin(scope.get(ORIGIN_KEY),
                                                                     raw_path, resolved)}
            raw_path = resolved
        if not raw_path.startswith(b"/ipfs/"):
            status = 501 if raw_path.startswith(b"/ipns/") else 404
            await pages.send_error(send, status, "Not served" if status == 501 else "Not found",
                                   "This gateway serves /ipfs/<cid>[/path] only.", accept,
                                   head=head)
            return
        try:
            request = parse_request(raw_path, scope.get("query_string", b""), accept)
        except BadRequest as exc:
            await pages.send_error(send, 400, "Bad request", str(exc), accept, head=head)
            return
        handler = ContentRequest(self.local, self.remote, self.limits, self.threads, request,
                                 scope, headers, send, head)
        await handler.run()

    async def _by_name(self, scope: Scope, raw_path: bytes, accept: str, send: Send,
                       head: bool) -> bytes | None:
        """The ``/ipfs/`` path a ``/ipns/`` request is served as, or None when it was
        answered here (a key's record, or a name that does not resolve)."""
        assert self.names is not None
        try:
            if ipns_paths.wants_record(scope.get("query_string", b""), accept):
                record = await ipns_paths.record_for(getattr(self.names, "names", None),
                                                     raw_path)
                extra = ipns_paths.record_headers(raw_path, scope.get("query_string", b""),
                                                  record)
                await send_page(send, 200, record, ipns_paths.IPNS_RECORD.encode(),
                                [*CORS_HEADERS, *extra], head)
                return None
            location = ipns_paths.canonical_location(raw_path)
            if location is not None:
                await plain(send, 302, b"", [*CORS_HEADERS, (b"location", location)])
                return None
            return (await ipns_paths.to_ipfs_path(self.names, raw_path)).raw_path
        except IpfsMcpError as exc:
            status, title, message = ipns_paths.failure(exc)
            await pages.send_error(send, status, title, message, accept, head=head)
            return None

    async def _by_host(self, scope: Scope, raw_path: bytes, headers: dict[str, str],
                       send: Send, head: bool) -> tuple[Scope, bytes] | None:
        """The scope and path to serve once the subdomain gateway has read the host, or
        None when it answered (a redirect, or a CID no DNS label can hold)."""
        accept = headers.get("accept", "")
        try:
            routed = self.subdomains.route(raw_path, scope.get("query_string", b""), headers,
                                           scope.get("scheme", "http"))
        except BadRequest as exc:
            await pages.send_error(send, 400, "Bad request", str(exc), accept, head=head)
            return None
        if routed is None:
            host = headers.get("x-forwarded-host") or headers.get("host", "")
            site = (await ipns_paths.dnslink_site(self.names, split_host(host)[0])
                    if self.names is not None else None)
            if site is None:
                return scope, raw_path
            routed = Rewrite(site.encode() + raw_path, Origin(site, host))
        if isinstance(routed, Redirect):
            await plain(send, 301, b"", [*CORS_HEADERS,
                                         (b"location", header_text(routed.location))])
            return None
        return {**scope, "raw_path": routed.path, ORIGIN_KEY: routed.origin}, routed.path
