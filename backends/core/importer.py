"""The UnixFS importer: bytes, files and folders into dag-pb DAGs with Kubo's CIDs.

It reproduces ``ipfs add`` of Kubo 0.43 (boxo v0.43) byte for byte, under each of its
import profiles and add options:

* chunks from Kubo's chunkers (:mod:`.chunkers`: ``size-N``, ``rabin``, ``buzhash``;
  ``size-262144`` by default);
* the *balanced* layout with at most 174 links per node (``--max-file-links``): the first
  leaf becomes the root, and each time the tree is full it becomes the first child of a new
  root one level up, whose remaining children are filled depth-first (``fillNodeRec`` in
  boxo); or the *trickle* layout (``--trickle``, :mod:`.trickle`);
* CIDv0 with dag-pb leaves by default; ``cid_version=1`` implies raw leaves unless
  ``raw_leaves`` says otherwise;
* directories as sorted dag-pb links, switched to a HAMT (:mod:`.hamt`, fanout 256 or
  ``--max-hamt-fanout``) when the directory's estimated size is *over* the sharding
  threshold (256 KiB; Kubo 0.40+ compares with ``>``, Kubo 0.22 with ``>=``) or it has more
  entries than ``--max-directory-links``. The estimate is boxo's ``SizeEstimationLinks``
  (name length + CID length, summed: Kubo's default) or ``SizeEstimationBlock`` (the size
  of the serialized dag-pb block, Tsize varints included: profile ``unixfs-v1-2025``);
* hidden files are skipped unless asked for, symlinks become UnixFS symlink nodes;
* ``nocopy`` (Kubo's ``--nocopy``, filestore): implies raw leaves (the root stays CIDv0
  dag-pb unless CIDv1 is asked for), and each leaf of a file read from a path goes to a
  :class:`ReferenceSink` as ``(file, offset, size)`` instead of its bytes; inner and root
  nodes still go to the block sink. The CIDs are those of ``--raw-leaves``.

Kubo's import profiles (``ipfs config profile apply``, :data:`PROFILES`) are presets of
these options: ``unixfs-v0-2015`` (alias ``legacy-cid-v0``) is the defaults with raw leaves
*explicitly* off, ``unixfs-v1-2025`` is CIDv1, raw leaves, 1 MiB chunks, 1024 links per file
node and block-based size estimation (IPIP-499). Options given next to a profile override
it, as Kubo's flags override its config.

Leaves are hashed on a small shared pool of threads (hashlib releases the GIL on buffers
over 2 KiB) while the reader runs a few chunks ahead, so reading, hashing and storing use
both cores; every block still reaches the sink in order, from the calling thread.

Memory is bounded: HASH_AHEAD_BYTES of chunks (at least HASH_AHEAD chunks) plus the link
lists of the nodes on the current path.
Blocks go to a :class:`BlockSink` as they are made (or nowhere, to only compute CIDs).
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol, get_args, runtime_checkable

from multiformats import CID

from ipfs_mcp.backends.core import hamt, trickle, unixfs
from ipfs_mcp.backends.core.chunkers import CHUNK_SIZE_LIMIT, Chunker, SizeChunker, parse_chunker
from ipfs_mcp.backends.core.dagpb import Node, encode_link, encode_node
from ipfs_mcp.backends.errors import InvalidInput, NotFound, UnsafePath

DEFAULT_CHUNK_SIZE = 262144
DEFAULT_MAX_LINKS = 174  # boxo helpers.DefaultLinksPerBlock
DEFAULT_SHARD_THRESHOLD = 262144  # Kubo's Import.UnixFSHAMTDirectorySizeThreshold ("256KiB")
MAX_CHUNK_SIZE = CHUNK_SIZE_LIMIT  # boxo's limit: 2 MiB (the bitswap block cap) - 256

# boxo SizeEstimationMode, as Kubo's Import.UnixFSHAMTDirectorySizeEstimation spells it.
SizeEstimation = Literal["links", "block", "disabled"]
SIZE_ESTIMATIONS: tuple[str, ...] = get_args(SizeEstimation)

# Kubo config/profile.go (v0.43): applyUnixFSv02015 and applyUnixFSv12025, in our names.
# ``raw_leaves`` is explicit in both, so ``--cid-version=1`` under ``unixfs-v0-2015`` keeps
# dag-pb leaves, exactly as Kubo does once the profile has set Import.UnixFSRawLeaves.
_V0_2015: dict[str, Any] = {
    "cid_version": 0, "raw_leaves": False, "chunk_size": 262144, "max_links": 174,
    "max_directory_links": 0, "max_hamt_fanout": 256, "shard_threshold": 262144,
    "hamt_size_estimation": "links", "trickle": False,
}
PROFILES: dict[str, dict[str, Any]] = {
    "unixfs-v0-2015": _V0_2015,
    "legacy-cid-v0": _V0_2015,
    "unixfs-v1-2025": {
        "cid_version": 1, "raw_leaves": True, "chunk_size": 1048576, "max_links": 1024,
        "max_directory_links": 0, "max_hamt_fanout": 256, "shard_threshold": 262144,
        "hamt_size_estimation": "block", "trickle": False,
    },
}

_RAW = 0x55
_DAG_PB = 0x70
_SHA256 = b"\x12\x20"

# Leaves hashed at once, on threads shared by every import in the process: one core is left
# to the reader and the block writers (on two cores a second hash thread only added thread
# switches: a 1 GiB add took 3.2-4.3 s with two, 2.8-2.9 s with one). Chunks are read ahead of
# the leaf being linked (per file) up to HASH_AHEAD_BYTES, at least HASH_AHEAD of them. A
# chunk under HASH_MIN is hashed in place: its hashing costs less than handing it to a thread.
HASH_WORKERS = max(1, min(4, (os.cpu_count() or 2) - 1))
HASH_AHEAD = 4
HASH_AHEAD_BYTES = 4 * 1024 * 1024
HASH_MIN = 64 * 1024
_hash_pool: ThreadPoolExecutor | None = None
_hash_pool_lock = threading.Lock()


def _shared_hash_pool() -> ThreadPoolExecutor:
    global _hash_pool
    with _hash_pool_lock:
        if _hash_pool is None:
            _hash_pool = ThreadPoolExecutor(HASH_WORKERS, thread_name_prefix="leaf-hash")
        return _hash_pool


class BlockSink(Protocol):
    """Where the importer puts each finished block (the blockstore, a CAR writer, ...)."""

    def put_block(self, cid: bytes, data: bytes) -> None: ...


@runtime_checkable
class HashingSink(Protocol):
    """A sink that can hash a leaf's block and write it in one step on its own threads (the
    repo within a batch): one thread hand-off per leaf instead of two. The block then still
    reaches ``put_block`` in order, which only adopts what was written ahead."""

    def hash_ahead(self, prefix: bytes) -> Callable[[bytes], Future[bytes]] | None:
        """Called on the importing thread: a function that hashes and writes a block whose
        CID is ``prefix`` and its sha256, and gives the digest; None when this sink does not
        write ahead now."""


class ReferenceSink(Protocol):
    """Where a nocopy import puts each raw leaf of a file: where its bytes are, not them."""

    def put_reference(self, cid: bytes, path: str, offset: int, size: int) -> None: ...


@dataclass(frozen=True)
class ImportOptions:
    """What ``ipfs add`` calls its flags (and the few import settings Kubo keeps in its
    config). ``raw_leaves=None`` means "as Kubo would" (raw with CIDv1).

    ``chunk_size`` is the ``size-N`` chunker; ``chunker`` names any other one (``rabin...``,
    ``buzhash``); a ``size-N`` given as ``chunker`` is stored as ``chunk_size``, so equal
    options compare equal. ``max_links`` is ``--max-file-links``.
    """

    cid_version: int = 0
    raw_leaves: bool | None = None
    chunk_size: int = DEFAULT_CHUNK_SIZE
    max_links: int = DEFAULT_MAX_LINKS
    wrap_with_directory: bool = False
    hidden: bool = False
    follow_symlinks: bool = False  # ours, not Kubo's: needed for HF snapshots (links to blobs)
    shard_threshold: int = DEFAULT_SHARD_THRESHOLD  # 0: never shard (as in Kubo)
    chunker: str | None = None
    trickle: bool = False
    max_directory_links: int = 0  # 0: no limit
    max_hamt_fanout: int = hamt.FANOUT
    hamt_size_estimation: SizeEstimation = "links"
    nocopy: bool = False  # Kubo's --nocopy: leaves kept as references into the files

    def __post_init__(self) -> None:
        if self.cid_version not in (0, 1):
            raise InvalidInput(f"cid_version must be 0 or 1, not {self.cid_version}")
        if self.nocopy and self.raw_leaves is False:  # Kubo's add refuses it the same way
            raise InvalidInput("nocopy requires raw leaves (raw_leaves=true)")
        if self.chunker is not None:
            parsed = parse_chunker(self.chunker)
            if isinstance(parsed, SizeChunker):
                if self.chunk_size not in (DEFAULT_CHUNK_SIZE, parsed.size):
                    raise InvalidInput(f"chunker {self.chunker!r} contradicts chunk_size="
                                       f"{self.chunk_size}")
                object.__setattr__(self, "chunk_size", parsed.size)
                object.__setattr__(self, "chunker", None)
            else:
                object.__setattr__(self, "chunker", parsed.spec)
        SizeChunker(self.chunk_size)  # validates the size
        if self.max_links < (1 if self.trickle else 2):
            # boxo's balanced layout never finishes with one link per node; trickle does.
            raise InvalidInput("max_links must be at least 2 (1 with trickle)")
        if self.max_directory_links < 0:
            raise InvalidInput("max_directory_links must be 0 (no limit) or more")
        hamt.check_fanout(self.max_hamt_fanout)
        if self.shard_threshold < 0:
            raise InvalidInput("shard_threshold must be 0 (never shard) or more")
        if self.hamt_size_estimation not in SIZE_ESTIMATIONS:
            raise InvalidInput(f"hamt_size_estimation must be one of {SIZE_ESTIMATIONS}, "
                               f"not {self.hamt_size_estimation!r}")

    @property
    def leaves_are_raw(self) -> bool:
        if self.nocopy:
            return True
        return self.cid_version == 1 if self.raw_leaves is None else self.raw_leaves

    @property
    def chunker_spec(self) -> str:
        """Kubo's ``--chunker`` value for these options."""
        return self.chunker or f"size-{self.chunk_size}"

    def make_chunker(self) -> Chunker:
        return parse_chunker(self.chunker_spec)

    @classmethod
    def from_chunker(cls, chunker: str, **kwargs: Any) -> ImportOptions:
        """Options with Kubo's ``--chunker`` spelling (``default``, ``size-N``, ``rabin...``,
        ``buzhash``).

        Raises:
            InvalidInput: a chunker Kubo does not offer, or bad parameters.
        """
        return cls(chunker=None if chunker == "default" else chunker, **kwargs)

    @classmethod
    def from_profile(cls, profile: str | None = None, **overrides: Any) -> ImportOptions:
        """Kubo's import ``profile`` (or Kubo's defaults), then every override that is not
        ``None``, as Kubo's ``add`` flags override the profile's config.

        Raises:
            InvalidInput: an unknown profile, or invalid options.
        """
        if profile is not None and profile not in PROFILES:
            raise InvalidInput(f"unknown import profile {profile!r}: one of "
                               f"{', '.join(PROFILES)}")
        values = dict(PROFILES[profile]) if profile else {}
        given = {k: v for k, v in overrides.items() if v is not None}
        if given.get("chunker") in ("default", ""):
            given.pop("chunker")
        if "chunker" in given:
            values.pop("chunk_size", None)
        values.update(given)
        return cls(**values)


