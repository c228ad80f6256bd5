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

Why not ``backends.dag.walk``: it always deduplicates and has no byte-range pruning, and
both are part of the spec. The walks here are iterative and bounded by the same limits
(:mod:`ipfs_mcp.backends.core.limits`).
"""

from __future__ import annotations

from collections.abc import Iterator

from multiformats import CID

from ipfs_mcp.backends.core import limits
from ipfs_mcp.backends.core.cids import cid_str, is_identity
from ipfs_mcp.backends.core.dag import links_of
from ipfs_mcp.backends.core.dagpb import PBLink, PBNode
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
    stack: list[tuple[CID, bytes | None, int]] = [(root, root_block, 0)]
    while stack:
        cid, block, depth = stack.pop()
        limits.check_depth(depth, "DAG", root)
        fresh = emitter.admit(cid)
        if not fresh and not is_identity(cid):
            continue  # dups=n: already sent, and its subtree with it
        data = block if block is not None else load(cid)
        if fresh:
            yield cid, data
        links = links_of(cid, data)
        limits.check_links(len(links), cid)
        stack.extend((link, None, depth + 1) for link in reversed(links))


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
        yield from _hamt_shards(root, decoded[0], decoded[1], load, emitter)


def _hamt_shards(root: CID, node: PBNode, fs: UnixFSData, load: Load,
                 emitter: _Emitter) -> Iterator[Block]:
    """A HAMT's sub-shards depth-first (links named by the slot alone), not its entries."""
    # Frames: one shard's links still to visit, and the width of that shard's slot names.
    stack: list[tuple[Iterator[PBLink], int]] = [(iter(node.links), _slot_width(fs))]
    while stack:
        pending, width = stack[-1]
        link = next(pending, None)
        if link is None:
            stack.pop()
            continue
        limits.check_depth(len(stack), "HAMT", root)
        if len(link.name) != width:
            continue  # an entry, not a shard
        block = load(link.cid)
        decoded = unixfs_node(link.cid, block)
        if decoded is None or decoded[1].type != NodeType.HAMT_SHARD:
            raise IntegrityError(f"HAMT link {link.name!r} in {cid_str(root)} is not a shard")
        if emitter.admit(link.cid):
            yield link.cid, block
        stack.append((iter(decoded[0].links), _slot_width(decoded[1])))


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
    # Frames: the children of one node still to visit, each with its absolute byte offset.
    levels: list[Iterator[tuple[CID, int, int]]] = [iter(_children(root, root_block, 0))]
    while levels:
        frame = next(levels[-1], None)
        if frame is None:
            levels.pop()
            continue
        cid, start, length = frame
        limits.check_depth(len(levels), "file", root)
        if start + length - 1 < first or start > last:
            continue  # outside the range: never loaded
        block = load(cid)
        if emitter.admit(cid):
            yield cid, block
        levels.append(iter(_children(cid, block, start)))


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
