"""Reads from a Kubo node that trust it for nothing: what :class:`~.backend.KuboBackend`
builds every read on, whichever transport reaches the node.

* :class:`VerifiedReader` turns two node primitives, ``block_get`` (one block; verified
  here against its CID) and ``cat`` (a raw byte range; untrusted), into verified reads.
  File bytes stream from the node's ``cat``; every whole leaf is checked by hashing it
  the way the DAG says it was stored (a raw leaf is its bytes, a dag-pb leaf is the UnixFS
  leaf encoding our importer writes), and anything that cannot be predicted (partial
  leaves, other encodings, inline data) is compared with verified blocks. Only the
  internal nodes of a file are fetched as blocks, so a 256 MiB file costs one ``cat`` and
  a handful of ``block/get`` calls, and memory stays at about one leaf.
* :func:`verified_listing` checks a node's ``ls`` answer against the verified directory.

A mismatch anywhere is :class:`IntegrityError`, never a silent substitute.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from multiformats import CID

from ipfs_mcp.backends.core import car, dagpb, unixfs
from ipfs_mcp.backends.core.cids import cid_str, split_path, verify_block
from ipfs_mcp.backends.core.dag import links_of
from ipfs_mcp.backends.core.exporter import Entry, Exporter
from ipfs_mcp.backends.core.rooted import OutputTarget
from ipfs_mcp.backends.core.unixfs import NodeType
from ipfs_mcp.backends.errors import IntegrityError, InvalidInput

__all__ = ["VerifiedReader", "verified_listing", "unixfs_kind", "check_car", "CountingCar",
           "IterReader"]

_RAW = 0x55
_DAG_PB = 0x70
_SHA256 = b"\x12\x20"
# A dag-pb leaf's Tsize is its block: the chunk plus a few bytes of UnixFS framing. More
# than this over the chunk means the link points at an internal node, which we fetch and
# walk instead of predicting (so ``cat`` never holds more than one leaf in memory).
_LEAF_OVERHEAD = 32
_MAX_PREDICTED_LEAF = 2 * 1024 * 1024  # peers refuse larger blocks; so do we here


BlockGet = Callable[[CID], bytes]
RangeCat = Callable[[CID, int, int], Iterator[bytes]]


class _ByteStream:
    """Exact-size reads from an untrusted chunk iterator (the node's ``cat``)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = bytearray()

    def read_exact(self, n: int, what: str) -> bytes:
        while len(self._buf) < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                raise IntegrityError(f"the node's cat of {what} ended {n - len(self._buf)} "
                                     "bytes early")
            self._buf += chunk
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def check_drained(self, what: str) -> None:
        extra = len(self._buf)
        for chunk in self._chunks:
            extra += len(chunk)
        if extra:
            raise IntegrityError(f"the node's cat of {what} sent {extra} bytes more than the "
                                 "DAG holds")


class VerifiedReader:
    """Verified reads over a node's ``block_get`` and ``cat`` (see the module docstring).

    Args:
        block_get: fetch one block's bytes from the node (this class verifies them).
        cat: stream the bytes of a file CID from ``offset``, ``length`` of them (untrusted).
    """

    def __init__(self, block_get: BlockGet, cat: RangeCat) -> None:
        self._block_get = block_get
        self._cat = cat

    def load(self, cid: CID) -> bytes:
        """One block from the node, checked against its CID.

        Raises:
            IntegrityError: the node sent bytes that do not hash to ``cid``.
        """
        data = self._block_get(cid)
        try:
            verify_block(cid, data)
        except IntegrityError as exc:
            raise IntegrityError(f"the node returned a block that does not match its CID "
                                 f"{cid_str(cid)}") from exc
        return data

    def exporter(self) -> Exporter:
        return _StreamingExporter(self)

    def resolve(self, value: str) -> CID:
        """``CID[/path]`` to the CID it names, walking verified directory blocks.

        Raises:
            InvalidCID: the first segment is not a CID.
            NotFound: a path segment does not exist.
        """
        cid, path = split_path(value)
        return self.exporter().resolve(cid, path) if path else cid

    def stat(self, value: str) -> Entry:
        return self.exporter().stat(self.resolve(value))

    def cat(self, value: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """A file's bytes from ``offset`` (at most ``length``), every byte verified.

        Raises:
            InvalidInput: a directory or symlink, or a negative offset or length.
            IntegrityError: the node's bytes or blocks do not match the CID.
        """
        if offset < 0 or (length is not None and length < 0):
            raise InvalidInput("offset and length must not be negative")
        cid = self.resolve(value)
        return self.file_pieces(cid, self.load(cid), offset, length)

    def get_to_path(self, value: str, output_path: Path | OutputTarget, *,
                    overwrite: bool = False,
                    max_bytes: int | None = None,
                    progress: Callable[[int], None] | None = None) -> Entry:
        """Write a file or tree to ``output_path`` (the exporter's path safety applies)."""
        target = output_path if isinstance(output_path, OutputTarget) else Path(output_path)
        return self.exporter().get_to_path(self.resolve(value), target,
                                           overwrite=overwrite, max_bytes=max_bytes,
                                           progress=progress)

    # -- file content: the node's cat, checked leaf by leaf ----------------------------
    def file_pieces(self, cid: CID, block: bytes, offset: int, length: int | None = None
                    ) -> Iterator[bytes]:
        """The bytes ``[offset, offset + length)`` of the file whose verified root block is
        ``block``: one ``cat`` of exactly that range, checked as it streams."""
        node = _file_node(cid, block)
        if node is None:  # a raw block is the whole file, and it is verified already
            size = len(block)
        else:
            size = _file_size(cid, *node)
        end = size if length is None else min(size, offset + length)
        if offset >= end:
            return
        if node is None:
            yield block[offset:end]
            return
        links, fs = node
        if not links:  # inline data only: the verified block holds it all
            yield (fs.data or b"")[offset:end]
            return
        what = cid_str(cid)
        stream = _ByteStream(self._cat(cid, offset, end - offset))
        yield from self._walk(cid, links, fs, 0, offset, end, stream, what)
        stream.check_drained(what)

    def _walk(self, cid: CID, links: tuple[dagpb.PBLink, ...], fs: unixfs.UnixFSData,
              base: int, start: int, end: int, stream: _ByteStream, what: str
              ) -> Iterator[bytes]:
        pos = base
        data = fs.data or b""
        if data:
            lo, hi = max(pos, start), min(pos + len(data), end)
            if lo < hi:
                yield _same(stream.read_exact(hi - lo, what), data[lo - pos:hi - pos], cid)
            pos += len(data)
        if len(fs.blocksizes) != len(links):
            raise IntegrityError(f"{cid_str(cid)}: blocksizes do not match its links")
        for link, size in zip(links, fs.blocksizes, strict=True):
            lo, hi = max(pos, start), min(pos + size, end)
            if lo < hi:
                yield from self._child(link, pos, size, lo, hi, stream, what)
            pos += size
            if pos >= end:
                return

    def _child(self, link: dagpb.PBLink, pos: int, size: int, lo: int, hi: int,
               stream: _ByteStream, what: str) -> Iterator[bytes]:
        cid = link.cid
        whole = lo == pos and hi == pos + size
        sha = bytes(cid.digest)[:2] == _SHA256
        if whole and sha and cid.codec.code == _RAW:
            piece = stream.read_exact(size, what)
            if hashlib.sha256(piece).digest() != bytes(cid.digest)[2:]:
                raise IntegrityError(f"the node's cat of {what} returned bytes that do not "
                                     f"match the raw leaf {cid_str(cid)}")
            yield piece
            return
        if (whole and sha and cid.codec.code == _DAG_PB and size <= _MAX_PREDICTED_LEAF
                and link.tsize <= size + _LEAF_OVERHEAD):
            piece = stream.read_exact(size, what)
            if hashlib.sha256(unixfs.file_leaf(piece)).digest() == bytes(cid.digest)[2:]:
                yield piece
                return
            # Not the leaf encoding we predict (or not a leaf): the verified DAG decides.
            yield _same(piece, Exporter(self.load).read(cid), cid)
            return
        block = self.load(cid)
        node = _file_node(cid, block)
        if node is None:
            yield _same(stream.read_exact(hi - lo, what), block[lo - pos:hi - pos], cid)
            return
        links, fs = node
        if _file_size(cid, links, fs) != size:
            raise IntegrityError(f"{cid_str(cid)} holds {_file_size(cid, links, fs)} bytes, "
                                 f"its parent says {size}")
        yield from self._walk(cid, links, fs, pos, lo, hi, stream, what)


class _StreamingExporter(Exporter):
    """Our exporter (path checks, directories, symlinks) with file bytes from the node's
    ``cat``, checked by :class:`VerifiedReader` instead of fetched block by block."""

    def __init__(self, reader: VerifiedReader) -> None:
        self._reader = reader
        self._last: tuple[bytes, bytes] | None = None
        super().__init__(self._load)

    def _load(self, cid: CID) -> bytes:
        # The base class decodes a file's root before asking for its pieces, and the pieces
        # need the same block: one remembered block saves a round trip per file.
        key = bytes(cid)
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        data = self._reader.load(cid)
        self._last = (key, data)
        return data

    def _file_pieces(self, cid: CID, node: object, offset: int) -> Iterator[bytes]:
        return self._reader.file_pieces(cid, self._load(cid), offset)


def _same(untrusted: bytes, verified: bytes, cid: CID) -> bytes:
    if untrusted != verified:
        raise IntegrityError(f"the node's cat returned bytes that do not match {cid_str(cid)}")
    return verified


def _file_node(cid: CID, block: bytes
               ) -> tuple[tuple[dagpb.PBLink, ...], unixfs.UnixFSData] | None:
    if cid.codec.code == _RAW:
        return None
    if cid.codec.code != _DAG_PB:
        raise InvalidInput(f"{cid_str(cid)} is {cid.codec.name}, not UnixFS (dag-pb or raw)")
    node = dagpb.decode(block)
    if node.data is None:
        raise IntegrityError(f"{cid_str(cid)}: dag-pb node without UnixFS data")
    fs = unixfs.decode(node.data)
    if fs.type == NodeType.SYMLINK:
        raise InvalidInput(f"{cid_str(cid)} is a symlink, not a file")
    if fs.type not in (NodeType.FILE, NodeType.RAW):
        raise InvalidInput(f"{cid_str(cid)} is a directory, not a file")
    return node.links, fs


def _file_size(cid: CID, links: tuple[dagpb.PBLink, ...], fs: unixfs.UnixFSData) -> int:
    counted = len(fs.data or b"") + sum(fs.blocksizes)
    if fs.filesize is not None and fs.filesize != counted:
        raise IntegrityError(f"{cid_str(cid)}: filesize {fs.filesize} but its parts hold "
                             f"{counted} bytes")
    return counted


def verified_listing(reader: VerifiedReader, value: str,
                     reported: Iterable[tuple[str, CID, str, int, str | None]]) -> list[Entry]:
    """The node's ``ls`` answer, checked against the verified directory block(s).

    ``reported`` holds ``(name, cid, kind, size, symlink_target)`` as the node said. Names
    and CIDs must be exactly the directory's links (they are what the CID proves); kinds
    and sizes are the node's report, as the node read them from those children.

    Raises:
        IntegrityError: the listing names entries the directory does not hold, or misses some.
    """
    root = reader.resolve(value)
    exporter = reader.exporter()
    entry = exporter.stat(root)
    if entry.kind != "directory":
        return [entry]
    truth = list(exporter.children(root))
    said = {name: (cid, kind, size, target) for name, cid, kind, size, target in reported}
    if len(said) != len(truth) or not all(
            name in said and _same_block(said[name][0], cid) for name, cid in truth):
        raise IntegrityError(f"the node's listing of {cid_str(root)} does not match the "
                             "directory's verified links")
    out = []
    for name, cid in truth:
        _, kind, size, target = said[name]
        out.append(Entry(cid, kind, 0 if kind == "directory" else size, name, target))
    return out


def _same_block(a: CID, b: CID) -> bool:
    """Same codec and multihash: a node may print a CIDv0 link as CIDv1, or the reverse."""
    return a.codec.code == b.codec.code and bytes(a.digest) == bytes(b.digest)


def unixfs_kind(type_code: object) -> str:
    """Kubo's numeric ``Type`` in ``ls`` answers (UnixFS types) as our entry kind."""
    if type_code in (1, 5, "dir", "directory"):
        return "directory"
    if type_code in (4, "symlink"):
        return "symlink"
    return "file"


class IterReader:
    """A file-like view of a chunk iterator, copying what is read to ``out`` if given (so
    what is saved is exactly what was parsed and checked)."""

    def __init__(self, chunks: Iterator[bytes], out: BinaryIO | None = None) -> None:
        self._chunks = chunks
        self._out = out
        self._buf = bytearray()

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buf += chunk
        data = bytes(self._buf if n < 0 else self._buf[:n])
        del self._buf[:len(data)]
        if self._out is not None:
            self._out.write(data)
        return data


def check_car(root: CID, stream: Any) -> int:
    """Read a CAR for ``root``: every block verified (by :func:`car.read_car`), the root
    declared, and every link inside the DAG present. Returns the number of blocks.

    Raises:
        IntegrityError: a block is corrupt, the root is wrong, or a linked block is missing.
    """
    roots, blocks = car.read_car(stream)
    if [bytes(r.digest) for r in roots] != [bytes(root.digest)]:
        raise IntegrityError(f"the CAR for {cid_str(root)} declares roots "
                             f"{[cid_str(r) for r in roots]}")
    have: set[bytes] = set()
    wanted: set[bytes] = {bytes(root.digest)}
    count = 0
    for cid, block in blocks:
        have.add(bytes(cid.digest))
        wanted.update(bytes(link.digest) for link in links_of(cid, block)
                      if link.hashfun.code != 0x00)  # identity CIDs carry their own block
        count += 1
    missing = wanted - have
    if missing:
        raise IntegrityError(f"the CAR for {cid_str(root)} misses {len(missing)} block(s) of "
                             "its DAG")
    return count


class CountingCar:
    """Reads a CAR through :func:`car.read_car` (verifying it) while handing out its raw
    bytes for upload, so what is sent is exactly what was checked; a corrupt block stops
    the upload with :class:`IntegrityError`."""

    _PIECE = 1 << 20

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._pending = bytearray()
        self.roots: list[CID] = []
        self.blocks = 0
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        self._pending += data
        return data

    def _drain(self) -> bytes:
        data = bytes(self._pending)
        self._pending.clear()
        return data

    def pieces(self) -> Iterator[bytes]:
        roots, blocks = car.read_car(self)  # type: ignore[arg-type]
        self.roots = list(roots)
        yield self._drain()
        for _, block in blocks:
            self.blocks += 1
            self.size += len(block)
            if len(self._pending) >= self._PIECE:
                yield self._drain()
        yield self._drain()
