"""Links between blocks, for the codecs we can walk: dag-pb, raw and dag-cbor."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import dag_cbor
from dag_cbor.encoding.err import CBORError
from multiformats import CID

from ipfs_mcp.backends.core import dagpb, limits
from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.errors import DagTooLarge, IntegrityError

_DAG_PB = 0x70
_RAW = 0x55
_DAG_CBOR = 0x71


def links_of(cid: CID, block: bytes) -> list[CID]:
    """The CIDs a block links to, in order.

    Raises:
        IntegrityError: the block is not valid for its codec, or the codec is unknown.
    """
    code = cid.codec.code
    if code == _RAW:
        return []
    if code == _DAG_PB:
        return [link.cid for link in dagpb.decode(block).links]
    if code == _DAG_CBOR:
        try:
            return list(_cbor_links(dag_cbor.decode(block)))
        except (CBORError, ValueError, TypeError) as exc:
            raise IntegrityError(f"invalid dag-cbor block {cid}: {exc}") from exc
    raise IntegrityError(f"cannot follow links of codec {cid.codec.name} ({cid})")


def _cbor_links(value: object) -> Iterator[CID]:
    """Every CID inside a decoded dag-cbor value, in order, without recursion (the decoder
    bounds nesting, but a deep value must not cost a Python frame per level here)."""
    stack: list[object] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, CID):
            yield item
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))


def walk(root: CID, load: Callable[[CID], bytes], *, seen: set[bytes] | None = None
         ) -> Iterator[tuple[CID, bytes]]:
    """Depth-first, pre-order walk of a DAG (the order of ``ipfs dag export``).

    Each block is yielded once, keyed by multihash. ``load`` fetches (and verifies) a block.
    Iterative, so deep or wide DAGs cannot exhaust the Python stack, and bounded by
    :mod:`.limits`: depth, links per node, block size and blocks per walk.

    Raises:
        DagTooLarge: the DAG exceeds one of those bounds (the error names it).
    """
    seen = set() if seen is None else seen
    stack: list[tuple[CID, int]] = [(root, 0)]
    visited = 0
    while stack:
        cid, depth = stack.pop()
        key = bytes(cid.digest)
        if key in seen:
            continue
        seen.add(key)
        limits.check_depth(depth, "DAG", root)
        visited += 1
        if visited > limits.MAX_WALK_BLOCKS:
            raise DagTooLarge(f"DAG {cid_str(root)} has more than {limits.MAX_WALK_BLOCKS} "
                              "blocks")
        block = load(cid)
        if len(block) > limits.MAX_BLOCK_SIZE:
            raise DagTooLarge(f"block {cid_str(cid)} is {len(block)} bytes, over the bound of "
                              f"{limits.MAX_BLOCK_SIZE}")
        yield cid, block
        links = links_of(cid, block)
        limits.check_links(len(links), cid)
        stack.extend((link, depth + 1) for link in reversed(links))
