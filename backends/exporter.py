"""The UnixFS exporter: read files, list and resolve directories, write DAGs to disk.

Blocks come from a ``load(cid) -> bytes`` callable that returns *verified* bytes (the
blockstore's ``get`` does, and so does the router's fetch-on-miss loader). Files stream
block by block; ``offset`` skips whole subtrees using the UnixFS ``blocksizes``, so memory
and work stay proportional to what is read, not to the file.

``get_to_path`` never writes outside ``output_path``: every entry name is checked, files are
written to a temp name and renamed, and symlinks that would point outside are refused.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from multiformats import CID

from . import dagpb, unixfs
from .cids import cid_str
from .errors import IntegrityError, InvalidInput, NotFound, UnsafePath
from .importer import check_entry_name
from .unixfs import NodeType

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
    if node.data is None:
        raise IntegrityError(f"{cid_str(cid)}: dag-pb node without UnixFS data")
    return _Decoded(node.links, unixfs.decode(node.data))


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
        if kind in (NodeType.FILE, NodeType.RAW):
            size = node.fs.filesize
            if size is None:
                size = len(node.fs.data or b"") + sum(node.fs.blocksizes)
            return Entry(cid, "file", size, name)
        if kind in (NodeType.DIRECTORY, NodeType.HAMT_SHARD):
            return Entry(cid, "directory", 0, name)
        if kind == NodeType.SYMLINK:
            return Entry(cid, "symlink", 0, name, (node.fs.data or b"").decode(errors="replace"))
        raise InvalidInput(f"{cid_str(cid)}: unsupported UnixFS node type {kind.name}")

    def children(self, cid: CID) -> Iterator[tuple[str, CID]]:
        """Entries of a directory (plain or HAMT-sharded), as ``(name, cid)``.

        Raises:
            InvalidInput: ``cid`` is not a directory.
        """
        node = self._node(cid)
        if node.fs is None or node.fs.type not in (NodeType.DIRECTORY, NodeType.HAMT_SHARD):
            raise InvalidInput(f"{cid_str(cid)} is not a directory")
        yield from self._children(node)

    def _children(self, node: _Decoded) -> Iterator[tuple[str, CID]]:
        assert node.fs is not None
        if node.fs.type == NodeType.DIRECTORY:
            for link in node.links:
                yield link.name, link.cid
            return
        fanout = node.fs.fanout or 256
        width = len(f"{fanout - 1:X}")
        for link in node.links:
            if len(link.name) < width:
                raise IntegrityError(f"HAMT link name {link.name!r} is too short")
            if len(link.name) == width:  # a sub-shard
                sub = self._node(link.cid)
                if sub.fs is None or sub.fs.type != NodeType.HAMT_SHARD:
                    raise IntegrityError(f"HAMT link {link.name!r} is not a shard")
                yield from self._children(sub)
            else:
                yield link.name[width:], link.cid

    def ls(self, cid: CID) -> list[Entry]:
        """A directory's entries with their kinds and sizes, or the file itself."""
        node = self._node(cid)
        entry = self._entry(cid, node, "")
        if entry.kind != "directory":
            return [entry]
        return [self.stat(child, name) for name, child in self._children(node)]

    def resolve(self, root: CID, path: str) -> CID:
        """Follow ``a/b/c`` from a directory root.

        Raises:
            NotFound: a path segment does not exist.
        """
        cid = root
        for segment in [s for s in path.split("/") if s]:
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
        if node.fs is None:
            yield (node.raw or b"")[offset:]
            return
        if node.fs.type == NodeType.SYMLINK:
            raise InvalidInput(f"{cid_str(cid)} is a symlink, not a file")
        if node.fs.type not in (NodeType.FILE, NodeType.RAW):
            raise InvalidInput(f"{cid_str(cid)} is a directory, not a file")
        data = node.fs.data or b""
        if offset < len(data):
            yield data[offset:]
            offset = 0
        else:
            offset -= len(data)
        if node.links and len(node.fs.blocksizes) != len(node.links):
            raise IntegrityError(f"{cid_str(cid)}: blocksizes do not match its links")
        for link, size in zip(node.links, node.fs.blocksizes, strict=False):
            if offset >= size:
                offset -= size
                continue
            child = self._node(link.cid)
            yield from self._file_pieces(link.cid, child, offset)
            offset = 0

    def read(self, cid: CID, offset: int = 0, length: int | None = None) -> bytes:
        return b"".join(self.cat(cid, offset, length))

    # -- to disk ------------------------------------------------------------------------
    def get_to_path(self, cid: CID, output_path: Path,
                    progress: Callable[[int], None] | None = None) -> Entry:
        """Write a file, symlink or whole directory tree to ``output_path``.

        Raises:
            UnsafePath: an entry name is unsafe, or a symlink would point outside.
        """
        output = Path(output_path).absolute()
        return self._write(cid, output, output, progress)

    def _write(self, cid: CID, dest: Path, root: Path,
               progress: Callable[[int], None] | None) -> Entry:
        node = self._node(cid)
        entry = self._entry(cid, node, dest.name)
        if entry.kind == "directory":
            if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
                raise UnsafePath(f"{dest} exists and is not a folder")
            dest.mkdir(parents=True, exist_ok=True)
            seen: set[str] = set()
            for name, child in self._children(node):
                check_entry_name(name)
                if name in seen:
                    raise IntegrityError(f"{cid_str(cid)} lists {name!r} twice")
                seen.add(name)
                self._write(child, dest / name, root, progress)
        elif entry.kind == "symlink":
            target = entry.target or ""
            resolved = Path(os.path.normpath(dest.parent / target))
            if os.path.isabs(target) or not _inside(resolved, root):
                raise UnsafePath(f"symlink {dest.name!r} -> {target!r} points outside {root}")
            if dest.is_symlink() or dest.exists():
                dest.unlink()
            os.symlink(target, dest)
        else:
            self._write_file(cid, node, dest, progress)
        return entry

    def _write_file(self, cid: CID, node: _Decoded, dest: Path,
                    progress: Callable[[int], None] | None) -> None:
        if dest.is_symlink() or dest.is_dir():
            raise UnsafePath(f"{dest} exists and is not a regular file")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex}.part"
        try:
            with open(tmp, "xb") as out:
                for piece in self._file_pieces(cid, node, 0):
                    out.write(piece)
                    if progress is not None:
                        progress(len(piece))
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True
