"""HAMT-sharded UnixFS directories, as go-unixfs (boxo) builds them.

* fanout 256 by default (Kubo's ``--max-hamt-fanout``: a power of two from 8 to 1024), so
  each level consumes log2(fanout) bits of the key's hash;
* the hash is murmur3 x64, first 64 bits, read most significant bit first (boxo's
  ``hashBits.Next``);
* a slot holds an entry directly when it is the only one whose hash reaches it, otherwise a
  child shard (built the same way one level down); insert-only building makes this unique;
* links are named by the slot in uppercase hex, zero-padded to the width of ``fanout - 1``
  (two digits for 256, three for 1024), followed by the entry name for
  entries and by nothing for child shards, and are ordered by slot;
* the node's Data is UnixFS ``HAMTShard`` with the occupied-slot bitfield as a big-endian
  integer without leading zero bytes, hashType murmur3 (0x22) and the fanout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import mmh3

from ipfs_mcp.backends.core import unixfs
from ipfs_mcp.backends.core.dagpb import Node, encode_link, encode_node
from ipfs_mcp.backends.errors import IntegrityError, InvalidInput

FANOUT = 256
MIN_FANOUT = 8  # boxo: a shard's bitfield is whole bytes, so a multiple of 8
MAX_FANOUT = 1024  # Kubo's Import.UnixFSHAMTDirectoryMaxFanout range
_HASH_BITS = 64


def check_fanout(fanout: int) -> None:
    """Raises:
        InvalidInput: not a power of two in 8..1024 (what Kubo accepts).
    """
    if not MIN_FANOUT <= fanout <= MAX_FANOUT or fanout & (fanout - 1):
        raise InvalidInput(f"HAMT fanout must be a power of two from {MIN_FANOUT} to "
                           f"{MAX_FANOUT}, not {fanout}")


def key_hash(name: str) -> bytes:
    """The 8 hash bytes that place ``name`` in the trie."""
    h1, _ = mmh3.hash64(name.encode(), seed=0, x64arch=True, signed=False)
    return h1.to_bytes(8, "big")


def build(entries: Sequence[tuple[str, Node]], put: Callable[[bytes], bytes],
          fanout: int = FANOUT) -> Node:
    """Build the shard tree for ``entries`` and return its root node.

    ``put`` stores a dag-pb block and returns its binary CID.

    Raises:
        InvalidInput: ``fanout`` is not one Kubo accepts.
    """
    check_fanout(fanout)
    bits = fanout.bit_length() - 1
    width = len(f"{fanout - 1:X}")
    hashed = [(int.from_bytes(key_hash(name), "big"), name, node) for name, node in entries]

    def shard(items: list[tuple[int, str, Node]], depth: int) -> Node:
        consumed = (depth + 1) * bits
        if consumed > _HASH_BITS:
            raise IntegrityError("HAMT: hash bits exhausted (too many colliding names)")
        slots: dict[int, list[tuple[int, str, Node]]] = {}
        for item in items:
            slots.setdefault((item[0] >> (_HASH_BITS - consumed)) & (fanout - 1),
                             []).append(item)
        links: list[bytes] = []
        tsize = 0
        bitfield = 0
        for index in sorted(slots):
            bitfield |= 1 << index
            members = slots[index]
            if len(members) == 1:
                _, name, child = members[0]
                link_name = f"{index:0{width}X}{name}"
            else:
                child = shard(members, depth + 1)
                link_name = f"{index:0{width}X}"
            links.append(encode_link(child.cid, link_name, child.tsize))
            tsize += child.tsize
        occupied = bitfield.to_bytes((bitfield.bit_length() + 7) // 8, "big")
        data = unixfs.encode(unixfs.UnixFSData(unixfs.NodeType.HAMT_SHARD, data=occupied,
                                               hash_type=unixfs.MURMUR3_X64_64, fanout=fanout))
        block = encode_node(links, data)
        return Node(put(block), len(block) + tsize, 0)

    return shard(hashed, 0)
