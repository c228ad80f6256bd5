"""A bounded repo: heat per block, leases held by readers, and eviction past a watermark.

``--repo-max`` (:class:`RepoBound`) caps the bytes in ``blocks/``, as Kubo's
``Datastore.StorageMax``; past ``watermark`` of it (Kubo's ``StorageGCWatermark``, 90% by
default) unpinned blocks are evicted, coldest first, down to :data:`SETTLE_SHARE` of the
watermark, so a sweep is not paid on every later write. Never evicted: blocks under a pin's
DAG, blocks under a root a reader holds a lease on (:class:`Leases`), blocks written by an add
still in flight in this process (its pin is not written yet), and leaves kept by reference
(nocopy, and placed leaves: they have no file in ``blocks/``, so they are neither counted nor
removed).

The policy is GDSF (Greedy-Dual-Size-Frequency; Cherkasova 1998). Each block has a priority
``H = L + frequency * cost / size`` with ``cost = 1 + size / CHUNK``; the coldest (lowest
``H``) goes first and the clock ``L`` rises to the ``H`` of the last block evicted, so a block
not touched for a while ages below the newly touched ones (recency) without a timestamp on
every read. Why it fits model-sized content better than LRU or ARC:

- a model is read through once, whole (one fetch, one export): under LRU that scan flushes
  every hot block; GDSF gives it frequency one, so blocks read again (a hot subset, the
  inner nodes every read passes) outrank it;
- sizes differ by three orders (a 1 KiB folder or inner node, 256 KiB to 1 MiB leaves): the
  ``1 / size`` part keeps small, often-needed nodes, whose miss costs a round trip as a big
  leaf's does, while the ``1 / CHUNK`` part keeps big leaves from counting for nothing;
- ARC adapts between recency and frequency but treats every page alike in size and keeps
  ghost lists as long as the cache; GDSF needs one number per block.

Heat lives in memory only. Persisting it would cost a write per read (or a journal); instead
a restart rebuilds the table from the scan of ``blocks/`` that the byte count needs anyway:
every block starts at frequency one, older files (by mtime) colder. Only a bounded repo keeps
a table (about 100 bytes a block).

Within one process eviction never races a reader: :meth:`Leases.hold` and a sweep take one
lock, so a lease is either taken before a sweep marks (its DAG is then kept) or after the
sweep ends. Another process's reads and adds are not seen; bound one repo per process.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from multiformats import CID

from ipfs_mcp.backends.errors import InvalidInput, RepoFull

CHUNK = 256 * 1024  # Kubo's default chunk: the size whose cost counts twice its latency
DEFAULT_WATERMARK = 0.9
# A sweep evicts down to this share of the watermark: headroom before the next one.
SETTLE_SHARE = 0.9


@dataclass(frozen=True)
class RepoBound:
    """The byte bound of ``blocks/`` and the share of it past which eviction starts."""

    max_bytes: int
    watermark: float = DEFAULT_WATERMARK

    def __post_init__(self) -> None:
        if self.max_bytes < 1:
            raise InvalidInput(f"--repo-max must be a positive number of bytes, not "
                               f"{self.max_bytes}")
        if not 0 < self.watermark <= 1:
            raise InvalidInput(f"the repo watermark must be a share in (0, 1], not "
                               f"{self.watermark}")

    @property
    def high(self) -> int:
        """Bytes past which a sweep starts."""
        return int(self.max_bytes * self.watermark)

    @property
    def low(self) -> int:
        """Bytes a sweep evicts down to."""
        return int(self.high * SETTLE_SHARE)


class _Heat:
    __slots__ = ("frequency", "priority", "size", "stamp")

    def __init__(self, size: int, stamp: int) -> None:
        self.size = size
        self.frequency = 0
        self.priority = 0.0
        self.stamp = stamp  # order of the last touch: ties go to the older


class HeatTable:
    """GDSF heat of every block in ``blocks/`` and their total bytes; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._blocks: dict[bytes, _Heat] = {}
        self._clock = 0.0  # L: the priority of the last block evicted
        self._stamp = 0
        self.used = 0

    def _touch(self, multihash: bytes, size: int) -> _Heat:
        self._stamp += 1
        heat = self._blocks.get(multihash)
        if heat is None:
            heat = self._blocks[multihash] = _Heat(size, self._stamp)
            self.used += size
        heat.frequency += 1
        heat.stamp = self._stamp
        heat.priority = self._clock + heat.frequency * (1 + size / CHUNK) / max(size, 1)
        return heat

    def stored(self, multihash: bytes, size: int) -> int:
        """A block file was written; returns its stamp (adds in flight keep what is newer)."""
        with self._lock:
            return self._touch(multihash, size).stamp

    def read(self, multihash: bytes, size: int) -> int:
        """A block was read: one more use; returns its frequency."""
        with self._lock:
            return self._touch(multihash, size).frequency

    def forget(self, multihash: bytes) -> None:
        with self._lock:
            heat = self._blocks.pop(multihash, None)
            if heat is not None:
                self.used -= heat.size

    @property
    def stamp(self) -> int:
        with self._lock:
            return self._stamp

    def load(self, found: Iterable[tuple[bytes, int, float]]) -> None:
        """Seed from a scan of ``(multihash, size, mtime)``: older files colder."""
        with self._lock:
            for multihash, size, _ in sorted(found, key=lambda f: f[2]):
                if multihash not in self._blocks:
                    self._touch(multihash, size)

    def coldest(self, keep: Callable[[bytes, int], bool]) -> list[tuple[float, bytes, int]]:
        """Blocks by rising priority, as ``(priority, multihash, size)``, but for those
        ``keep`` names (given the multihash and the stamp of its last write or read)."""
        with self._lock:
            order = sorted((h.priority, h.stamp, m, h.size) for m, h in self._blocks.items()
                           if not keep(m, h.stamp))
        return [(priority, m, size) for priority, _, m, size in order]

    def evicted(self, priority: float) -> None:
        """Blocks up to ``priority`` were evicted: the clock rises to it (GDSF's ``L``), so
        what is touched from now on outranks what was left untouched."""
        with self._lock:
            self._clock = max(self._clock, priority)


