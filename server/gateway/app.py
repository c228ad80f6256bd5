"""The gateway's ASGI app: a read-only trustless gateway and a UnixFS path gateway.

``GET``/``HEAD /ipfs/{cid}[/path]`` answers in one of three forms: a raw block
(``application/vnd.ipld.raw``), a CAR stream (``application/vnd.ipld.car``, see
:mod:`.car_scope`), or the deserialized UnixFS file or folder listing. ``/routing/v1`` is
:mod:`.routing`.

Written as a bare ASGI callable, not on a framework, because the spec's details live exactly
where frameworks decide for you: which headers a CAR carries (no Content-Length,
``Accept-Ranges: none``), a CAR that must end *truncated* when a child block is missing (the
app stops without finishing the body, so the client sees an incomplete message, never a
well-formed short CAR), and HEAD answers that never read the body.

Safety, whatever the client sends:
- nothing is fetched for an anonymous client unless a ``remote`` source was given (the
  user's ``--gateway-recursive``), and then at most ``max_fetch_bytes`` per request;
- requests in flight are bounded (``max_in_flight``; beyond it 429 with ``Retry-After``);
- paths, queries, Range headers and listings are bounded (:mod:`.request`);
- a path only follows links inside the DAG of its root CID.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import anyio
import dag_cbor
from multiformats import CID, varint

from ipfs_mcp.backends.cids import cid_str, identity_data, is_identity
from ipfs_mcp.backends.errors import (
    BlockNotFound,
    DagTooLarge,
    IntegrityError,
    InvalidInput,
    IpfsMcpError,
    NotFound,
    TooLarge,
)
from ipfs_mcp.backends.exporter import Exporter
from ipfs_mcp.backends.unixfs import NodeType

from . import listing, mime
from .car_scope import car_blocks
from .request import (
    RAW_TYPE,
    BadRequest,
    ByteRange,
    GatewayRequest,
    parse_range,
    parse_request,
)
from .resolve import (
    DAG_PB,
    RAW,
    PathNotFound,
    ResolvedPath,
    file_size,
    resolve,
    unixfs_node,
)
from .routing import RoutingEndpoints
from .source import BlockSource, ProviderLookup

log = logging.getLogger("ipfs_mcp.gateway")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

IMMUTABLE = b"public, max-age=29030400, immutable"
LISTING_CACHE = b"public, max-age=604800, stale-while-revalidate=2678400"
CORS_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"GET, HEAD, OPTIONS"),
    (b"access-control-allow-headers", b"Content-Type, Range, User-Agent, X-Requested-With"),
    (b"access-control-expose-headers", b"Content-Length, Content-Range, X-Chunked-Output, "
                                       b"X-Stream-Output, X-Ipfs-Path, X-Ipfs-Roots"),
)
_ALLOWED_METHODS = ("GET", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class GatewayLimits:
    """Bounds one gateway enforces. Values are generous for real clients, small for abuse."""

    max_in_flight: int = 64
    # --gateway-recursive only: what one request may make this node fetch.
    max_fetch_bytes: int = 256 * 1024 * 1024
    # Entries shown in one folder listing (a HAMT can hold millions).
    max_listing_entries: int = 10_000
    # Bytes gathered from the worker thread per send: big enough to amortise the hop,
    # small enough to keep memory per request low.
    chunk_bytes: int = 1024 * 1024


class _Loader:
    """One request's block loader (runs in worker threads): local first, then, only with a
    remote source, a bounded fetch."""

    def __init__(self, local: BlockSource, remote: BlockSource | None, budget: int) -> None:
        self._local = local
        self._remote = remote
        self._left = budget
        self._lock = threading.Lock()

    def __call__(self, cid: CID) -> bytes:
        if is_identity(cid):
            return identity_data(cid)
        try:
            return self._local.get_block(cid)
        except BlockNotFound:
            if self._remote is None:
                raise
        data = self._remote.get_block(cid)
        with self._lock:
            self._left -= len(data)
            if self._left < 0:
                raise TooLarge("this request fetched more than the gateway's per-request "
                               "bound (GatewayLimits.max_fetch_bytes)")
        return data


class Gateway:
    """The ASGI app. Components come in through the constructor; nothing is built here.

    ``local`` serves blocks already here. ``remote`` (None unless the user asked for a
    recursive gateway) may fetch from peers and gateways. ``providers`` backs ``/routing/v1``
    (None: those endpoints answer 501).
    """

    def __init__(self, local: BlockSource, *, remote: BlockSource | None = None,
                 providers: ProviderLookup | None = None,
                 limits: GatewayLimits | None = None) -> None:
        self.local = local
        self.remote = remote
        self.limits = limits or GatewayLimits()
        self.routing = RoutingEndpoints(providers)
        self._in_flight = anyio.CapacityLimiter(self.limits.max_in_flight)

    @property
    def recursive(self) -> bool:
        return self.remote is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # websockets: not served
        try:
            self._in_flight.acquire_nowait()
        except anyio.WouldBlock:
            await _plain(send, 429, b"too many requests in flight; retry shortly\n",
                         [(b"retry-after", b"1")])
            return
        try:
            await self._handle(scope, send)
        finally:
            self._in_flight.release()

    async def _handle(self, scope: Scope, send: Send) -> None:
        method = scope["method"]
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        raw_path = raw_path.split(b"?", 1)[0]
        if raw_path.startswith(b"/routing/v1/"):
            await self.routing.handle(scope, send)
            return
        if method not in _ALLOWED_METHODS:
            await _plain(send, 405, b"read-only gateway: GET, HEAD and OPTIONS only\n",
                         [(b"allow", b"GET, HEAD, OPTIONS")])
            return
        if method == "OPTIONS":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [*CORS_HEADERS, (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        if not raw_path.startswith(b"/ipfs/"):
            status = 501 if raw_path.startswith(b"/ipns/") else 404
            await _plain(send, status, b"this gateway serves /ipfs/{cid}[/path] only\n")
            return
        headers = _header_map(scope)
        try:
            request = parse_request(raw_path, scope.get("query_string", b""),
                                    headers.get("accept", ""))
        except BadRequest as exc:
            await _plain(send, 400, f"{exc}\n".encode())
            return
        handler = _Request(self, request, scope, headers, send, method == "HEAD")
        await handler.run()


class _Request:
    """One ``/ipfs/`` request, from resolution to the last byte."""

    def __init__(self, gateway: Gateway, request: GatewayRequest, scope: Scope,
                 headers: dict[str, str], send: Send, head: bool) -> None:
        self.gateway = gateway
        self.request = request
        self.scope = scope
        self.headers = headers
        self.send = send
        self.head = head
        # Cache-Control: only-if-cached: answer from what is here, never fetch (path-gateway
        # spec); a miss is then 412, not 404.
        self.only_if_cached = headers.get("cache-control", "").lower() == "only-if-cached"
        remote = None if self.only_if_cached else gateway.remote
        self.load = _Loader(gateway.local, remote, gateway.limits.max_fetch_bytes)
        self.started = False

    def _common(self, resolved: ResolvedPath | None) -> list[tuple[bytes, bytes]]:
        path = self.request.path.text + ("/" if self.request.path.trailing_slash else "")
        out = [*CORS_HEADERS, (b"x-ipfs-path", _header_text(path)), (b"vary", b"Accept")]
        if resolved is not None:
            roots = ",".join(cid_str(c) for c in resolved.roots)
            out.append((b"x-ipfs-roots", roots.encode()))
        return out

    async def run(self) -> None:
        try:
            resolved = await anyio.to_thread.run_sync(
                resolve, self.request.path.root, self.request.path.segments, self.load)
            if self.request.format == "raw":
                await self._raw(resolved)
            elif self.request.format == "car":
                await self._car(resolved)
            else:
                await self._unixfs(resolved)
        except (BlockNotFound, PathNotFound, NotFound) as exc:
            if self.started:
                raise
            status = 412 if self.only_if_cached else 404
            await _plain(self.send, status, f"{exc}\n".encode(), self._common(None))
        except (BadRequest, DagTooLarge, TooLarge) as exc:
            if self.started:
                raise
            await _plain(self.send, 400, f"{exc}\n".encode(), self._common(None))
        except (IntegrityError, InvalidInput) as exc:
            if self.started:
                raise
            # A block here that is corrupt or malformed (a server fault), or content this
            # gateway does not render (not implemented).
            status = 500 if isinstance(exc, IntegrityError) else 501
            await _plain(self.send, status, f"{exc}\n".encode(), self._common(None))

    async def _start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.started = True
        await self.send({"type": "http.response.start", "status": status, "headers": headers})

    async def _body(self, data: bytes, more: bool = False) -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": more})

    def _if_none_match(self, etag: str) -> bool:
        given = self.headers.get("if-none-match")
        if not given:
            return False
        tags = [t.strip() for t in given.split(",")]
        bare = etag.removeprefix("W/")
        return "*" in tags or any(t.removeprefix("W/") == bare for t in tags)

    async def _not_modified(self, etag: str, resolved: ResolvedPath) -> None:
        await self._start(304, [*self._common(resolved), (b"etag", etag.encode()),
                                (b"cache-control", IMMUTABLE)])
        await self._body(b"")

    def _disposition(self, default_name: str, attachment: bool) -> bytes:
        name = self.request.filename or default_name
        kind = "attachment" if attachment or self.request.download else "inline"
        return _content_disposition(kind, name)

    # -- raw block ------------------------------------------------------------------------
    async def _raw(self, resolved: ResolvedPath) -> None:
        cid, block = resolved.cid, resolved.block
        etag = f'"{cid_str(cid)}.raw"'
        if self._if_none_match(etag):
            await self._not_modified(etag, resolved)
            return
        headers = [*self._common(resolved), (b"content-type", RAW_TYPE.encode()),
                   (b"x-content-type-options", b"nosniff"), (b"etag", etag.encode()),
                   (b"cache-control", IMMUTABLE), (b"accept-ranges", b"bytes"),
                   (b"content-disposition", self._disposition(f"{cid_str(cid)}.bin", True))]
        await self._send_bytes(block, headers)

    async def _send_bytes(self, data: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        """A whole in-memory body, honouring Range (the first range of several)."""
        ranges = parse_range(self.headers.get("range", ""), len(data))
        if ranges == []:
            await self._unsatisfiable(len(data), headers)
            return
        if ranges:
            first = ranges[0]
            part = data[first.start:first.end + 1]
            await self._start(206, [*headers, (b"content-length", str(len(part)).encode()),
                                    _content_range(first, len(data))])
            await self._body(b"" if self.head else part)
            return
        await self._start(200, [*headers, (b"content-length", str(len(data)).encode())])
        await self._body(b"" if self.head else data)

    async def _unsatisfiable(self, size: int, headers: list[tuple[bytes, bytes]]) -> None:
        await self._start(416, [*headers, (b"content-range", f"bytes */{size}".encode()),
                                (b"content-length", b"0")])
        await self._body(b"")

    # -- CAR ------------------------------------------------------------------------------
    async def _car(self, resolved: ResolvedPath) -> None:
        options = self.request.car
        assert options is not None
        root = self.request.path.root
        etag = f'W/"{cid_str(resolved.cid)}.{options.etag_suffix}"'
        if self._if_none_match(etag):
            await self._not_modified(etag, resolved)
            return
        headers = [*self._common(resolved), (b"content-type", options.content_type.encode()),
                   (b"x-content-type-options", b"nosniff"), (b"etag", etag.encode()),
                   (b"cache-control", IMMUTABLE), (b"accept-ranges", b"none"),
                   (b"content-disposition",
                    self._disposition(f"{cid_str(resolved.cid)}.car", True))]
        await self._start(200, headers)
        if self.head:
            await self._body(b"")
            return
        await self._body(_car_header(root), more=True)
        blocks = car_blocks(resolved, options, self.load)
        await self._stream(_car_sections(blocks), f"CAR of {self.request.path.text}")

    async def _stream(self, pieces: Iterator[bytes], what: str) -> None:
        """Send ``pieces`` (a sync iterator that loads blocks) from worker threads, a chunk
        at a time. When it fails mid-way the body is left unfinished: the connection closes
        and the client sees a truncated response, as the spec asks."""
        chunk = self.gateway.limits.chunk_bytes
        while True:
            data, done, error = await anyio.to_thread.run_sync(_gather, pieces, chunk)
            if error is not None:
                if data:
                    await self._body(data, more=True)  # every whole block before the hole
                log.warning("gateway: %s ended early: %s", what, error)
                return  # no final empty body: the response stays incomplete
            await self._body(data, more=not done)
            if done:
                return

    # -- UnixFS ---------------------------------------------------------------------------
    async def _unixfs(self, resolved: ResolvedPath) -> None:
        cid, block = resolved.cid, resolved.block
        if cid.codec.code == RAW:
            await self._file(resolved, cid, block)
            return
        if cid.codec.code != DAG_PB:
            raise InvalidInput(f"{cid_str(cid)} is {cid.codec.name}: this gateway renders "
                               "UnixFS only (ask for ?format=raw or ?format=car)")
        decoded = unixfs_node(cid, block)
        if decoded is None:
            raise InvalidInput(f"{cid_str(cid)} is dag-pb without UnixFS data")
        kind = decoded[1].type
        if kind in (NodeType.FILE, NodeType.RAW):
            await self._file(resolved, cid, block)
        elif kind in (NodeType.DIRECTORY, NodeType.HAMT_SHARD):
            await self._directory(resolved)
        elif kind == NodeType.SYMLINK:
            target = decoded[1].data or b""
            headers = [*self._common(resolved), (b"etag", f'"{cid_str(cid)}"'.encode()),
                       (b"cache-control", IMMUTABLE),
                       (b"content-type", b"inode/symlink")]
            await self._send_bytes(target, headers)
        else:
            raise InvalidInput(f"{cid_str(cid)}: UnixFS {kind.name} is not served")

    async def _directory(self, resolved: ResolvedPath) -> None:
        path = self.request.path
        if not path.trailing_slash:
            # Relative links in a listing or index.html only work below a trailing slash.
            location = "/ipfs/" + "/".join(quote(s, safe="") for s in
                                           (path.root_text, *path.segments)) + "/"
            query = self.scope.get("query_string", b"")
            if query:
                location += "?" + query.decode("latin-1")
            await self._start(301, [*self._common(resolved), (b"location", _header_text(location)),
                                    (b"content-length", b"0")])
            await self._body(b"")
            return
        exporter = Exporter(self.load)
        try:
            index = await anyio.to_thread.run_sync(
                resolve, resolved.cid, ("index.html",), self.load)
        except PathNotFound:
            index = None
        if index is not None:
            decoded = unixfs_node(index.cid, index.block)
            if index.cid.codec.code == RAW or (decoded is not None and decoded[1].type in (
                    NodeType.FILE, NodeType.RAW)):
                await self._file(resolved, index.cid, index.block, etag_cid=resolved.cid,
                                 name="index.html")
                return
        etag = listing.etag(resolved.cid)
        if self._if_none_match(etag):
            await self._start(304, [*self._common(resolved), (b"etag", etag.encode())])
            await self._body(b"")
            return
        limit = self.gateway.limits.max_listing_entries
        entries, omitted = await anyio.to_thread.run_sync(_list, exporter, resolved.cid, limit)
        page = listing.render(path.root_text, path.segments, resolved.cid, entries, omitted)
        headers = [*self._common(resolved), (b"etag", etag.encode()),
                   (b"cache-control", LISTING_CACHE),
                   (b"content-type", b"text/html; charset=utf-8")]
        await self._start(200, [*headers, (b"content-length", str(len(page)).encode())])
        await self._body(b"" if self.head else page)

    async def _file(self, resolved: ResolvedPath, cid: CID, block: bytes, *,
                    etag_cid: CID | None = None, name: str | None = None) -> None:
        etag = f'"{cid_str(etag_cid or cid)}"'
        if self._if_none_match(etag):
            await self._not_modified(etag, resolved)
            return
        exporter = Exporter(self.load)
        size = file_size(cid, block)
        name = name or (self.request.path.segments[-1] if self.request.path.segments else None)
        ranges = parse_range(self.headers.get("range", ""), size)
        first = ranges[0] if ranges else None
        offset = first.start if first else 0
        content_type = mime.by_name(self.request.filename or name or "")
        if content_type is None:
            try:
                head_bytes = await anyio.to_thread.run_sync(_read_head, exporter, cid, 0,
                                                            mime.SNIFF_BYTES)
                content_type = mime.sniff(head_bytes)
            except BlockNotFound:
                if first is None:
                    raise
                # A range read need not have the file's first block; nothing to sniff then.
                content_type = "application/octet-stream"
        headers = [*self._common(resolved), (b"etag", etag.encode()),
                   (b"cache-control", IMMUTABLE), (b"accept-ranges", b"bytes"),
                   (b"content-type", content_type.encode())]
        if self.request.filename or self.request.download:
            headers.append((b"content-disposition",
                            self._disposition(name or cid_str(cid), False)))
        if ranges == []:
            await self._unsatisfiable(size, headers)
            return
        if first is not None:
            length = first.end - first.start + 1
            await self._start(206, [*headers, (b"content-length", str(length).encode()),
                                    _content_range(first, size)])
        else:
            length = size
            await self._start(200, [*headers, (b"content-length", str(size).encode())])
        if self.head or length == 0:
            await self._body(b"")
            return
        pieces = exporter.cat(cid, offset, length)
        await self._stream(pieces, f"file {self.request.path.text}")


def _gather(pieces: Iterator[bytes], target: int
            ) -> tuple[bytes, bool, IpfsMcpError | None]:
    """Up to about ``target`` bytes from ``pieces``, whether it is exhausted, and the error
    that stopped it early (the bytes before the error are still returned)."""
    out: list[bytes] = []
    size = 0
    try:
        for piece in pieces:
            out.append(piece)
            size += len(piece)
            if size >= target:
                return b"".join(out), False, None
    except IpfsMcpError as exc:
        return b"".join(out), True, exc
    return b"".join(out), True, None


def _car_header(root: CID) -> bytes:
    header = dag_cbor.encode({"roots": [root], "version": 1})
    return varint.encode(len(header)) + header


def _car_sections(blocks: Iterator[tuple[CID, bytes]]) -> Iterator[bytes]:
    """CAR v1 sections (varint length, CID, block), as backends/car.py writes them, but
    as pieces for a stream rather than into a file object."""
    for cid, block in blocks:
        cid_bytes = bytes(cid)
        yield varint.encode(len(cid_bytes) + len(block)) + cid_bytes
        yield block


def _read_head(exporter: Exporter, cid: CID, offset: int, length: int) -> bytes:
    return exporter.read(cid, offset, length)


def _list(exporter: Exporter, cid: CID, limit: int) -> tuple[list[listing.ListedEntry], int]:
    entries: list[listing.ListedEntry] = []
    omitted = 0
    for name, child in exporter.children(cid):
        if len(entries) >= limit:
            omitted += 1
            continue
        entries.append(listing.ListedEntry(name, child, None))
    return entries, omitted


def _content_range(byte_range: ByteRange, size: int) -> tuple[bytes, bytes]:
    return b"content-range", f"bytes {byte_range.start}-{byte_range.end}/{size}".encode()


def _content_disposition(kind: str, name: str) -> bytes:
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "\\\"")
    value = f'{kind}; filename="{ascii_name}"'
    if not name.isascii():
        value += f"; filename*=UTF-8''{quote(name, safe='')}"
    return value.encode("latin-1")


def _header_text(text: str) -> bytes:
    """A header value: UTF-8, with control characters percent-encoded so that no name in a
    DAG can end a header line."""
    return "".join(quote(c) if ord(c) < 0x20 or c == "\x7f" else c for c in text).encode()


def _header_map(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        out[key] = f"{out[key]}, {text}" if key in out else text
    return out


async def _plain(send: Send, status: int, body: bytes,
                 extra: list[tuple[bytes, bytes]] | tuple = ()) -> None:
    headers = [*(extra or CORS_HEADERS), (b"content-type", b"text/plain; charset=utf-8"),
               (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
