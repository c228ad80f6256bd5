"""The UnixFS exporter: read files, list and resolve directories, write DAGs to disk.

Blocks come from a ``load(cid) -> bytes`` callable that returns *verified* bytes (the
blockstore's ``get`` does, and so does the router's fetch-on-miss loader). Files stream
block by block; ``offset`` skips whole subtrees using the UnixFS ``blocksizes``, so memory
and work stay proportional to what is read, not to the file.

``get_to_path`` never writes outside ``output_path``: every entry name is checked and
symlinks that would point outside are refused. It never replaces an existing file or a
non-empty folder unless asked (``overwrite``), and the result lands atomically: the whole file
or tree is written beside the target under a temp name, fsynced, then renamed into place.
Before the first byte it sums the declared size (UnixFS ``filesize``/``blocksizes``) and
refuses what the free disk or the write limit cannot hold; while writing it stops at once
when a DAG turns out to hold more than it declared.

Every walk is iterative and bounded by :mod:`.limits` (depth, links per node, entries per
folder; a folder tree is walked by the shared DAG walker), so a hostile DAG gets a one-line
error, never a ``RecursionError``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
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
from ipfs_mcp.backends.core.unixfs import NodeType
from ipfs_mcp.backends.errors import (
    DagTooLarge,
    DiskFull,
    IntegrityError,
    InvalidInput,
    IpfsMcpError,
    NotFound,
    TargetExists,
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
        """A directory's entries with their kinds and sizes, or the file itself."""
        node = self._node(cid)
        entry = self._entry(cid, node, "")
        if entry.kind != "directory":
            return [entry]
        return [self.stat(child, name) for name, child in self._children(cid, node)]

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
        """The bytes writing ``cid`` would put on disk, as its blocks declare them: a file's
        ``filesize``, a symlink's target, the sum over a folder's tree.

        Only each entry's root block is read, never file contents (see :meth:`tree`); the
        walk stops early once the sum is over ``stop_above``, since the write is refused
        anyway.

        Raises:
            DagTooLarge: the tree is deeper or has more entries than the bounds.
        """
        total = 0
        for item in self.tree(cid):
            if item.entry.kind == "symlink":
                total += len((item.entry.target or "").encode())
            elif item.entry.kind == "file":
                total += item.entry.size
            if stop_above is not None and total > stop_above:
                break
        return total

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

    def check_fits(self, cid: CID, output_path: Path, max_bytes: int | None = None) -> int:
        """Refuse, before anything is written, a DAG whose declared size does not fit at
        ``output_path``; returns the declared size.

        Raises:
            WriteTooLarge: over the free disk or the limit (``max_bytes``, else
                ``limits.DEFAULT_WRITE_SHARE`` of the free space).
        """
        output = Path(output_path).absolute()
        free = limits.free_bytes(output)
        limit = limits.write_limit(free, max_bytes)
        declared = self.declared_size(cid, stop_above=min(free, limit))
        if declared > free or declared > limit:
            raise WriteTooLarge(cid_str(cid), declared, free, limit)
        return declared

    # -- to disk ------------------------------------------------------------------------
    def get_to_path(self, cid: CID, output_path: Path, *, overwrite: bool = False,
                    max_bytes: int | None = None, progress: Progress | None = None) -> Entry:
        """Write a file, symlink or whole directory tree to ``output_path``, atomically.

        An existing file (or symlink), or a non-empty folder, is refused unless
        ``overwrite``; then it is replaced only once the new one is complete. An empty
        folder is used for a directory. ``max_bytes`` caps the write (default: a share of the
        free disk, see :mod:`.limits`).

        Raises:
            TargetExists: ``output_path`` exists and ``overwrite`` is false.
            WriteTooLarge: the declared size does not fit (nothing was written).
            IntegrityError: the DAG holds more or other bytes than it declares.
            DiskFull: the file system filled up mid-write (nothing partial is left).
            UnsafePath: an entry name is unsafe, or a symlink would point outside.
        """
        output = Path(output_path).absolute()
        node = self._node(cid)
        entry = self._entry(cid, node, output.name)
        _check_target(output, entry.kind, overwrite)
        declared = self.check_fits(cid, output, max_bytes)
        budget = _Budget(cid_str(cid), declared, progress)
        tmp = output.parent / f".{output.name}.{uuid.uuid4().hex}.part"
        created = _missing_parents(output)
        try:
            try:
                output.parent.mkdir(parents=True, exist_ok=True)
                _fsync_all(self._write_tree(cid, tmp, budget))
                _fsync_dir(output.parent)
                _commit(tmp, output, overwrite)
                _fsync_dir(output.parent)
            except IpfsMcpError:
                raise  # ours (BlockNotFound is also an OSError): never re-labelled as a disk error
            except OSError as exc:
                raise _translate(exc, output) from exc
        except BaseException:
            _remove(tmp)
            for folder in created:  # deepest first; only the empty ones this call made
                with contextlib.suppress(OSError):
                    folder.rmdir()
            raise
        return entry

    def _write_tree(self, cid: CID, root: Path, budget: _Budget) -> list[Path]:
        """Write ``cid`` at ``root`` (a fresh temp path), iteratively; returns the files and
        folders written, which must all be made durable before ``root`` is renamed."""
        written: list[Path] = []
        for item in self.tree(cid):
            dest = root / item.path if item.path else root
            current = item.entry.cid
            if item.entry.kind == "directory":
                dest.mkdir()
                written.append(dest)
                seen: set[str] = set()
                for name, _ in item.children:
                    check_entry_name(name)
                    if name in seen:
                        raise IntegrityError(f"{cid_str(current)} lists {name!r} twice")
                    seen.add(name)
            elif item.entry.kind == "symlink":
                target = item.entry.target or ""
                resolved = Path(os.path.normpath(dest.parent / target))
                if os.path.isabs(target) or not _inside(resolved, root):
                    raise UnsafePath(f"symlink {dest.name!r} -> {target!r} points outside "
                                     "the output folder")
                budget.add(len(target.encode()))
                os.symlink(target, dest)
            else:
                self._write_file(current, item.node, dest, budget)
                written.append(dest)
        return written

    def _write_file(self, cid: CID, node: _Decoded, dest: Path, budget: _Budget) -> None:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "wb") as out:
            for piece in self._file_pieces(cid, node, 0):
                budget.add(len(piece))
                out.write(piece)