@dataclass(frozen=True)
class AddedEntry:
    """One file, folder or symlink that was imported, as ``ipfs add`` lists it."""

    path: str  # relative path inside the import ("" for a lone root)
    cid: CID
    size: int
    kind: str  # "file" | "directory" | "symlink"
    target: str | None = None  # a symlink's, so a listing of the add needs no block read


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
                 progress: ProgressFn | None = None,
                 references: ReferenceSink | None = None) -> None:
        self.sink = sink if sink is not None else _DiscardSink()
        # nocopy: leaves of files read from a path go here; without it they are blocks.
        self.references = references if options is not None and options.nocopy else None
        self._source: list[Any] | None = None  # [resolved path, next offset] of the file
        self.options = options or ImportOptions()
        self.progress = progress
        self._pb_prefix = b"" if self.options.cid_version == 0 else b"\x01\x70"
        # The CID of a leaf is this, then the sha256 of its block.
        self._leaf_prefix = (b"\x01\x55" if self.options.leaves_are_raw
                             else self._pb_prefix) + _SHA256
        self._chunker = self.options.make_chunker()
        # boxo types dag-pb leaves File in the balanced layout and Raw in the trickle one.
        self._leaf_type = unixfs.NodeType.RAW if self.options.trickle else unixfs.NodeType.FILE
        self._following: set[Path] = set()

    # -- blocks -------------------------------------------------------------------------
    def _put_pb(self, block: bytes) -> bytes:
        cid = self._pb_prefix + _SHA256 + hashlib.sha256(block).digest()
        self.sink.put_block(cid, block)
        return cid

    def _leaf(self, chunk: bytes | memoryview) -> Node:
        block = self._leaf_block(chunk)
        return self._emit_leaf((self._leaf_prefix + hashlib.sha256(block).digest(), block,
                                len(chunk)))

    def _leaf_block(self, chunk: bytes | memoryview) -> bytes:
        if self.options.leaves_are_raw:
            return bytes(chunk)
        return unixfs.file_leaf(chunk, self._leaf_type)

    def _emit_leaf(self, leaf: _HashedLeaf) -> Node:
        """Hand a hashed leaf to the sink (or the reference sink), in file order."""
        cid, block, size = leaf
        source = self._source
        if cid[1] == _RAW and source is not None and self.references is not None and block:
            self.references.put_reference(cid, source[0], source[1], len(block))
            source[1] += len(block)
        else:
            self.sink.put_block(cid, block)
        if self.progress is not None:
            self.progress(size)
        return Node(cid, len(block), size)

    def _hasher(self) -> Callable[[bytes], Future[bytes]]:
        """Where a file's large leaves are hashed: by the sink, which writes them in the same
        step, unless their bytes go elsewhere (nocopy keeps raw leaves by reference); else on
        the shared pool."""
        if self.references is None and isinstance(self.sink, HashingSink):
            ahead = self.sink.hash_ahead(self._leaf_prefix)
            if ahead is not None:
                return ahead
        pool = _shared_hash_pool()
        return lambda block: pool.submit(_sha256, block)

    def _file_parent(self, children: list[Node]) -> Node:
        size = sum(c.size for c in children)
        data = unixfs.encode(unixfs.UnixFSData(unixfs.NodeType.FILE, filesize=size,
                                               blocksizes=tuple(c.size for c in children)))
        block = encode_node([encode_link(c.cid, "", c.tsize) for c in children], data)
        return Node(self._put_pb(block), len(block) + sum(c.tsize for c in children), size)

    # -- files --------------------------------------------------------------------------
    def add_stream(self, stream: BinaryIO) -> Node:
        """Import one file from a binary stream, in the balanced or trickle layout."""
        leaves = _Leaves(self._chunker.chunks(stream), self._leaf_block, self._leaf_prefix,
                         self._emit_leaf, self._hasher())
        if self.options.trickle:
            return trickle.layout(leaves, self.options.max_links, self._file_parent)
        if leaves.done():
            return self._leaf(b"")  # boxo: an empty file is one empty leaf
        root = leaves.next_leaf()
        depth = 1
        while not leaves.done():
            root = self._fill([root], depth, leaves)
            depth += 1
        return root

    def _fill(self, children: list[Node], depth: int, leaves: _Leaves) -> Node:
        while len(children) < self.options.max_links and not leaves.done():
            if depth == 1:
                children.append(leaves.next_leaf())
            else:
                children.append(self._fill([], depth - 1, leaves))
        return self._file_parent(children)

    def add_bytes(self, data: bytes) -> Node:
        return self.add_stream(io.BytesIO(data))

    def add_file(self, path: Path) -> Node:
        with open(path, "rb", buffering=0) as stream:
            if self.references is None:
                return self.add_stream(stream)
            # The reference names the file itself (for a hub snapshot: blobs/<etag>), so a
            # symlink changed later cannot redirect reads of the leaves.
            self._source = [os.path.realpath(path), 0]
            try:
                return self.add_stream(stream)
            finally:
                self._source = None

    def add_symlink(self, target: str) -> Node:
        data = unixfs.encode(unixfs.UnixFSData(unixfs.NodeType.SYMLINK,
                                               data=os.fsencode(target)))
        block = encode_node([], data)
        return Node(self._put_pb(block), len(block), 0)

    # -- directories --------------------------------------------------------------------
    def add_directory(self, links: Iterable[tuple[str, Node]]) -> Node:
        """A directory from ``(name, node)`` pairs: plain, or a HAMT past the threshold.

        Raises:
            UnsafePath: an entry name that is not a plain name.
            InvalidInput: more entries than ``max_directory_links`` with sharding off.
        """
        entries = sorted(links, key=lambda item: item[0])
        for name, _ in entries:
            check_entry_name(name)
        block = encode_node([encode_link(n.cid, name, n.tsize) for name, n in entries],
                            unixfs.DIRECTORY_DATA)
        if self._shards(entries, len(block)):
            return hamt.build(entries, self._put_pb, self.options.max_hamt_fanout)
        return Node(self._put_pb(block), len(block) + sum(n.tsize for _, n in entries), 0)

    def shards(self, entries: list[tuple[str, Node]], block_size: int) -> bool:
        """Whether a folder of ``entries``, its plain block ``block_size`` bytes, is a HAMT."""
        return self._shards(entries, block_size)

    def _shards(self, entries: list[tuple[str, Node]], block_size: int) -> bool:
        """boxo ``needsToSwitchToHAMTDir`` for a directory built by adding ``entries``.

        Adding only grows a directory's estimate, so the switch that boxo makes on the way
        (at the first entry that takes the estimate over the threshold) is the one the final
        estimate says. The block-based estimate (``linkSerializedSize`` summed, plus the
        Data field) is, byte for byte, the size of the plain directory's block.
        """
        o = self.options
        too_many = 0 < o.max_directory_links < len(entries)
        if o.shard_threshold == 0:  # sharding off: boxo's BasicDirectory refuses the entry
            if too_many:
                raise InvalidInput(f"{len(entries)} entries exceed max_directory_links="
                                   f"{o.max_directory_links} and sharding is off")
            return False
        if o.hamt_size_estimation == "disabled":
            return too_many
        if o.hamt_size_estimation == "block":
            estimate = block_size
        else:
            estimate = sum(len(name.encode()) + len(node.cid) for name, node in entries)
        # Kubo 0.40+: strictly over the threshold (0.22 switched at it, with >=).
        return too_many or estimate > o.shard_threshold

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
            entries = [AddedEntry(_join(name, e.path), e.cid, e.size, e.kind, e.target)
                       for e in entries]
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
                link = os.readlink(entry.path)
                node = self.add_symlink(link)
                entries.append(AddedEntry(child_rel, node.cid_obj, 0, "symlink", link))
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


