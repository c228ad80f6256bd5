"""Links between blocks, for the codecs we can walk: dag-pb, raw and dag-cbor."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import dag_cbor
from dag_cbor.encoding.err import CBORError
from multiformats import CID

from . import dagpb
from .errors import IntegrityError

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
    if isinstance(value, CID):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _cbor_links(item)
    elif isinstance(value, list):
        for item in value:
            yield from _cbor_links(item)


def walk(root: CID, load: Callable[[CID], bytes], *, seen: set[bytes] | None = None
         ) -> Iterator[tuple[CID, bytes]]:
    """Depth-first, pre-order walk of a DAG (the order of ``ipfs dag export``).

    Each block is yielded once, keyed by multihash. ``load`` fetches (and verifies) a block.
    Iterative, so deep or wide DAGs cannot exhaust the Python stack.
    """
    seen = set() if seen is None else seen
    stack = [root]
    while stack:
        cid = stack.pop()
        key = bytes(cid.digest)
        if key in seen:
            continue
        seen.add(key)
        block = load(cid)
        yield cid, block
        stack.extend(reversed(links_of(cid, block)))