class Leases:
    """Roots that readers (an export, a pin's walk) hold, and adds in flight. A sweep holds
    ``lock`` from its mark to its last removal, so a lease never starts in the middle."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._roots: dict[bytes, tuple[CID, int]] = {}
        self._writes: dict[int, int] = {}  # id -> stamp at its start
        self._next = 0

    @contextlib.contextmanager
    def hold(self, root: CID) -> Iterator[None]:
        """While held, no block of ``root``'s DAG is evicted."""
        key = bytes(root.digest)
        with self.lock:
            cid, count = self._roots.get(key, (root, 0))
            self._roots[key] = (cid, count + 1)
        try:
            yield
        finally:
            with self.lock:
                cid, count = self._roots[key]
                if count == 1:
                    del self._roots[key]
                else:
                    self._roots[key] = (cid, count - 1)

    @contextlib.contextmanager
    def writing(self, stamp: int) -> Iterator[None]:
        """While held, blocks stored at or after ``stamp`` are kept: an add's blocks until
        its pin is written."""
        with self.lock:
            self._next += 1
            ident = self._next
            self._writes[ident] = stamp
        try:
            yield
        finally:
            with self.lock:
                del self._writes[ident]

    def roots(self) -> list[CID]:
        with self.lock:
            return [cid for cid, _ in self._roots.values()]

    def oldest_write(self) -> int | None:
        with self.lock:
            return min(self._writes.values(), default=None)


@dataclass(frozen=True)
class EvictionReport:
    removed: int
    freed: int
    kept_leased: int  # unpinned blocks a sweep left to their readers or to adds in flight


@dataclass(frozen=True)
class Marked:
    """What a sweep must keep: blocks under pins, and blocks under leased roots."""

    pinned: set[bytes]
    leased: set[bytes]


class Evictor:
    """Evicts the coldest unpinned blocks of a bounded repo.

    ``mark`` gives the blocks to keep (None when a pinned DAG is broken: its blocks cannot be
    told from garbage, so nothing is evicted); ``remove`` deletes one block file and returns
    the bytes freed.
    """

    def __init__(self, bound: RepoBound, heat: HeatTable, leases: Leases,
                 mark: Callable[[list[CID]], Marked | None],
                 remove: Callable[[bytes], int]) -> None:
        self.bound = bound
        self.heat = heat
        self.leases = leases
        self._mark = mark
        self._remove = remove
        self._sweeping = threading.Lock()
        self.evicted_blocks = 0
        self.evicted_bytes = 0
        self.refused = 0

    def settle(self) -> EvictionReport | None:
        """Past the watermark, evict down to ``bound.low``; None when under it."""
        if self.heat.used <= self.bound.high:
            return None
        return self.evict_to(self.bound.low)

    def evict_to(self, target: int, *, need: int = 0,
                 what: str = "") -> EvictionReport:
        """Evict the coldest evictable blocks until ``target`` bytes are used. With
        ``need``, first check that ``need`` more bytes fit under the bound once everything
        evictable is gone.

        Raises:
            RepoFull: ``need`` bytes would not fit even after eviction; nothing was evicted.
        """
        with self._sweeping, self.leases.lock:
            marked = self._mark(self.leases.roots())
            if marked is None:
                if need:
                    self._refuse_unless_fits(need, what, self.heat.used)
                return EvictionReport(0, 0, 0)
            newest = self.leases.oldest_write()
            kept_leased = 0

            def keep(multihash: bytes, stamp: int) -> bool:
                nonlocal kept_leased
                if multihash in marked.pinned:
                    return True
                if multihash in marked.leased or (newest is not None and stamp >= newest):
                    kept_leased += 1
                    return True
                return False

            candidates = self.heat.coldest(keep)
            if need:
                kept = self.heat.used - sum(size for _, _, size in candidates)
                self._refuse_unless_fits(need, what, kept)
            removed = freed = 0
            for priority, multihash, _ in candidates:
                if self.heat.used <= target:
                    break
                freed += self._remove(multihash)
                removed += 1
                self.heat.evicted(priority)
            self.evicted_blocks += removed
            self.evicted_bytes += freed
            return EvictionReport(removed, freed, kept_leased)

    def _refuse_unless_fits(self, need: int, what: str, kept: int) -> None:
        if kept + need > self.bound.max_bytes:
            self.refused += 1
            raise RepoFull(what, need, max(self.bound.max_bytes - kept, 0),
                           self.bound.max_bytes, self.heat.used)

    def make_room(self, what: str, need: int) -> EvictionReport:
        """Before a fetch or add of ``need`` bytes: refuse it if it cannot fit, else evict
        so that it ends near the watermark, not past the bound.

        Raises:
            RepoFull: it would not fit even after every evictable block went.
        """
        target = max(min(self.bound.low, self.bound.max_bytes - need), 0)
        if self.heat.used + need <= self.bound.high:
            target = self.heat.used  # fits under the watermark: only the check
        return self.evict_to(target, need=need, what=what)


def block_files(scan: Iterable[tuple[bytes, Path]]) -> Iterator[tuple[bytes, int, float]]:
    """``(multihash, size, mtime)`` of each block file a scan found (gone ones skipped)."""
    for multihash, path in scan:
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        yield multihash, st.st_size, st.st_mtime
