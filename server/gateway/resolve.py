"""Following a content path from its root CID, recording every block the walk needed.

A trustless CAR must start with exactly the blocks that prove the path, in the order the
walk met them, so this resolver keeps them (``ResolvedPath.blocks``). That is why it does not
use the exporter's ``resolve``, which scans a whole HAMT folder: here a HAMT-sharded folder
is searched the way boxo does, by the murmur3 hash of the name, loading only the shards on
that name's branch (gateway-conformance checks that exact block list).

Paths are followed through UnixFS folders (plain and HAMT) and through dag-cbor and
dag-json values (map keys, list indexes, then the CID link reached); segments left inside a
value that is not a link are the path's ``remainder``. Nothing else can be walked into, so a
path never leaves the DAG under its root.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from multiformats import CID

from ipfs_mcp.backends.core import cbor, dagjson, dagpb, hamt, limits, unixfs
from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.core.unixfs import NodeType
from ipfs_mcp.backends.errors import IntegrityError, NotFound

Load = Callable[[CID], bytes]

DAG_PB = 0x70
RAW = 0x55
DAG_CBOR = 0x71
DAG_JSON = 0x0129
_HASH_BITS = 64


class PathNotFound(NotFound):
    """A path segment names nothing in the DAG (HTTP 404)."""


@dataclass(frozen=True)
class ResolvedPath:
    """The terminal CID, its block, and the blocks met on the way (the root first, the
    terminal's own block not included). ``roots`` are the CIDs each segment landed on, for
    ``X-Ipfs-Roots``. ``remainder``: the segments followed inside the terminal dag-cbor or
    dag-json block that did not end at a link (a field of it, not a block)."""

    cid: CID
    block: bytes
    blocks: tuple[tuple[CID, bytes], ...]
    roots: tuple[CID, ...]
    remainder: tuple[str, ...] = ()


def unixfs_node(cid: CID, block: bytes) -> tuple[dagpb.PBNode, unixfs.UnixFSData] | None:
    """A dag-pb block's node and UnixFS data, or None when it is not UnixFS dag-pb.

    Raises:
        IntegrityError: a dag-pb block that does not decode.
    """
    if cid.codec.code != DAG_PB:
        return None
    node = dagpb.decode(block)
    if node.data is None:
        return None
    try:
        return node, unixfs.decode(node.data)
    except IntegrityError:
        return None


def file_size(cid: CID, block: bytes) -> int:
    """A UnixFS file's size as its root block declares it (a raw block is its own bytes)."""
    decoded = unixfs_node(cid, block)
    if decoded is None:
        return len(block)
    fs = decoded[1]
    if fs.filesize is not None:
        return fs.filesize
    return len(fs.data or b"") + sum(fs.blocksizes)


def _hamt_find(cid: CID, node: dagpb.PBNode, fs: unixfs.UnixFSData, name: str, load: Load,
               met: list[tuple[CID, bytes]]) -> CID:
    """The CID of ``name`` in the HAMT rooted at ``cid``; sub-shards loaded go into ``met``."""
    digest = int.from_bytes(hamt.key_hash(name), "big")
    depth = 0
    while True:
        fanout = fs.fanout or hamt.FANOUT
        if fanout < 2 or fanout > hamt.MAX_FANOUT or fanout & (fanout - 1):
            raise IntegrityError(f"{cid_str(cid)}: HAMT fanout {fanout} is invalid")
        bits = fanout.bit_length() - 1
        if (depth + 1) * bits > _HASH_BITS:
            raise IntegrityError(f"{cid_str(cid)}: HAMT deeper than its hash bits")
        index = (digest >> (_HASH_BITS - (depth + 1) * bits)) & (fanout - 1)
        prefix = f"{index:0{len(f'{fanout - 1:X}')}X}"
        for link in node.links:
            if link.name == prefix + name:
                return link.cid
            if link.name == prefix:
                sub_block = load(link.cid)
                decoded = unixfs_node(link.cid, sub_block)
                if decoded is None or decoded[1].type != NodeType.HAMT_SHARD:
                    raise IntegrityError(f"HAMT link {link.name!r} is not a shard")
                met.append((link.cid, sub_block))
                cid, (node, fs) = link.cid, decoded
                depth += 1
                break
        else:
            raise PathNotFound(f"no entry {name!r} in {cid_str(cid)}")


def _cbor_step(value: object, segment: str, where: CID) -> object:
    if isinstance(value, dict):
        if segment not in value:
            raise PathNotFound(f"no field {segment!r} in {cid_str(where)}")
        return value[segment]
    if isinstance(value, list) and segment.isdigit() and int(segment) < len(value):
        return value[int(segment)]
    raise PathNotFound(f"cannot follow {segment!r} inside {cid_str(where)}")


def resolve(root: CID, segments: tuple[str, ...], load: Load) -> ResolvedPath:
    """Walk ``segments`` from ``root``.

    Raises:
        BlockNotFound: a block on the path is missing (the root included).
        PathNotFound: a segment names nothing.
        IntegrityError: a block on the path is malformed.
    """
    limits.check_depth(len(segments), "content path")
    cid, block = root, load(root)
    met: list[tuple[CID, bytes]] = []
    roots: list[CID] = [root]
    cbor_value: object | None = None  # inside a dag-cbor/json block: the value reached
    inside: list[str] = []  # the segments followed inside that block so far
    for segment in segments:
        if cbor_value is None and cid.codec.code in (DAG_CBOR, DAG_JSON):
            cbor_value = _decode_value(cid, block)
        if cbor_value is not None:
            cbor_value = _cbor_step(cbor_value, segment, cid)
            inside.append(segment)
            if isinstance(cbor_value, CID):
                met.append((cid, block))
                cid, block, cbor_value = cbor_value, load(cbor_value), None
                inside = []
            roots.append(cid)
            continue
        decoded = unixfs_node(cid, block)
        if decoded is None or decoded[1].type not in (NodeType.DIRECTORY, NodeType.HAMT_SHARD):
            raise PathNotFound(f"{cid_str(cid)} is not a folder; cannot resolve {segment!r}")
        node, fs = decoded
        met.append((cid, block))
        if fs.type == NodeType.HAMT_SHARD:
            child = _hamt_find(cid, node, fs, segment, load, met)
        else:
            child = next((link.cid for link in node.links if link.name == segment), None)
            if child is None:
                raise PathNotFound(f"no entry {segment!r} in {cid_str(cid)}")
        cid, block = child, load(child)
        roots.append(cid)
    # A path that ends inside a dag-cbor value leaves that block as the terminal entity.
    return ResolvedPath(cid, block, tuple(met), tuple(roots), tuple(inside))


def _decode_value(cid: CID, block: bytes) -> object:
    if cid.codec.code == DAG_JSON:
        return dagjson.decode(block, f"dag-json block {cid_str(cid)}")
    return cbor.decode(block, f"dag-cbor block {cid_str(cid)}")
