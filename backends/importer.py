"""The UnixFS importer: bytes, files and folders into dag-pb DAGs with Kubo's CIDs.

It reproduces ``ipfs add`` (Kubo 0.22 / boxo) byte for byte:

* fixed-size chunks (``size-262144`` by default), read with full reads as Kubo does;
* the *balanced* layout with at most 174 links per node: the first leaf becomes the root,
  and each time the tree is full it becomes the first child of a new root one level up,
  whose remaining children are filled depth-first (``fillNodeRec`` in boxo);
* CIDv0 with dag-pb leaves by default; ``cid_version=1`` implies raw leaves;
* directories as sorted dag-pb links, switched to a HAMT (fanout 256, murmur3) once the
  estimated link size (name length + CID length, summed) reaches the sharding threshold;
* hidden files are skipped unless asked for, symlinks become UnixFS symlink nodes.

Memory is bounded: one chunk plus the link lists of the nodes on the current path.
Blocks go to a :class:`BlockSink` as they are made (or nowhere, to only compute CIDs).
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from multiformats import CID

from . import hamt, unixfs
from .cids import cid_from_bytes
from .dagpb import encode_link, encode_node
from .errors import InvalidInput, NotFound, UnsafePath

DEFAULT_CHUNK_SIZE = 262144
DEFAULT_MAX_LINKS = 174
DEFAULT_SHARD_THRESHOLD = 262144  # Kubo's Internal.UnixFSShardingSizeThreshold ("256KiB")
MAX_CHUNK_SIZE = 1024 * 1024  # Kubo refuses larger chunks: peers won't accept such blocks

_RAW = 0x55
_DAG_PB = 0x70
_SHA256 = b"\x12\x20"


class BlockSink(Protocol):
    """Where the importer puts each finished block (the blockstore, a CAR writer, ...)."""

    def put_block(self, cid: bytes, data: bytes) -> None: ...


@dataclass(frozen=True)
class ImportOptions:
    """What ``ipfs add`` calls its flags. ``raw_leaves=None`` means "as Kubo would"."""

    cid_version: int = 0
    raw_leaves: bool | None = None
    chunk_size: int = DEFAULT_CHUNK_SIZE
    max_links: int = DEFAULT_MAX_LINKS
    wrap_with_directory: bool = False
    hidden: bool = False
    follow_symlinks: bool = False  # ours, not Kubo's: needed for HF snapshots (links to blobs)
    shard_threshold: int = DEFAULT_SHARD_THRESHOLD

    def __post_init__(self) -> None:
        if self.cid_version not in (0, 1):
            raise InvalidInput(f"cid_version must be 0 or 1, not {self.cid_version}")
        if not 1 <= self.chunk_size <= MAX_CHUNK_SIZE:
            raise InvalidInput(f"chunk_size must be in 1..{MAX_CHUNK_SIZE}, not {self.chunk_size}")
        if self.max_links < 2:
            raise InvalidInput("max_links must be at least 2")

    @property
    def leaves_are_raw(self) -> bool:
        return self.cid_version == 1 if self.raw_leaves is None else self.raw_leaves

    @classmethod
    def from_chunker(cls, chunker: str, **kwargs: object) -> ImportOptions:
        """Parse Kubo's ``--chunker size-N`` spelling.

        Raises:
            InvalidInput: any other chunker (rabin and buzhash are not supported).
        """
        if chunker == "default":
            return cls(**kwargs)  # type: ignore[arg-type]
        name, _, size = chunker.partition("-")
        if name != "size" or not size.isdigit():
            raise InvalidInput(f"unsupported chunker {chunker!r}: use size-N")
        return cls(chunk_size=int(size), **kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Node:
    """A finished DAG node: its binary CID, cumulative size (Tsize) and content size."""

    cid: bytes
    tsize: int
    size: int  # file bytes under this node (0 for directories)

    @property
    def cid_obj(self) -> CID:
        return cid_from_bytes(self.cid)


@dataclass(frozen=True)
class AddedEntry:
    """One file, folder or symlink that was imported, as ``ipfs add`` lists it."""

    path: str  # relative path inside the import ("" for a lone root)
    cid: CID
    size: int
    kind: str  # "file" | "directory" | "symlink"


@dataclass
class ImportResult:
    root: CID
    size: int
    entries: list[AddedEntry] = field(default_factory=list)


class _DiscardSink:
    def put_block(self, cid: bytes, data: bytes) -> None:
        return None


ProgressFn = Callable[[int], None]


class Importer:
    """Builds UnixFS DAGs; one instance per set of options and sink."""

    def __init__(self, sink: BlockSink | None = None, options: ImportOptions | None = None,
                 progress: ProgressFn | None = None) -> None:
        self.sink = sink if sink is not None else _DiscardSink()
        self.options = options or ImportOptions()
        self.progress = progress
        self._pb_prefix = b"" if self.options.cid_version == 0 else b"\x01\x70"
        self._following: set[Path] = set()

    # -- blocks -------------------------------------------------------------------------
    def _put_pb(self, block: bytes) -> bytes:
        cid = self._pb_prefix + _SHA256 + hashlib.sha256(block).digest()
        self.sink.put_block(cid, block)
        return cid

    def _leaf(self, chunk: bytes | memoryview) -> Node:
        if self.options.leaves_are_raw:
            block = bytes(chunk)
            cid = b"\x01\x55" + _SHA256 + hashlib.sha256(block).digest()
            self.sink.put_block(cid, block)
        else:
            block = unixfs.file_leaf(chunk)
            cid = self._put_pb(block)
        if self.progress is not None:
            self.progress(len(chunk))
        return Node(cid, len(block), len(chunk))

    def _file_parent(self, children: list[Node]) -> Node:
        size = sum(c.size for c in children)
        data = unixfs.encode(unixfs.UnixFSData(unixfs.NodeType.FILE, filesize=size,
                                               blocksizes=tuple(c.size for c in children)))
        block = encode_node([encode_link(c.cid, "", c.tsize) for c in children], data)
        return Node(self._put_pb(block), len(block) + sum(c.tsize for c in children), size)

    # -- files --------------------------------------------------------------------------
    def add_stream(self, stream: BinaryIO) -> Node:
        """Import one file from a binary stream, in the balanced layout."""
        chunks = _Chunks(stream, self.options.chunk_size)
        first = chunks.next()
        if first is None:
            return self._leaf(b"")
        root = self._leaf(first)
        depth = 1
        while not chunks.done():
            root = self._fill([root], depth, chunks)
            depth += 1
        return root

    def _fill(self, children: list[Node], depth: int, chunks: _Chunks) -> Node:
        while len(children) < self.options.max_links and not chunks.done():
            if depth == 1:
                chunk = chunks.next()
                assert chunk is not None  # done() was False
                children.append(self._leaf(chunk))
            else:
                children.append(self._fill([], depth - 1, chunks))
        return self._file_parent(children)

    def add_bytes(self, data: bytes) -> Node:
        return self.add_stream(io.BytesIO(data))

    def add_file(self, path: Path) -> Node:
        with open(path, "rb", buffering=0) as stream:
            return self.add_stream(stream)  # type: ignore[arg-type]

    def add_symlink(self, target: str) -> Node:
        data = unixfs.encode(unixfs.UnixFSData(unixfs.NodeType.SYMLINK,
                                               data=os.fsencode(target)))
        block = encode_node([], data)
        return Node(self._put_pb(block), len(block), 0)

    # -- directories --------------------------------------------------------------------
    def add_directory(self, links: Iterable[tuple[str, Node]]) -> Node:
        """A directory from ``(name, node)`` pairs: plain, or a HAMT past the threshold."""
        entries = sorted(links, key=lambda item: item[0])
        for name, _ in entries:
            check_entry_name(name)
        estimate = 0
        for name, node in entries:
            estimate += len(name.encode()) + len(node.cid)
            if estimate >= self.options.shard_threshold:
                return hamt.build(entries, self._put_pb)
        data = unixfs.DIRECTORY_DATA
        block = encode_node([encode_link(n.cid, name, n.tsize) for name, n in entries], data)
        return Node(self._put_pb(block), len(block) + sum(n.tsize for _, n in entries), 0)

    def add_path(self, path: Path, *, recursive: bool = True) -> ImportResult:
        """Import a file or (with ``recursive``) a folder, like ``ipfs add [-r] PATH``.

        Raises:
            NotFound: the path does not exist.
            InvalidInput: a folder without ``recursive``, or an unsupported file type.
        """
        path = Path(path)
        try:
            st = path.lstat()
        except FileNotFoundError as exc:
            raise NotFound(f"no such file or folder: {path}") from exc
        entries: list[AddedEntry] = []
        if stat.S_ISDIR(st.st_mode) or (stat.S_ISLNK(st.st_mode) and path.is_dir()):
            if not recursive:
                raise InvalidInput(f"{path} is a folder; add it recursively (-r)")
            node = self._walk(path.resolve() if stat.S_ISLNK(st.st_mode) else path, "", entries)
            kind = "directory"
        else:
            # A symlink named on the command line is followed, as Kubo does for arguments.
            node = self.add_file(path)
            kind = "file"
            entries.append(AddedEntry("", node.cid_obj, node.size, kind))
        if self.options.wrap_with_directory:
            name = path.resolve().name if path.name in ("", ".", "..") else path.name
            entries = [AddedEntry(_join(name, e.path), e.cid, e.size, e.kind) for e in entries]
            wrapper = self.add_directory([(name, node)])
            entries.append(AddedEntry("", wrapper.cid_obj, node.size, "directory"))
            node = wrapper
        size = sum(e.size for e in entries if e.kind == "file")
        return ImportResult(node.cid_obj, size, entries)

    def _walk(self, folder: Path, rel: str, entries: list[AddedEntry]) -> Node:
        links: list[tuple[str, Node]] = []
        try:
            listing = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise InvalidInput(f"cannot read folder {folder}: {exc.strerror}") from exc
        total = 0
        for entry in listing:
            if entry.name.startswith(".") and not self.options.hidden:
                continue
            child_rel = _join(rel, entry.name)
            if entry.is_symlink() and not self.options.follow_symlinks:
                node = self.add_symlink(os.readlink(entry.path))
                entries.append(AddedEntry(child_rel, node.cid_obj, 0, "symlink"))
            elif entry.is_dir() and not entry.is_symlink():
                node = self._walk(Path(entry.path), child_rel, entries)
            elif entry.is_dir():  # a followed symlink to a folder: guard against cycles
                target = Path(entry.path).resolve()
                if target in self._following or Path(folder).resolve().is_relative_to(target):
                    raise InvalidInput(f"symlink cycle at {entry.path}")
                self._following.add(target)
                node = self._walk(target, child_rel, entries)
            elif entry.is_file():
                node = self.add_file(Path(entry.path))
                total += node.size
                entries.append(AddedEntry(child_rel, node.cid_obj, node.size, "file"))
            else:
                raise InvalidInput(f"cannot add {entry.path}: not a file, folder or symlink")
            links.append((entry.name, node))
        node = self.add_directory(links)
        entries.append(AddedEntry(rel, node.cid_obj, 0, "directory"))
        return node


def check_entry_name(name: str) -> None:
    """Refuse directory entry names that could escape or confuse a file system.

    Raises:
        UnsafePath: the name is empty, ``.``, ``..``, or contains ``/`` or NUL.
    """
    if name in ("", ".", "..") or "/" in name or "\x00" in name:
        raise UnsafePath(f"unsafe directory entry name {name!r}")


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent and name else parent or name


class _Chunks:
    """Fixed-size chunks from a stream, with one chunk of look-ahead for ``done()``."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self._stream = stream
        self._size = size
        self._next = self._read()

    def _read(self) -> bytes | None:
        buf = bytearray(self._size)
        view = memoryview(buf)
        filled = 0
        while filled < self._size:
            n = self._stream.readinto(view[filled:])  # type: ignore[attr-defined]
            if not n:
                break
            filled += n
        if filled == 0:
            return None
        return bytes(view[:filled]) if filled < self._size else bytes(buf)

    def done(self) -> bool:
        return self._next is None

    def next(self) -> bytes | None:
        chunk = self._next
        if chunk is not None:
            self._next = self._read()
        return chunk