def _child_frames(links: tuple[dagpb.PBLink, ...], sizes: tuple[int, ...], offset: int
                  ) -> Iterator[tuple[CID, _Decoded | None, int, int | None]]:
    """The children a read from ``offset`` needs, skipping whole subtrees before it."""
    for link, size in zip(links, sizes, strict=True):
        if offset >= size:
            offset -= size
            continue
        yield link.cid, None, offset, size
        offset = 0


class _Budget:
    """Counts bytes as they are written; stops the write the moment they pass what the DAG
    declared (which :meth:`Exporter.check_fits` already held against disk and limit)."""

    def __init__(self, what: str, declared: int, progress: Progress | None) -> None:
        self.what = what
        self.declared = declared
        self.progress = progress
        self.written = 0

    def add(self, nbytes: int) -> None:
        self.written += nbytes
        if self.written > self.declared:
            raise IntegrityError(f"{self.what} holds more than the {self.declared} bytes it "
                                 "declares; the write was stopped and removed")
        if self.progress is not None:
            self.progress(nbytes)


def _check_target(output: Path, kind: str, overwrite: bool) -> None:
    if not (output.is_symlink() or output.exists()):
        return
    if overwrite:
        return
    if output.is_dir() and not output.is_symlink():
        if kind == "directory" and not any(output.iterdir()):
            return
        raise TargetExists(f"{output} is an existing folder; pass overwrite to replace it")
    raise TargetExists(f"{output} already exists; pass overwrite to replace it")


def _commit(tmp: Path, output: Path, overwrite: bool) -> None:
    """Move the finished ``tmp`` to ``output``; the old one goes only once the new is there."""
    exists = output.is_symlink() or output.exists()
    if not exists or (output.is_dir() and not output.is_symlink() and not any(output.iterdir())):
        if tmp.is_dir() and not tmp.is_symlink():
            try:  # rename(2) takes an empty folder's place and fails on a non-empty one
                os.rename(tmp, output)
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                    raise TargetExists(f"{output} appeared while writing; nothing was "
                                       "replaced") from exc
                raise
            return
        if not exists:
            try:  # link(2) never replaces: a file that appeared meanwhile is kept
                os.link(tmp, output, follow_symlinks=False)
            except FileExistsError as exc:
                raise TargetExists(f"{output} appeared while writing; nothing was "
                                   "replaced") from exc
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV):
                    raise
                os.rename(tmp, output)  # a file system without hard links
                return
            tmp.unlink()
            return
    if not overwrite:
        raise TargetExists(f"{output} already exists; pass overwrite to replace it")
    new_is_dir = tmp.is_dir() and not tmp.is_symlink()
    old_is_dir = output.is_dir() and not output.is_symlink()
    if not new_is_dir and not old_is_dir:
        os.replace(tmp, output)  # one atomic step for a file over a file or symlink
        return
    aside = output.parent / f".{output.name}.{uuid.uuid4().hex}.old"
    os.rename(output, aside)
    try:
        os.rename(tmp, output)
    except BaseException:
        os.rename(aside, output)
        raise
    _remove(aside)


def _missing_parents(output: Path) -> list[Path]:
    """The folders above ``output`` that do not exist yet, deepest first."""
    missing: list[Path] = []
    folder = output.parent
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass


# fsyncs of a tree's files and folders run on a few threads: each waits on the disk, so
# overlapping them turns a folder of many small files from one flush at a time into a few.
_FSYNC_WORKERS = 8


def _fsync_all(paths: list[Path]) -> None:
    """Make every written file and folder durable (in any order: only the final rename of
    the tree makes any of it visible, so it must come after all of them)."""
    if len(paths) <= 1:
        for path in paths:
            _fsync_path(path)
        return
    with ThreadPoolExecutor(max_workers=_FSYNC_WORKERS) as pool:
        for _ in pool.map(_fsync_path, paths):
            pass


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _translate(exc: OSError, output: Path) -> IpfsMcpError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(f"the file system holding {output} is full; the partial output was "
                        "removed and nothing was written")
    return IpfsMcpError(f"cannot write {output}: {exc.strerror or exc}")


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True
