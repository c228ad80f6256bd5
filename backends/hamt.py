"""HAMT-sharded UnixFS directories, as go-unixfs (boxo) builds them.

* fanout 256, so each level consumes 8 bits of the key's hash;
* the hash is murmur3 x64, first 64 bits, read most significant byte first;
* a slot holds an entry directly when it is the only one whose hash reaches it, otherwise a
  child shard (built the same way one level down); insert-only building makes this unique;
* links are named by the slot as two uppercase hex digits, followed by the entry name for
  entries and by nothing for child shards, and are ordered by slot;
* the node's Data is UnixFS ``HAMTShard`` with the occupied-slot bitfield as a big-endian
  integer without leading zero bytes, hashType murmur3 (0x22) and the fanout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import mmh3

from . import unixfs
from .dagpb import encode_link, encode_node
from .errors import IntegrityError

if TYPE_CHECKING:
    from .importer import Node

FANOUT = 256
_MAX_DEPTH = 8  # 64 hash bits / 8 bits per level


def key_hash(name: str) -> bytes:
    """The 8 hash bytes that place ``name`` in the trie."""
    h1, _ = mmh3.hash64(name.encode(), seed=0, x64arch=True, signed=False)
    return h1.to_bytes(8, "big")


def build(entries: Sequence[tuple[str, Node]], put: Callable[[bytes], bytes]) -> Node:
    """Build the shard tree for ``entries`` and return its root node.

    ``put`` stores a dag-pb block and returns its binary CID.
    """
    from .importer import Node

    hashed = [(key_hash(name), name, node) for name, node in entries]

    def shard(items: list[tuple[bytes, str, Node]], depth: int) -> Node:
        if depth >= _MAX_DEPTH:
            raise IntegrityError("HAMT: hash bits exhausted (too many colliding names)")
        slots: dict[int, list[tuple[bytes, str, Node]]] = {}
        for item in items:
            slots.setdefault(item[0][depth], []).append(item)
        links: list[bytes] = []
        tsize = 0
        bitfield = 0
        for index in sorted(slots):
            bitfield |= 1 << index
            members = slots[index]
            if len(members) == 1:
                _, name, child = members[0]
                link_name = f"{index:02X}{name}"
            else:
                child = shard(members, depth + 1)
                link_name = f"{index:02X}"
            links.append(encode_link(child.cid, link_name, child.tsize))
            tsize += child.tsize
        bits = bitfield.to_bytes((bitfield.bit_length() + 7) // 8, "big")
        data = unixfs.encode(unixfs.UnixFSData(unixfs.NodeType.HAMT_SHARD, data=bits,
                                               hash_type=unixfs.MURMUR3_X64_64, fanout=FANOUT))
        block = encode_node(links, data)
        return Node(put(block), len(block) + tsize, 0)

    return shard(hashed, 0)
