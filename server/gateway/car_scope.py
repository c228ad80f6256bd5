"""The blocks of a trustless CAR response, in exact depth-first order.

After the blocks that prove the content path (:mod:`.resolve`), the terminal entity is
walked according to ``dag-scope``:

- ``block``: the terminal block only;
- ``entity``: a UnixFS file's whole DAG (or, with ``entity-bytes``, only the blocks that
  hold that byte range, found from ``blocksizes`` without loading the others), a HAMT
  folder's shards (not its entries), and the block alone for anything else;
- ``all``: the whole DAG under the terminal block.

``car-dups=y`` repeats a block each time the walk meets it; ``n`` sends it once (keyed by
multihash, the path blocks included). Identity CIDs are walked through but never written.

Every walk here is the one DAG walker's (:func:`ipfs_mcp.backends.core.dag.walk_nodes`), so
it is iterative and bounded by :mod:`ipfs_mcp.backends.core.limits`; the scopes are its
visitors: ``car-dups`` is its seen-set policy, and the byte range and the HAMT's shards are
what a visitor chooses to follow.
"""

from __future__ import annotations

from collections.abc import Iterator

from multiformats import CID

from ipfs_mcp.backends.core import limits
from ipfs_mcp.backends.core.cids import cid_str, is_identity
from ipfs_mcp.backends.core.dag import Node, walk_nodes
from ipfs_mcp.backends.core.unixfs import NodeType, UnixFSData
from ipfs_mcp.backends.errors import DagTooLarge, IntegrityError

from .request import CarOptions
from .resolve import RAW, Load, ResolvedPath, file_size, unixfs_node

Block = tuple[CID, bytes]


class _Emitter:
    """Applies the dups rule, drops identity blocks and bounds the count."""

    def __init__(self, dups: bool) -> None:
        self.dups = dups
        self.seen: set[bytes] = set()
        self.count = 0

    def admit(self, cid: CID) -> bool:
        """Whether ``cid``'s block is written (first time, or dups=y)."""
        self.count += 1
        if self.count > limits.MAX_WALK_BLOCKS:
            raise DagTooLarge(f"the CAR would hold more than {limits.MAX_WALK_BLOCKS} blocks")
        if is_identity(cid):
            return False
        key = bytes(cid.digest)
        if key in self.seen:
            return self.dups
        self.seen.add(key)
        return True


def car_blocks(resolved: ResolvedPath, options: CarOptions, load: Load) -> Iterator[Block]:
    """Every block of the CAR body, in order.

    Raises (from the iterator, mid-stream):
        BlockNotFound: a block below the terminal is missing (the stream must end there).
        IntegrityError, DagTooLarge: a malformed or hostile DAG.
    """
    emitter = _Emitter(options.dups)
    for cid, block in resolved.blocks:
        if emitter.admit(cid):
            yield cid, block
    if options.scope == "block":
        if emitter.admit(resolved.cid):
            yield resolved.cid, resolved.block
        return
    if options.scope == "all":
        yield from _walk_all(resolved.cid, resolved.block, load, emitter)
        return
    yield from _entity(resolved.cid, resolved.block, options, load, emitter)


def _walk_all(root: CID, root_block: bytes, load: Load, emitter: _Emitter) -> Iterator[Block]:
    """Depth-first pre-order over every link (the order of ``ipfs dag export``)."""
    walked: Iterator[Node[None]] = walk_nodes(root, _with_root(root, root_block, load),
                                              seen=emitter.seen, dedupe=not emitter.dups)
    for node in walked:
        if node.block is not None and not is_identity(node.cid):
            yield node.cid, node.block


def _with_root(root: CID, root_block: bytes, load: Load) -> Load:
    """``load``, with the terminal block (already read by the resolver) given as it is."""
    return lambda cid: root_block if cid is root else load(cid)


def _entity(root: CID, root_block: bytes, options: CarOptions, load: Load,
            emitter: _Emitter) -> Iterator[Block]:
    decoded = unixfs_node(root, root_block)
    if root.codec.code == RAW or (decoded is not None and decoded[1].type in
                                   (NodeType.FILE, NodeType.RAW)):
        yield from _file(root, root_block, options, load, emitter)
        return
    if emitter.admit(root):
        yield root, root_block
    if decoded is not None and decoded[1].type == NodeType.HAMT_SHARD:
        yield from _hamt_shards(root, root_block, load, emitter)


def _hamt_shards(root: CID, root_block: bytes, load: Load, emitter: _Emitter
                 ) -> Iterator[Block]:
    """A HAMT's sub-shards depth-first (links named by the slot alone), not its entries."""
    def shards(visit: Node[str]) -> list[tuple[CID, str]]:
        decoded = unixfs_node(visit.cid, visit.block or b"")
        assert decoded is not None  # a shard: checked when it was visited
        width = _slot_width(decoded[1])
        return [(link.cid, link.name) for link in decoded[0].links if len(link.name) == width]

    walked = walk_nodes(root, _with_root(root, root_block, load), shards, "", dedupe=False,
                        what="HAMT")
    next(walked)  # the root, sent by the caller
    for visit in walked:
        block = visit.block or b""
        decoded = unixfs_node(visit.cid, block)
        if decoded is None or decoded[1].type != NodeType.HAMT_SHARD:
            raise IntegrityError(f"HAMT link {visit.context!r} in {cid_str(root)} is not a "
                                 "shard")
        if emitter.admit(visit.cid):
            yield visit.cid, block


def _slot_width(fs: UnixFSData) -> int:
    """Slot names are the slot in hex, as wide as ``fanout - 1``."""
    return len(f"{(fs.fanout or 256) - 1:X}")


def _file(root: CID, root_block: bytes, options: CarOptions, load: Load,
          emitter: _Emitter) -> Iterator[Block]:
    """A UnixFS file's blocks depth-first; with entity-bytes only those holding the range."""
    size = file_size(root, root_block)
    span: tuple[int, int] | None = (0, size - 1) if size else None
    if options.entity_bytes is not None:
        span = options.entity_bytes.resolve(size)
    if emitter.admit(root):
        yield root, root_block
    if span is None:
        return  # an empty or fully-outside range: the root alone, like dag-scope=block
    first, last = span

    def in_range(visit: Node[int]) -> list[tuple[CID, int]]:
        """The children holding bytes of the range; the others are never loaded."""
        return [(cid, start) for cid, start, length in _children(visit.cid, visit.block or b"",
                                                                  visit.context)
                if not (start + length - 1 < first or start > last)]

    walked = walk_nodes(root, _with_root(root, root_block, load), in_range, 0, dedupe=False,
                        what="file")
    next(walked)  # the root, sent above
    for visit in walked:
        if emitter.admit(visit.cid):
            yield visit.cid, visit.block or b""


def _children(cid: CID, block: bytes, offset: int) -> list[tuple[CID, int, int]]:
    """A file node's children with their absolute offsets and lengths (from blocksizes)."""
    decoded = unixfs_node(cid, block)
    if decoded is None:
        return []
    node, fs = decoded
    if fs.type not in (NodeType.FILE, NodeType.RAW):
        raise IntegrityError(f"{cid_str(cid)}: a file links to a {fs.type.name.lower()} node")
    if len(fs.blocksizes) != len(node.links):
        raise IntegrityError(f"{cid_str(cid)}: {len(fs.blocksizes)} blocksizes for "
                             f"{len(node.links)} links")
    limits.check_links(len(node.links), cid)
    position = offset + len(fs.data or b"")
    out = []
    for link, length in zip(node.links, fs.blocksizes, strict=True):
        out.append((link.cid, position, length))
        position += length
    return out
