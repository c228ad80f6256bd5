"""The UnixFS exporter: read files, list and resolve directories, write DAGs to disk.

Blocks come from a ``load(cid) -> bytes`` callable that returns *verified* bytes (the
blockstore's ``get`` does, and so does the router's fetch-on-miss loader). Files stream
block by block; ``offset`` skips whole subtrees using the UnixFS ``blocksizes``, so memory
and work stay proportional to what is read, not to the file.

``get_to_path`` never writes outside ``output_path``: every folder, file and link is made
relative to a folder opened by handle when the path was checked (:mod:`.rooted`), every entry
name is checked, and a symlink is written only if its target, followed through the tree
written, stays inside it without passing through another link. It never replaces an existing file or a
non-empty folder unless asked (``overwrite``), and the result lands atomically: the whole file
or tree is written beside the target under a temp name, fsynced, then renamed into place.
Before the first byte it sums the declared size (UnixFS ``filesize``/``blocksizes``) and
refuses what the free disk or the write limit cannot hold, and counts the files and folders
(each distinct node once, so a folder linked a million times costs one read) against the
write's budget and the free inodes; while writing it stops at once when a DAG turns out to
hold more than it declared.

Every walk is iterative and bounded by :mod:`.limits` (depth, links per node, entries per
folder; a folder tree is walked by the shared DAG walker), so a hostile DAG gets a one-line
error, never a ``RecursionError``.
"""

from __future__ import annotations

import errno
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from multiformats import CID

from ipfs_mcp.backends.core import dagpb, limits, unixfs
from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.core.dag import Node, walk_nodes
from ipfs_mcp.backends.core.importer import check_entry_name
from ipfs_mcp.backends.core.rooted import Folder, OutputTarget
from ipfs_mcp.backends.core.unixfs import NodeType
from ipfs_mcp.backends.errors import (
    DagTooLarge,
    DiskFull,
    IntegrityError,
    InvalidInput,
    IpfsMcpError,
    NotFound,
    TargetExists,
    TooManyEntries,
    UnsafePath,
    WriteTooLarge,
)

Loader = Callable[[CID], bytes]
_RAW = 0x55
_DAG_PB = 0x70


@dataclass(frozen=True)
class Entry:
    """What a CID is, as ``ipfs ls``/``ipfs files stat`` would say."""

    cid: CID
    kind: str  # "file" | "directory" | "symlink"
    size: int  # file bytes; 0 for directories
    name: str = ""
    target: str | None = None  # for symlinks

    @property
    def cid_str(self) -> str:
        return cid_str(self.cid)


@dataclass(frozen=True)
class _Decoded:
    links: tuple[dagpb.PBLink, ...]
    fs: unixfs.UnixFSData | None  # None for raw blocks
    raw: bytes | None = None


def _decode(cid: CID, block: bytes) -> _Decoded:
    if cid.codec.code == _RAW:
        return _Decoded((), None, block)
    if cid.codec.code != _DAG_PB:
        raise InvalidInput(f"{cid_str(cid)} is {cid.codec.name}, not UnixFS (dag-pb or raw)")
    node = dagpb.decode(block)
    limits.check_links(len(node.links), cid)
    if node.data is None:
        raise IntegrityError(f"{cid_str(cid)}: dag-pb node without UnixFS data")
    return _Decoded(node.links, unixfs.decode(node.data))


@dataclass(frozen=True)
class TreeEntry:
    """One entry of a folder tree, as :meth:`Exporter.tree` meets it."""

    path: str  # relative to the tree's root, "/"-separated; "" for the root itself
    entry: Entry
    children: tuple[tuple[str, CID], ...]  # a folder's entries in order; () for the rest
    node: _Decoded = field(repr=False)


Progress = Callable[[int], None]
_FILE_KINDS = (NodeType.FILE, NodeType.RAW)
_DIR_KINDS = (NodeType.DIRECTORY, NodeType.HAMT_SHARD)
# HAMT fanouts go-unixfs accepts: powers of two up to 1024 (Kubo writes 256).
_HAMT_FANOUTS = frozenset(1 << n for n in range(1, 11))


