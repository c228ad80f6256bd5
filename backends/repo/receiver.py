"""Build a file from a fetch, writing each received byte once (the receiving side of nocopy).

A file DAG whose leaves are raw blocks can be laid out before a single leaf arrives: its
internal dag-pb nodes (small: one per 174 leaves) say each leaf's offset and length. The
receiver walks them (:func:`file_layout`), opens the output file, registers every leaf's
offsets with the blockstore (:mod:`.placement`), and reads the file through the backend:
the first missing leaf makes the backend fetch the whole file DAG at once (bitswap,
trustless gateways), and every leaf that arrives is verified by its source and then, in the
blockstore's ``put``, written with ``pwrite`` at its offsets and kept as a filestore
reference. Nothing is stored as a block and copied again.

The same read is the final check: each leaf's bytes come back verified (read through its
reference, rehashed), are hashed into the file's sha256, and any offset this receive did not
write itself (a leaf that was local already, as a block or a reference elsewhere) is
compared with the file and written only if it differs. So the file is complete and correct
exactly when the read ends; the caller then names it (``hf_layout``: ``blobs/<sha256>``).

Resume: the output file and the references committed into it survive an interrupt or a
kill -9. The next receive checks those references (``pread`` and rehash; a bad one is
dropped, so its leaf is fetched again) and fetches only what is missing.

A file whose leaves are dag-pb (CIDv0 leaves, Kubo's default without raw leaves) or whose
nodes carry bytes of their own cannot be placed: its bytes on disk are not its blocks.
:func:`file_layout` then says why, and the caller copies it the old way.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from multiformats import CID

from ipfs_mcp.backends.core import dagpb, unixfs
from ipfs_mcp.backends.core.cids import cid_str, verify_block
from ipfs_mcp.backends.core.dag import Node, visit_nodes
from ipfs_mcp.backends.core.unixfs import NodeType
from ipfs_mcp.backends.errors import IntegrityError, IpfsMcpError
from ipfs_mcp.backends.repo.blockstore import Blockstore
from ipfs_mcp.backends.repo.filestore import Filestore
from ipfs_mcp.backends.repo.placement import ReceivingFile, write_error

Loader = Callable[[CID], bytes]
# A layout keeps every leaf's slot in memory (and the blockstore a placement for each), so a
# file with more leaves than this is copied instead, which streams in bounded memory. A
# million leaves is 256 GiB at Kubo's 256 KiB chunks, far beyond any model file; a crafted
# DAG of tiny leaves reaches it with little data.
MAX_LAYOUT_LEAVES = 1 << 20
_RAW = 0x55
_DAG_PB = 0x70
_IDENTITY = 0x00


@dataclass(frozen=True, slots=True)
class Slot:
    """One leaf of a file: where its bytes go."""

    offset: int
    size: int
    cid: CID


@dataclass(frozen=True)
class FileLayout:
    cid: CID
    size: int
    slots: tuple[Slot, ...]


@dataclass(frozen=True)
class Received:
    """What one receive did."""

    path: Path
    sha256: str
    size: int
    leaves: int
    resumed: int  # leaves found already written and verified (an earlier receive)
    placed_bytes: int  # bytes written as leaves arrived
    copied_bytes: int  # bytes written afterwards (leaves that were local already)


def file_layout(load: Loader, cid: CID, size: int) -> FileLayout | str:
    """Each leaf's offset and size, from the file's internal nodes (``load`` may fetch them,
    one block each); or why the file cannot be placed (a sentence).

    Raises:
        IntegrityError: the nodes' sizes contradict each other or ``size``.
        DagTooLarge: deeper or wider than the bounds allow.
    """
    if cid.codec.code == _RAW:
        return FileLayout(cid, size, (Slot(0, size, cid),))
    placer = _Placer()

    def inner_nodes_only(node_cid: CID) -> bytes | None:
        """Only dag-pb nodes are read (an inline one holds its bytes in its CID: unplaceable);
        the placer says why anything else cannot be placed."""
        if node_cid.codec.code != _DAG_PB or node_cid.hashfun.code == _IDENTITY:
            return None
        return load(node_cid)

    try:
        # Raw leaves are never read: their place is all a layout needs.
        visit_nodes(cid, inner_nodes_only, placer, (0, size), present=_any, dedupe=False,
                    what="file")
    except _Unplaceable as why:
        return str(why)
    return FileLayout(cid, size, tuple(sorted(placer.slots, key=lambda s: s.offset)))


class _Placer:
    """The layout's visitor: slots each leaf, checks each inner node and gives every child
    its offset and the size its parent declares."""

    def __init__(self) -> None:
        self.slots: list[Slot] = []

    def __call__(self, node: Node[tuple[int, int]]) -> list[tuple[CID, tuple[int, int]]]:
        node_cid, (offset, expected) = node.cid, node.context
        if node_cid.codec.code == _RAW:
            self.slots.append(Slot(offset, expected, node_cid))
            if len(self.slots) > MAX_LAYOUT_LEAVES:
                raise _Unplaceable(f"it has more than {MAX_LAYOUT_LEAVES} leaves, too many to "
                                   "place")
            return []
        if node_cid.codec.code != _DAG_PB:
            raise _Unplaceable(f"{cid_str(node_cid)} is {node_cid.codec.name}, not a raw leaf")
        if node.block is None:
            raise _Unplaceable(f"{cid_str(node_cid)} is an inline (identity) node")
        pb = dagpb.decode(node.block)
        fs = unixfs.decode(pb.data or b"")
        if fs.type not in (NodeType.FILE, NodeType.RAW):
            raise IntegrityError(f"{cid_str(node_cid)}: a file links to a "
                                 f"{fs.type.name.lower()} node")
        if not pb.links:
            raise _Unplaceable(f"its leaves are dag-pb nodes ({cid_str(node_cid)}), not raw "
                               "blocks: added without raw leaves (CIDv0 defaults)")
        if fs.data:
            raise _Unplaceable(f"{cid_str(node_cid)} carries file bytes of its own beside its "
                               "links")
        if len(fs.blocksizes) != len(pb.links):
            raise IntegrityError(f"{cid_str(node_cid)}: {len(fs.blocksizes)} blocksizes for "
                                 f"{len(pb.links)} links")
        total = sum(fs.blocksizes)
        if total != expected or (fs.filesize is not None and fs.filesize != total):
            raise IntegrityError(f"{cid_str(node_cid)}: holds {total} bytes, declared "
                                 f"{expected}")
        children = []
        for link, child_size in zip(pb.links, fs.blocksizes, strict=True):
            children.append((link.cid, (offset, child_size)))
            offset += child_size
        return children


class _Unplaceable(Exception):
    """Why a file cannot be laid out (not an error: it is copied instead)."""


def _any(cid: CID) -> bool:
    return True


def receive(layout: FileLayout, path: Path, blocks: Blockstore,
            read: Callable[[CID], Iterable[bytes]],
            progress: Callable[[int], None] | None = None) -> Received:
    """Build ``path`` (created if absent, resumed if present) from ``layout``.

    ``read(cid)`` streams the file's verified bytes through the backend, fetching what is
    missing (the Router's ``cat_stream``); the blockstore's placements catch the leaves.
    On any failure the file and its committed references stay, for the next receive.

    Raises:
        IntegrityError: the bytes read are more or fewer than the layout declares.
        DiskFull: the file system filled up (what was received is kept).
        BlockNotFound, OperationCancelled: from the fetch.
    """
    placements, filestore = blocks.placements, blocks.filestore
    if placements is None or filestore is None:
        raise IpfsMcpError(f"the blockstore at {blocks.root} keeps no references")
    offsets: dict[bytes, list[int]] = {}
    sizes: dict[bytes, int] = {}
    for slot in layout.slots:
        key = bytes(slot.cid.digest)
        offsets.setdefault(key, []).append(slot.offset)
        sizes[key] = slot.size
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise write_error(exc, path) from exc
    try:
        if os.fstat(fd).st_size != layout.size:
            os.ftruncate(fd, layout.size)  # sparse: nothing is written before a leaf arrives
        good = _resume(filestore, path, offsets, sizes)
        receiving = placements.open(path, fd, offsets, sizes)
        try:
            sha, copied = _read_back(layout, fd, read, good, receiving, progress)
            receiving.commit()
            os.fsync(fd)
        finally:
            placements.close(receiving)
    except IpfsMcpError:
        raise  # ours (BlockNotFound is also an OSError): never re-labelled as a disk error
    except OSError as exc:
        raise write_error(exc, path) from exc
    finally:
        os.close(fd)
    return Received(path, sha, layout.size, len(layout.slots), len(good),
                    receiving.placed_bytes, copied)


def holds(path: Path, layout: FileLayout) -> bool:
    """Whether the file at ``path`` has exactly the layout's size and every leaf's bytes at
    its offset (each read with ``pread`` and rehashed).

    Raises:
        OSError: the file cannot be opened or read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if os.fstat(fd).st_size != layout.size:
            return False
        for slot in layout.slots:
            try:
                verify_block(slot.cid, os.pread(fd, slot.size, slot.offset))
            except IntegrityError:
                return False
    finally:
        os.close(fd)
    return True


def _resume(filestore: Filestore, path: Path, offsets: dict[bytes, list[int]],
            sizes: dict[bytes, int]) -> set[int]:
    """The offsets an earlier receive wrote and referenced, each re-read and rehashed; a
    reference that fails (or names no leaf of this file) is dropped, so its leaf is fetched
    again."""
    good: set[int] = set()
    stale: list[bytes] = []
    for multihash, ref in filestore.refs_in(str(path)):
        if ref.offset in offsets.get(multihash, ()) and ref.size == sizes.get(multihash):
            if filestore.check(multihash, ref).ok:
                good.add(ref.offset)
                continue
        stale.append(multihash)
    filestore.remove(stale)
    return good


def _read_back(layout: FileLayout, fd: int, read: Callable[[CID], Iterable[bytes]],
               resumed: set[int], receiving: ReceivingFile,
               progress: Callable[[int], None] | None) -> tuple[str, int]:
    """Stream the file (fetching what is missing), hash it, and write every offset that
    neither an earlier receive (``resumed``) nor this one's placements wrote."""
    sha = hashlib.sha256()
    copied = 0
    slots = iter(layout.slots)
    slot = next(slots, None)
    buffer = bytearray()
    total = 0
    for piece in read(layout.cid):
        total += len(piece)
        if total > layout.size:
            raise IntegrityError(f"{cid_str(layout.cid)} holds more than the {layout.size} "
                                 "bytes it declares")
        if buffer or slot is None or len(piece) != slot.size:
            buffer += piece
            piece = b""
        while slot is not None:
            if piece:  # a whole leaf, as the exporter yields them: taken without a copy
                data, piece = piece, b""
            elif len(buffer) >= slot.size:
                data = bytes(buffer[:slot.size])
                del buffer[:slot.size]
            else:
                break
            sha.update(data)
            if slot.offset not in resumed and slot.offset not in receiving.placed:
                copied += _ensure(fd, slot, data)
                key = bytes(slot.cid.digest)
                # Referenced here unless another file already is (a pin may rely on that
                # one; moving it here would tie it to this blob's fate).
                if (slot.cid.hashfun.code != _IDENTITY
                        and receiving.filestore.ref(key) is None):
                    receiving.adopt(key, slot.offset, slot.size)
            if progress is not None:
                progress(slot.size)
            slot = next(slots, None)
    if total != layout.size or slot is not None:
        raise IntegrityError(f"{cid_str(layout.cid)} holds {total} bytes, it declares "
                             f"{layout.size}")
    return sha.hexdigest(), copied


def _ensure(fd: int, slot: Slot, data: bytes) -> int:
    """Write ``data`` at the slot unless the file holds it already; the bytes written."""
    if os.pread(fd, slot.size, slot.offset) == data:
        return 0
    done = 0
    while done < len(data):
        done += os.pwrite(fd, memoryview(data)[done:], slot.offset + done)
    return len(data)
