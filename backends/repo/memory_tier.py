"""A bounded memory tier of hot blocks, in front of the blockstore's disk reads.

It holds verified bytes only (what :meth:`Blockstore.get` has just hashed against its CID),
so a hit is served without a read or a hash. A block is admitted on its second read within
the last :data:`SEEN_KEYS` distinct reads (2Q's rule): a model read through once, whole,
passes by without flushing the blocks read again and again. Least recently used goes first
once the tier is over its bytes. Hits and misses are counted for the health report.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

# Keys of blocks read once, remembered so a second read admits them (about 80 bytes each).
SEEN_KEYS = 16_384


@dataclass(frozen=True)
class MemoryTierStats:
    max_bytes: int
    bytes: int
    blocks: int
    hits: int
    misses: int

    @property
    def hit_rate(self) -> float:
        asked = self.hits + self.misses
        return self.hits / asked if asked else 0.0


class MemoryTier:
    """Hot blocks in memory, at most ``max_bytes`` of them; thread-safe."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._blocks: OrderedDict[bytes, bytes] = OrderedDict()
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, multihash: bytes) -> bytes | None:
        """The kept bytes of a block (a hit), or None (a miss: read it from disk)."""
        with self._lock:
            data = self._blocks.get(multihash)
            if data is None:
                self.misses += 1
                return None
            self._blocks.move_to_end(multihash)
            self.hits += 1
            return data

    def offer(self, multihash: bytes, data: bytes) -> None:
        """A block read from disk and verified: kept if this is its second read."""
        if len(data) > self.max_bytes:
            return
        with self._lock:
            if multihash not in self._seen:
                self._seen[multihash] = None
                if len(self._seen) > SEEN_KEYS:
                    self._seen.popitem(last=False)
                return
            del self._seen[multihash]
            if multihash in self._blocks:
                return
            self._blocks[multihash] = data
            self._bytes += len(data)
            while self._bytes > self.max_bytes:
                _, dropped = self._blocks.popitem(last=False)
                self._bytes -= len(dropped)

    def drop(self, multihash: bytes) -> None:
        """The block left the disk (evicted, collected): a later read misses."""
        with self._lock:
            self._seen.pop(multihash, None)
            data = self._blocks.pop(multihash, None)
            if data is not None:
                self._bytes -= len(data)

    def stats(self) -> MemoryTierStats:
        with self._lock:
            return MemoryTierStats(self.max_bytes, self._bytes, len(self._blocks),
                                   self.hits, self.misses)
