"""Answering one ``/ipfs/{cid}[/path]`` request: a raw block, a CAR stream, or the
deserialized UnixFS file or folder listing, with the headers the gateway specs require.

Blocks are loaded in worker threads (the sources block), many to a thread hop; bodies go out
a chunk at a time, the next chunk read while the last one is sent. When a stream fails
mid-way the body is left unfinished, so the client sees a truncated response (the trustless
spec's rule for a missing child block), never a short complete one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import partial
from urllib.parse import quote

import anyio
import dag_cbor
from anyio.abc import ObjectSendStream
from multiformats import CID, varint

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.core.exporter import Exporter
from ipfs_mcp.backends.core.unixfs import NodeType
from ipfs_mcp.backends.errors import BlockNotFound, IpfsMcpError

from . import dag_views, listing, mime, tar_stream
from .asgi import CORS_HEADERS, IMMUTABLE, LISTING_CACHE, Scope, Send, header_text
from .car_scope import car_blocks
from .disposition import content_disposition
from .failures import NotRendered, failure
from .loader import GatewayLimits, RequestLoader, WorkerThreads
from .pages import send_error
from .request import RAW_TYPE, TAR_TYPE, ByteRange, GatewayRequest, parse_range
from .resolve import (
    DAG_PB,
    RAW,
    PathNotFound,
    ResolvedPath,
    file_size,
    resolve,
    unixfs_node,
)
from .source import BlockSource
from .subdomain import ORIGIN_KEY, Origin

log = logging.getLogger("ipfs_mcp.gateway")

# What one hop to a worker thread gathers: bytes, whether the stream is exhausted, and the
# error that ended it early (the bytes before the error are still there).
Gathered = tuple[bytes, bool, IpfsMcpError | None]


class ContentRequest:
    """One ``/ipfs/`` request, from resolution to the last byte."""

    def __init__(self, local: BlockSource, remote: BlockSource | None, limits: GatewayLimits,
                 threads: WorkerThreads, request: GatewayRequest, scope: Scope,
                 headers: dict[str, str], send: Send, head: bool) -> None:
        self.limits = limits
        self.threads = threads
        self.request = request
        self.scope = scope
        self.headers = headers
        self.send = send
        self.head = head
        # Cache-Control: only-if-cached: answer from what is here, never fetch (path-gateway
        # spec); a miss is then 412, not 404.
        self.only_if_cached = headers.get("cache-control", "").lower() == "only-if-cached"
        self.load = RequestLoader(local, None if self.only_if_cached else remote,
                                  limits.max_fetch_bytes)
        # Listing sizes read only blocks already here: a listing never fetches a folder's
        # every entry from the network.
        self.load_here = RequestLoader(local, None, 0)
        self.recursive = remote is not None
        self.started = False
        self.origin: Origin | None = scope.get(ORIGIN_KEY)

    def _common(self, resolved: ResolvedPath | None) -> list[tuple[bytes, bytes]]:
        path = self.request.path.text + ("/" if self.request.path.trailing_slash else "")
        out = [*CORS_HEADERS, (b"x-ipfs-path", header_text(path)), (b"vary", b"Accept")]
        if resolved is not None:
            roots = ",".join(cid_str(c) for c in resolved.roots)
            out.append((b"x-ipfs-roots", roots.encode()))
        return out

    async def run(self) -> None:
        try:
            resolved = await self.threads.run_sync(
                partial(resolve, self.request.path.root, self.request.path.segments, self.load))
            if self.request.format == "raw":
                await self._raw(resolved)
            elif self.request.format == "car":
                await self._car(resolved)
            elif self.request.format == "tar":
                await self._tar(resolved)
            else:
                await self._by_codec(resolved)
        except IpfsMcpError as exc:
            answer = failure(exc, only_if_cached=self.only_if_cached,
                             recursive=self.recursive)
            if self.started or answer is None:
                raise
            await send_error(self.send, answer.status, answer.title, answer.message,
                             self.headers.get("accept", ""), self._common(None), self.head)

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
        return content_disposition(kind, name)

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
        of many blocks per hop, the next chunk read (and hashed, which frees the GIL) while
        this one is sent. When it fails mid-way the body is left unfinished: the connection
        closes and the client sees a truncated response, as the spec asks. A client that
        goes away cancels both sides; the read in flight ends at its chunk."""
        # Unbuffered: the reader holds at most one chunk while the last one is sent.
        ready, chunks = anyio.create_memory_object_stream[Gathered](0)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._read_ahead, pieces, ready)
            async with chunks:
                async for data, done, error in chunks:
                    if error is not None:
                        if data:
                            await self._body(data, more=True)  # the whole blocks before it
                        log.warning("gateway: %s ended early: %s", what, error)
                        return  # no final empty body: the response stays incomplete
                    await self._body(data, more=not done)
                    if done:
                        return

    async def _read_ahead(self, pieces: Iterator[bytes],
                          ready: ObjectSendStream[Gathered]) -> None:
        """Gather ``pieces`` a chunk per thread hop until they are exhausted or fail (the
        walk under them is bounded, so this loop is too)."""
        gather = partial(_gather, pieces, self.limits.chunk_bytes)
        async with ready:
            done = False
            while not done:
                gathered = await self.threads.run_sync(gather)
                done = gathered[1]
                try:
                    await ready.send(gathered)
                except anyio.BrokenResourceError:
                    return  # the sender stopped (its client is gone): its error is the one

    # -- codec blocks and TAR (see dag_views, tar_stream) ---------------------------------
    async def _by_codec(self, resolved: ResolvedPath) -> None:
        answer = dag_views.plan(self.request.format, resolved, self.headers.get("accept", ""))
        if answer.kind == "html":
            await self._dag_html(resolved)
        elif answer.kind == "block":
            assert answer.content_type is not None
            await self._codec_block(resolved, answer.content_type)
        else:
            await self._unixfs(resolved)

    async def _codec_block(self, resolved: ResolvedPath, content_type: str) -> None:
        etag = dag_views.etag(resolved.cid, content_type)
        if self._if_none_match(etag):
            await self._not_modified(etag, resolved)
            return
        name, attachment = dag_views.download_name(resolved.cid, content_type)
        headers = [*self._common(resolved), (b"content-type", content_type.encode()),
                   (b"x-content-type-options", b"nosniff"), (b"etag", etag.encode()),
                   (b"cache-control", IMMUTABLE), (b"accept-ranges", b"bytes"),
                   (b"content-disposition", self._disposition(name, attachment))]
        await self._send_bytes(resolved.block, headers)

    async def _dag_html(self, resolved: ResolvedPath) -> None:
        etag = dag_views.html_etag(resolved.cid)
        if self._if_none_match(etag):
            await self._start(304, [*self._common(resolved), (b"etag", etag.encode())])
            await self._body(b"")
            return
        page = dag_views.html_view(resolved, self.request.path.text)
        await self._start(200, [*self._common(resolved), (b"etag", etag.encode()),
                                (b"cache-control", dag_views.HTML_CACHE),
                                (b"content-type", b"text/html; charset=utf-8"),
                                (b"content-length", str(len(page)).encode())])
        await self._body(b"" if self.head else page)

    async def _tar(self, resolved: ResolvedPath) -> None:
        cid = resolved.cid
        etag = f'W/"{cid_str(cid)}.x-tar"'
        if self._if_none_match(etag):
            await self._not_modified(etag, resolved)
            return
        pieces = tar_stream.tar_pieces(Exporter(self.load), cid, cid_str(cid))
        # The first chunk is made before the status goes out, so a DAG refused at its first
        # entries (a name leaving the archive, a missing block) gets an error status.
        data, done, error = await self.threads.run_sync(
            partial(_gather, pieces, self.limits.chunk_bytes))
        if error is not None:
            raise error
        headers = [*self._common(resolved), (b"content-type", TAR_TYPE.encode()),
                   (b"x-content-type-options", b"nosniff"), (b"etag", etag.encode()),
                   (b"cache-control", IMMUTABLE), (b"accept-ranges", b"none"),
                   (b"content-disposition", self._disposition(f"{cid_str(cid)}.tar", True))]
        await self._start(200, headers)
        if self.head:
            await self._body(b"")
            return
        await self._body(data, more=not done)
        if not done:
            await self._stream(pieces, f"TAR of {self.request.path.text}")

    # -- UnixFS ---------------------------------------------------------------------------
    async def _unixfs(self, resolved: ResolvedPath) -> None:
        cid, block = resolved.cid, resolved.block
        if cid.codec.code == RAW:
            await self._file(resolved, cid, block)
            return
        if cid.codec.code != DAG_PB:
            raise NotRendered(f"{cid_str(cid)} is {cid.codec.name}: this gateway renders "
                               "UnixFS only (ask for ?format=raw or ?format=car)")
        decoded = unixfs_node(cid, block)
        if decoded is None:
            raise NotRendered(f"{cid_str(cid)} is dag-pb without UnixFS data")
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
            raise NotRendered(f"{cid_str(cid)}: UnixFS {kind.name} is not served")

    async def _directory(self, resolved: ResolvedPath) -> None:
        path = self.request.path
        if not path.trailing_slash:
            # Relative links in a listing or index.html only work below a trailing slash.
            location = "/ipfs/" + "/".join(quote(s, safe="") for s in
                                           (path.root_text, *path.segments)) + "/"
            if self.origin is not None:  # a subdomain's paths start below its root
                location = location.removeprefix(self.origin.root)
            query = self.scope.get("query_string", b"")
            if query:
                location += "?" + query.decode("latin-1")
            await self._start(301, [*self._common(resolved), (b"location", header_text(location)),
                                    (b"content-length", b"0")])
            await self._body(b"")
            return
        exporter = Exporter(self.load)
        try:
            index = await self.threads.run_sync(
                partial(resolve, resolved.cid, ("index.html",), self.load))
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
        page_entries = await self.threads.run_sync(partial(
            listing.list_folder, exporter.children(resolved.cid), self.load_here,
            self.limits.max_listing_entries, self.limits.max_listing_sizes))
        page = listing.render(path.root_text, path.segments, resolved.cid, page_entries,
                              self.origin.gateway if self.origin is not None else None)
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
                head_bytes = await self.threads.run_sync(
                    partial(_read_head, exporter, cid, 0, mime.SNIFF_BYTES))
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


def _gather(pieces: Iterator[bytes], target: int) -> Gathered:
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


def _content_range(byte_range: ByteRange, size: int) -> tuple[bytes, bytes]:
    return b"content-range", f"bytes {byte_range.start}-{byte_range.end}/{size}".encode()