@dataclass(frozen=True)
class Listing:
    """One page of a folder's entries in link order (a sharded folder's: HAMT order)."""

    entries: tuple[Entry, ...]
    total: int | None  # the folder's entries; None when a sharded folder's walk stopped early
    more: bool  # entries follow this page


class Exporter:
    def __init__(self, load: Loader) -> None:
        self.load = load

    def _node(self, cid: CID) -> _Decoded:
        return _decode(cid, self.load(cid))

    # -- inspection ---------------------------------------------------------------------
    def stat(self, cid: CID, name: str = "") -> Entry:
        node = self._node(cid)
        return self._entry(cid, node, name)

    @staticmethod
    def _entry(cid: CID, node: _Decoded, name: str) -> Entry:
        if node.fs is None:
            return Entry(cid, "file", len(node.raw or b""), name)
        kind = node.fs.type
        if kind in _FILE_KINDS:
            size = node.fs.filesize
            if size is None:
                size = len(node.fs.data or b"") + sum(node.fs.blocksizes)
            return Entry(cid, "file", size, name)
        if kind in _DIR_KINDS:
            return Entry(cid, "directory", 0, name)
        if kind == NodeType.SYMLINK:
            return Entry(cid, "symlink", 0, name, (node.fs.data or b"").decode(errors="replace"))
        raise InvalidInput(f"{cid_str(cid)}: unsupported UnixFS node type {kind.name}")

    def children(self, cid: CID) -> Iterator[tuple[str, CID]]:
        """Entries of a directory (plain or HAMT-sharded), as ``(name, cid)``.

        Raises:
            InvalidInput: ``cid`` is not a directory.
            DagTooLarge: more than ``limits.MAX_DIR_ENTRIES`` entries.
        """
        node = self._node(cid)
        if node.fs is None or node.fs.type not in _DIR_KINDS:
            raise InvalidInput(f"{cid_str(cid)} is not a directory")
        yield from self._children(cid, node)

    def _children(self, cid: CID, node: _Decoded) -> Iterator[tuple[str, CID]]:
        """Entries in link order; HAMT shards are walked iteratively, at most as deep as the
        hash has bits, and the entry count is bounded."""
        assert node.fs is not None
        count = 0
        # Each frame: the links of one shard still to visit, and that shard's depth.
        stack: list[tuple[Iterator[dagpb.PBLink], int, _Decoded]] = [(iter(node.links), 0, node)]
        hamt = node.fs.type == NodeType.HAMT_SHARD
        while stack:
            links, depth, shard = stack[-1]
            link = next(links, None)
            if link is None:
                stack.pop()
                continue
            if not hamt:
                name, child = link.name, link.cid
            else:
                assert shard.fs is not None
                fanout = shard.fs.fanout or 256
                if fanout not in _HAMT_FANOUTS:
                    raise IntegrityError(f"{cid_str(cid)}: HAMT fanout {fanout} is invalid")
                width = len(f"{fanout - 1:X}")
                if len(link.name) < width:
                    raise IntegrityError(f"HAMT link name {link.name!r} is too short")
                if len(link.name) == width:  # a sub-shard
                    # 64 hash bits, log2(fanout) of them a level: deeper is not a real HAMT.
                    if depth + 1 > 64 // (fanout.bit_length() - 1):
                        raise IntegrityError(f"{cid_str(cid)}: HAMT deeper than its hash bits")
                    sub = self._node(link.cid)
                    if sub.fs is None or sub.fs.type != NodeType.HAMT_SHARD:
                        raise IntegrityError(f"HAMT link {link.name!r} is not a shard")
                    stack.append((iter(sub.links), depth + 1, sub))
                    continue
                name, child = link.name[width:], link.cid
            count += 1
            if count > limits.MAX_DIR_ENTRIES:
                raise DagTooLarge(f"folder {cid_str(cid)} has more than "
                                  f"{limits.MAX_DIR_ENTRIES} entries")
            yield name, child

    def ls(self, cid: CID) -> list[Entry]:
        """All of a directory's entries with their kinds and sizes, or the file itself (for
        a caller that asked for all: an agent's listing is a page, see :meth:`listing`).

        Raises:
            DagTooLarge: more than ``limits.MAX_DIR_ENTRIES`` entries.
        """
        return list(self._page(cid, 0, limits.MAX_DIR_ENTRIES).entries)

    def listing(self, cid: CID, *, offset: int = 0, limit: int | None = None) -> Listing:
        """``limit`` entries of a directory from ``offset`` on, with kinds and sizes (or the
        file itself), never more than ``limits.MAX_LISTED_ENTRIES``: the answer says
        whether the folder goes on past the page.

        The work is the page's, not the folder's: a HAMT folder's shards are walked only
        until ``offset + limit`` entries (and one more, to know whether there are more), and
        only the page's entries are read for their kinds and sizes.

        Raises:
            InvalidInput: a negative ``offset`` or a ``limit`` below 1.
        """
        if offset < 0 or (limit is not None and limit < 1):
            raise InvalidInput("a listing's offset must be 0 or more and its limit 1 or more")
        cap = limits.MAX_LISTED_ENTRIES
        return self._page(cid, offset, cap if limit is None else min(limit, cap))

    def _page(self, cid: CID, offset: int, size: int) -> Listing:
        node = self._node(cid)
        entry = self._entry(cid, node, "")
        if entry.kind != "directory":
            return Listing((entry,), 1, more=False)
        page: list[tuple[str, CID]] = []
        seen = 0
        more = False
        # Lazy: a shard is read when its entries are due, and the walk stops past the page.
        for name, child in self._children(cid, node):
            if len(page) == size:
                more = True  # one entry past the page: the folder goes on
                break
            if seen >= offset:
                page.append((name, child))
            seen += 1
        plain = node.fs is not None and node.fs.type == NodeType.DIRECTORY
        total = len(node.links) if plain else None if more else seen
        return Listing(tuple(self.stat(child, name) for name, child in page), total, more)

    def resolve(self, root: CID, path: str) -> CID:
        """Follow ``a/b/c`` from a directory root.

        Raises:
            NotFound: a path segment does not exist.
        """
        cid = root
        segments = [s for s in path.split("/") if s]
        limits.check_depth(len(segments), f"path {path!r}")
        for segment in segments:
            for name, child in self.children(cid):
                if name == segment:
                    cid = child
                    break
            else:
                raise NotFound(f"no entry {segment!r} in {cid_str(cid)} (resolving {path!r})")
        return cid

    # -- file content -------------------------------------------------------------------
    def cat(self, cid: CID, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Stream a file's bytes from ``offset``, at most ``length`` of them.

        Raises:
            InvalidInput: ``cid`` is a directory, or offset/length are negative.
            IntegrityError: the DAG's sizes lie (a leaf longer than its parent says).
            DagTooLarge: the DAG is deeper than ``limits.MAX_DAG_DEPTH``.
        """
        if offset < 0 or (length is not None and length < 0):
            raise InvalidInput("offset and length must not be negative")
        remaining = length
        for piece in self._file_pieces(cid, self._node(cid), offset):
            if remaining is not None:
                if remaining <= 0:
                    return
                piece = piece[:remaining]
                remaining -= len(piece)
            if piece:
                yield piece

    def _file_pieces(self, cid: CID, node: _Decoded, offset: int) -> Iterator[bytes]:
        """A file's bytes in order, walked depth-first with an explicit stack.

        Every node's sizes are checked before its bytes are used: ``filesize`` must equal its
        own data plus its ``blocksizes``, and each child must hold exactly the ``blocksize``
        its parent declares. So the bytes yielded are exactly the root's declared size, and a
        DAG that lies fails as IntegrityError at the first lie, not after the disk is full.
        """
        if node.fs is not None and node.fs.type == NodeType.SYMLINK:
            raise InvalidInput(f"{cid_str(cid)} is a symlink, not a file")
        if node.fs is not None and node.fs.type not in _FILE_KINDS:
            raise InvalidInput(f"{cid_str(cid)} is a directory, not a file")
        root = cid
        # Frames: (cid, its node if already loaded, offset into it, size the parent declared).
        # Pending siblings wait as one iterator per level, so memory follows the depth.
        first = (cid, node, offset, None)
        levels: list[Iterator[tuple[CID, _Decoded | None, int, int | None]]] = [iter((first,))]
        while levels:
            frame = next(levels[-1], None)
            if frame is None:
                levels.pop()
                continue
            cid, loaded, offset, expected = frame
            limits.check_depth(len(levels), "file", root)
            node = loaded or self._node(cid)
            if node.fs is None:  # a raw leaf
                raw = node.raw or b""
                if expected is not None and len(raw) != expected:
                    raise IntegrityError(f"{cid_str(cid)}: leaf holds {len(raw)} bytes, its "
                                         f"parent declares {expected}")
                if offset < len(raw):
                    yield raw[offset:] if offset else raw
                continue
            if node.fs.type not in _FILE_KINDS:
                raise IntegrityError(f"{cid_str(cid)}: a file links to a "
                                     f"{node.fs.type.name.lower()} node")
            data = node.fs.data or b""
            sizes = node.fs.blocksizes
            if len(sizes) != len(node.links):
                raise IntegrityError(f"{cid_str(cid)}: {len(sizes)} blocksizes for "
                                     f"{len(node.links)} links")
            total = len(data) + sum(sizes)
            if node.fs.filesize is not None and node.fs.filesize != total:
                raise IntegrityError(f"{cid_str(cid)}: filesize {node.fs.filesize} is not its "
                                     f"data plus blocksizes ({total})")
            if expected is not None and total != expected:
                raise IntegrityError(f"{cid_str(cid)}: holds {total} bytes, its parent "
                                     f"declares {expected}")
            if offset < len(data):
                yield data[offset:] if offset else data
                offset = 0
            else:
                offset -= len(data)
            if node.links:
                levels.append(_child_frames(node.links, sizes, offset))

    def read(self, cid: CID, offset: int = 0, length: int | None = None) -> bytes:
        return b"".join(self.cat(cid, offset, length))

    # -- sizing -------------------------------------------------------------------------
    def declared_size(self, cid: CID, *, stop_above: int | None = None) -> int:
        """The bytes writing ``cid`` would put on disk, as its blocks declare them (see
        :meth:`declare`).

        Raises:
            DagTooLarge: the tree is deeper or wider than the bounds.
            TooManyEntries: it holds more entries than ``limits.MAX_TREE_ENTRIES``.
        """
        return self.declare(cid, stop_above=stop_above).size

    def declare(self, cid: CID, *, stop_above: int | None = None,
                max_entries: int | None = None) -> Declared:
        """What writing ``cid`` would create, as its blocks declare it: the bytes (a file's
        ``filesize``, a symlink's target) and the entries (files, folders, links).

        Only each entry's root block is read, never file contents, and each distinct
        node once: a folder linked many times is counted by multiplication, not by walking
        every copy, so three blocks that expand to a million files cost three reads. The
        walk stops once the bytes are over ``stop_above`` (the write is refused anyway),
        and its memory is bounded: each distinct node is at least one entry, so more than
        ``max_entries`` distinct nodes (default ``limits.MAX_TREE_ENTRIES``) is refused;
        a larger count built from fewer nodes is returned exact, for the caller to judge.

        Raises:
            TooManyEntries: more distinct nodes than ``max_entries``.
            DagTooLarge: the tree is deeper or a folder wider than the bounds.
        """
        cap = limits.MAX_TREE_ENTRIES if max_entries is None else max_entries
        known: dict[CID, tuple[int, int]] = {}  # node -> (bytes, entries) under it
        # Folders being summed, deepest last: the folder, its children, the next to visit.
        frames: list[tuple[CID, list[CID], list[int]]] = []

        def enter(node_cid: CID) -> None:
            node = self._node(node_cid)
            entry = self._entry(node_cid, node, "")
            if entry.kind == "directory":
                limits.check_depth(len(frames) + 1, "folder", cid)
                frames.append((node_cid, [c for _, c in self._children(node_cid, node)], [0]))
            elif entry.kind == "symlink":
                known[node_cid] = (len((entry.target or "").encode()), 1)
            else:
                known[node_cid] = (entry.size, 1)
            if len(known) + len(frames) > cap:
                raise TooManyEntries(cid_str(cid), len(known) + len(frames), cap, None)

        enter(cid)
        while frames:
            folder, children, at = frames[-1]
            if at[0] < len(children):
                child = children[at[0]]
                at[0] += 1
                if child not in known:  # a hash DAG holds no cycle: never an open folder
                    enter(child)
                continue
            frames.pop()
            size = sum(known[c][0] for c in children)
            count = 1 + sum(known[c][1] for c in children)
            known[folder] = (size, count)
            if stop_above is not None and size > stop_above:
                return Declared(size, count)
        return Declared(*known[cid])

    def tree(self, cid: CID) -> Iterator[TreeEntry]:
        """Every entry of the tree under ``cid`` (``cid`` first, even a file), depth-first in
        link order, a folder before what it holds. A folder's ``children`` are listed before
        any of them is visited, so the caller may refuse them first.

        Walked by the shared DAG walker, without a seen-set (a folder linked twice is two
        entries), so bounded in depth and in entries (``limits.MAX_TREE_ENTRIES``), with each
        folder's entries bounded as :meth:`children` bounds them.

        Raises:
            DagTooLarge: the tree is deeper or has more entries than the bounds.
        """
        listed: list[tuple[tuple[str, CID], ...]] = [()]  # the entry just yielded's children

        def below(visit: Node[str]) -> list[tuple[CID, str]]:
            rel = visit.context
            return [(child, f"{rel}/{name}" if rel else name) for name, child in listed[0]]

        for visit in walk_nodes(cid, self.load, below, "", dedupe=False, what="folder",
                                entries=True):
            node = _decode(visit.cid, visit.block or b"")
            entry = self._entry(visit.cid, node, visit.context.rpartition("/")[2])
            listed[0] = (tuple(self._children(visit.cid, node)) if entry.kind == "directory"
                         else ())
            yield TreeEntry(visit.context, entry, listed[0], node)

    def check_fits(self, cid: CID, output_path: Path, max_bytes: int | None = None,
                   max_entries: int | None = None) -> int:
        """Refuse, before anything is written, a DAG whose declared size or entry count
        does not fit at ``output_path``; returns the declared size.

        Raises:
            WriteTooLarge: over the free disk or the limit (``max_bytes``, else
                ``limits.DEFAULT_WRITE_SHARE`` of the free space).
            TooManyEntries: more files, folders and links than ``max_entries`` (else
                ``limits.DEFAULT_MAX_WRITE_ENTRIES``) or than the free inodes.
        """
        output = Path(output_path).absolute()
        free = limits.free_bytes(output)
        limit = limits.write_limit(free, max_bytes)
        budget = limits.DEFAULT_MAX_WRITE_ENTRIES if max_entries is None else max_entries
        declared = self.declare(cid, stop_above=min(free, limit), max_entries=budget)
        if declared.size > free or declared.size > limit:
            raise WriteTooLarge(cid_str(cid), declared.size, free, limit)
        limits.check_entries(cid_str(cid), declared.entries, output, budget)
        return declared.size

    # -- to disk ------------------------------------------------------------------------
    def get_to_path(self, cid: CID, output_path: Path | OutputTarget, *,
                    overwrite: bool = False, max_bytes: int | None = None,
                    progress: Progress | None = None) -> Entry:
        """Write a file, symlink or whole directory tree to ``output_path``, atomically.

        ``output_path`` is best an :class:`~.rooted.OutputTarget` opened when the path was
        checked: then every folder, file and link is made relative to the folder it holds
        (see :mod:`.rooted`), whatever happened to the path's text meanwhile. A plain path
        is opened so now. An existing file (or symlink), or a non-empty folder, is refused
        unless ``overwrite``; then it is replaced only once the new one is complete. An
        empty folder is used for a directory. ``max_bytes`` caps the write (default: a
        share of the free disk, see :mod:`.limits`), the target's ``max_entries`` its files
        and folders.

        A DAG symlink is written only if its target, followed through the tree being
        written, stays inside it and passes through no other link; otherwise the whole
        write is refused, naming the link.

        Raises:
            TargetExists: ``output_path`` exists and ``overwrite`` is false.
            WriteTooLarge, TooManyEntries: the declared size or entries do not fit
                (nothing was written).
            IntegrityError: the DAG holds more or other bytes than it declares.
            DiskFull: the file system filled up mid-write (nothing partial is left).
            UnsafePath: an entry name is unsafe, a symlink would lead out, or a link
                appeared where a folder of the path was.
        """
        if isinstance(output_path, OutputTarget):
            return self._write(cid, output_path, overwrite, max_bytes, progress)
        output = Path(output_path).absolute()
        where = Path(os.path.realpath(output.parent)) / output.name
        with OutputTarget.at(where) as target:
            return self._write(cid, target, overwrite, max_bytes, progress)

    def _write(self, cid: CID, target: OutputTarget, overwrite: bool,
               max_bytes: int | None, progress: Progress | None) -> Entry:
        node = self._node(cid)
        entry = self._entry(cid, node, target.name)
        if not target.missing:
            _check_target(target.base, target, entry.kind, overwrite)
        declared = self.check_fits(cid, target.shown, max_bytes, target.max_entries)
        budget = _Budget(cid_str(cid), declared, progress, target.max_entries)
        tmp = f".{target.name}.{uuid.uuid4().hex}.part"
        folder: Folder | None = None
        try:
            try:
                folder = target.parent()
                self._write_tree(cid, folder, tmp, budget)
                folder.fsync()
                _commit(folder, tmp, target, overwrite)
                folder.fsync()
            except IpfsMcpError:
                raise  # ours (BlockNotFound is also an OSError): never re-labelled as a disk error
            except OSError as exc:
                raise _translate(exc, target.shown) from exc
        except BaseException:
            if folder is not None:
                folder.remove(tmp)
            target.discard_made()  # only the empty folders this call made
            raise
        finally:
            if folder is not None:
                folder.close()
        return entry

    def _write_tree(self, cid: CID, parent: Folder, top: str, budget: _Budget) -> None:
        """Write ``cid`` as ``top`` (a fresh temp name) in ``parent``, iteratively, every
        entry relative to an open folder; links last, once the whole tree is known, each
        checked against it. Everything is durable when this returns."""
        syncer = _Syncer()
        folders = _OpenFolders(parent, top, syncer)
        links: list[tuple[str, str]] = []  # (path in the tree, target)
        try:
            for item in self.tree(cid):
                budget.entry()
                if item.entry.kind == "directory":
                    folders.make(item.path)
                    _check_names(item.entry.cid, item.children)
                elif item.entry.kind == "symlink":
                    target = item.entry.target or ""
                    budget.add(len(target.encode()))
                    links.append((item.path, target))
                else:
                    holder, name = folders.holder(item.path)
                    self._write_file(item.entry.cid, item.node, holder.create(name), budget,
                                     syncer)
            within = {path for path, _ in links}
            for path, target in links:
                why = _link_escape(path, target, within)
                if why is not None:
                    shown = path or top.removeprefix(".").rsplit(".", 2)[0]
                    raise UnsafePath(f"symlink {shown!r} -> {target!r} points outside the "
                                     f"output folder: it {why}; nothing was written (a link "
                                     "must stay inside the folder written, without passing "
                                     "through another link)")
            for path, target in links:
                holder, name = folders.holder(path)
                holder.symlink(target, name)
        finally:
            folders.close()
        syncer.finish()

    def _write_file(self, cid: CID, node: _Decoded, fd: int, budget: _Budget,
                    syncer: _Syncer) -> None:
        """Write the file's bytes to the new file ``fd``; the syncer makes it durable and
        closes it."""
        try:
            for piece in self._file_pieces(cid, node, 0):
                budget.add(len(piece))
                view = memoryview(piece)
                while view:
                    view = view[os.write(fd, view):]
        except BaseException:
            os.close(fd)
            raise
        syncer.submit(fd)


def _child_frames(links: tuple[dagpb.PBLink, ...], sizes: tuple[int, ...], offset: int
                  ) -> Iterator[tuple[CID, _Decoded | None, int, int | None]]:
    """The children a read from ``offset`` needs, skipping whole subtrees before it."""
    for link, size in zip(links, sizes, strict=True):
        if offset >= size:
            offset -= size
            continue
        yield link.cid, None, offset, size
        offset = 0


@dataclass(frozen=True)
class Declared:
    """What a write of a DAG would create, as its blocks declare it."""

    size: int  # bytes
    entries: int  # files, folders and links


class _Budget:
    """Counts bytes and entries as they are written; stops the write the moment the bytes
    pass what the DAG declared (which :meth:`Exporter.check_fits` already held against disk
    and limit) or the entries pass the write's budget."""

    def __init__(self, what: str, declared: int, progress: Progress | None,
                 max_entries: int | None = None) -> None:
        self.what = what
        self.declared = declared
        self.progress = progress
        self.written = 0
        self.entries = 0
        self.max_entries = (limits.DEFAULT_MAX_WRITE_ENTRIES if max_entries is None
                            else max_entries)

    def add(self, nbytes: int) -> None:
        self.written += nbytes
        if self.written > self.declared:
            raise IntegrityError(f"{self.what} holds more than the {self.declared} bytes it "
                                 "declares; the write was stopped and removed")
        if self.progress is not None:
            self.progress(nbytes)

    def entry(self) -> None:
        self.entries += 1
        if self.entries > self.max_entries:
            raise TooManyEntries(self.what, self.entries, self.max_entries, None)


def _check_names(folder: CID, children: tuple[tuple[str, CID], ...]) -> None:
    seen: set[str] = set()
    for name, _ in children:
        check_entry_name(name)
        if name in seen:
            raise IntegrityError(f"{cid_str(folder)} lists {name!r} twice")
        seen.add(name)


def _link_escape(path: str, target: str, links: set[str]) -> str | None:
    """Why the link at ``path`` (in the tree written) with ``target`` may not be written,
    or None: its target is followed component by component through the tree itself (not
    tidied as text, where ``s/..`` cancels out even when ``s`` is a link), and must stay
    inside it without passing through another link of the tree (``links``)."""
    if not path:
        return "is the whole output, so it can only lead out of it"
    if not target or target.startswith("/"):
        return "is absolute or empty"
    at = path.split("/")[:-1]  # the folder holding the link
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not at:
                return "climbs above it"
            at.pop()
            continue
        at.append(part)
        here = "/".join(at)
        if here in links:
            return f"passes through the link {here!r}"
    return None


# Folders the tree writer holds open at once: the path it is writing under, up to this
# depth. Deeper (only a hostile DAG is), the shallowest are closed and opened again when
# the walk comes back to them, so no DAG can exhaust the process's descriptors.
_MAX_OPEN_FOLDERS = 64


class _OpenFolders:
    """The folders of the tree being written, by their path in it, opened by handle."""

    def __init__(self, parent: Folder, top: str, syncer: _Syncer) -> None:
        self.parent = parent
        self.top = top
        self.syncer = syncer
        self.open: dict[str, Folder] = {}

    def make(self, path: str) -> None:
        holder, name = self.holder(path)
        self._keep(path, holder.make(name))

    def holder(self, path: str) -> tuple[Folder, str]:
        """The open folder that holds the entry ``path``, and the entry's name in it."""
        if not path:
            return self.parent, self.top
        folder, _, name = path.rpartition("/")
        return self.get(folder), name

    def get(self, path: str) -> Folder:
        for held in [p for p in self.open if not _on_way(p, path)]:
            self.syncer.submit_folder(self.open.pop(held))  # its subtree is complete
        if path in self.open:
            return self.open[path]
        base = path
        while base and base not in self.open:
            base = base.rpartition("/")[0]
        folder = self.open.get(base) if base in self.open else None
        if folder is None:  # the top itself was closed (very deep): open it again
            folder = self.parent.sub(self.top)
            self._keep("", folder)
        rest = path[len(base):].lstrip("/")
        for part in rest.split("/") if rest else ():
            base = f"{base}/{part}" if base else part
            folder = folder.sub(part)
            self._keep(base, folder)
        return folder

    def _keep(self, path: str, folder: Folder) -> None:
        self.open[path] = folder
        while len(self.open) > _MAX_OPEN_FOLDERS:
            shallowest = next(iter(self.open))
            self.syncer.submit_folder(self.open.pop(shallowest))

    def close(self) -> None:
        for folder in self.open.values():
            self.syncer.submit_folder(folder)
        self.open.clear()


def _on_way(held: str, path: str) -> bool:
    """Whether the folder ``held`` is ``path`` or one of its ancestors."""
    return not held or held == path or path.startswith(held + "/")


# fsyncs of a tree's files and folders run on a few threads: each waits on the disk, so
# overlapping them turns a folder of many small files from one flush at a time into a few.
# At most _FSYNC_QUEUE descriptors wait, so memory and descriptors stay bounded.
_FSYNC_WORKERS = 8
_FSYNC_QUEUE = 64


class _Syncer:
    """Makes written files and folders durable (in any order: only the final rename of the
    tree makes any of it visible, so it comes after all of them) and closes them."""

    def __init__(self) -> None:
        self.pool: ThreadPoolExecutor | None = None
        self.slots = threading.BoundedSemaphore(_FSYNC_QUEUE)
        self.errors: list[OSError] = []
        self.first = True

    def submit(self, fd: int) -> None:
        if self.first:  # one file: no threads
            self.first = False
            self._sync(fd, hold=False)
            return
        if self.pool is None:
            self.pool = ThreadPoolExecutor(max_workers=_FSYNC_WORKERS)
        self.slots.acquire()
        self.pool.submit(self._sync, fd, True)

    def submit_folder(self, folder: Folder) -> None:
        fd, folder.fd = folder.fd, -1
        if fd >= 0:
            self.submit(fd)

    def _sync(self, fd: int, hold: bool) -> None:
        try:
            os.fsync(fd)
        except OSError as exc:
            self.errors.append(exc)
        finally:
            os.close(fd)
            if hold:
                self.slots.release()

    def finish(self) -> None:
        """Wait for every fsync.

        Raises:
            OSError: the first that failed.
        """
        if self.pool is not None:
            self.pool.shutdown(wait=True)
        if self.errors:
            raise self.errors[0]


def _check_target(base: Folder, target: OutputTarget, kind: str, overwrite: bool) -> None:
    there = base.kind(target.name)
    if there is None or overwrite:
        return
    if there == "dir":
        if kind == "directory" and not base.holds_entries(target.name):
            return
        raise TargetExists(f"{target} is an existing folder; pass overwrite to replace it")
    raise TargetExists(f"{target} already exists; pass overwrite to replace it")


def _commit(folder: Folder, tmp: str, target: OutputTarget, overwrite: bool) -> None:
    """Move the finished ``tmp`` to the target's name, both in ``folder``; the old one goes
    only once the new is there."""
    name = target.name
    there = folder.kind(name)
    new_is_dir = folder.kind(tmp) == "dir"
    if there is None or (there == "dir" and not folder.holds_entries(name)):
        if new_is_dir:
            try:  # rename(2) takes an empty folder's place and fails on a non-empty one
                folder.rename(tmp, name)
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                    raise TargetExists(f"{target} appeared while writing; nothing was "
                                       "replaced") from exc
                raise
            return
        if there is None:
            try:  # link(2) never replaces: a file that appeared meanwhile is kept
                folder.link(tmp, name)
            except FileExistsError as exc:
                raise TargetExists(f"{target} appeared while writing; nothing was "
                                   "replaced") from exc
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV):
                    raise
                folder.rename(tmp, name)  # a file system without hard links
                return
            folder.remove(tmp)
            return
    if not overwrite:
        raise TargetExists(f"{target} already exists; pass overwrite to replace it")
    if not new_is_dir and there != "dir":
        folder.replace(tmp, name)  # one atomic step for a file over a file or symlink
        return
    aside = f".{name}.{uuid.uuid4().hex}.old"
    folder.rename(name, aside)
    try:
        folder.rename(tmp, name)
    except BaseException:
        folder.rename(aside, name)
        raise
    folder.remove(aside)


def _translate(exc: OSError, output: Path) -> IpfsMcpError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(f"the file system holding {output} is full; the partial output was "
                        "removed and nothing was written")
    return IpfsMcpError(f"cannot write {output}: {exc.strerror or exc}")