# A leaf's binary CID, its block and the size of its chunk.
_HashedLeaf = tuple[bytes, bytes, int]


class _Leaves:
    """A file's leaves, made from its chunks in order, with look-ahead for ``done()``
    (boxo's ``DagBuilderHelper``): up to HASH_AHEAD_BYTES of chunks are read ahead and
    their blocks hashed by ``hasher`` (the shared pool, or a sink that writes them in the
    same step) while the caller links the leaves before them. Only the hashing leaves this
    thread: it alone holds no GIL."""

    def __init__(self, chunks: Iterator[bytes], make_block: Callable[[bytes], bytes],
                 prefix: bytes, emit_leaf: Callable[[_HashedLeaf], Node],
                 hasher: Callable[[bytes], Future[bytes]]) -> None:
        self._chunks: Iterator[bytes] | None = chunks
        self._hasher = hasher
        self._make_block = make_block
        self._prefix = prefix
        self._emit_leaf = emit_leaf
        # (the digest, or its future; the block; the chunk's size)
        self._ahead: deque[tuple[Future[bytes] | bytes, bytes, int]] = deque()
        self._ahead_bytes = 0
        self._read_ahead()

    def _read_ahead(self) -> None:
        while self._chunks is not None and (len(self._ahead) < HASH_AHEAD
                                            or self._ahead_bytes < HASH_AHEAD_BYTES):
            chunk = next(self._chunks, None)
            if chunk is None:
                self._chunks = None
                return
            block = self._make_block(chunk)
            digest: Future[bytes] | bytes
            if len(block) < HASH_MIN:
                digest = hashlib.sha256(block).digest()
            else:
                digest = self._hasher(block)
            self._ahead.append((digest, block, len(chunk)))
            self._ahead_bytes += len(block)

    def done(self) -> bool:
        return not self._ahead

    def next_leaf(self) -> Node:
        assert self._ahead, "next_leaf() after done()"
        digest, block, size = self._ahead.popleft()
        self._ahead_bytes -= len(block)
        self._read_ahead()  # the next chunks are read while this one is hashed
        if isinstance(digest, Future):
            digest = digest.result()
        return self._emit_leaf((self._prefix + digest, block, size))


def _sha256(block: bytes) -> bytes:
    return hashlib.sha256(block).digest()
