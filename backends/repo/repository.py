"""The embedded IPFS repo: blockstore, pins, garbage collection and verification.

On disk, at ``$HF_HOME/ipfs`` (``HF_HOME`` defaults to ``~/.cache/huggingface``)::

    ipfs/
      version                 repo format version ("1")
      repo.lock               flock: shared while adding, pinning or verifying pins,
                              exclusive during GC
      blocks/<XY>/<KEY>.data  one file per block (see blockstore.py)
      pins/recursive/<CID>.json, pins/direct/<CID>.json   (see pins.py)
      quarantine/<KEY>.<UTC time>-<tag>.data
                              blocks that failed their hash, kept for inspection until
                              ``repo verify --remove-bad-blocks`` (see blockstore.py)
      filestore/refs.sqlite   leaves added with nocopy, kept as (file, offset, size)
                              references into the user's files (see filestore.py)
      integrity.json          the last verify's summary, for the health report
      tmp/                    atomic-write staging; stale files are cleaned by GC
      identity.key            the libp2p node's Ed25519 key (mode 0600), when a node ran

Several processes (the CLI while the server runs) may use one repo: writes are atomic
renames, and the lock keeps GC from sweeping blocks that an add has written but not yet
pinned. A kill -9 at any point leaves every pinned DAG whole: a pin is written only after its
DAG is complete, GC deletes only blocks that no pin reaches, and a GC that cannot see a
pinned DAG's links (a block of it is missing) deletes nothing.

A bounded repo (``--repo-max``, :mod:`.eviction`) evicts its coldest unpinned blocks past a
watermark, at the end of each add, pin and lease and before a fetch (:meth:`Repo.make_room`,
which refuses what cannot fit); readers hold a lease on the root they read (:meth:`Repo.lease`)
so no block of it goes under them. Eviction keeps to this process's own readers and adds.

Reports (:class:`RepoStat`, :class:`GCReport`, :class:`VerifyReport`) are frozen data, so the
CLI, the tools and the health report show the same facts.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from multiformats import CID

from ipfs_mcp.backends.core.cids import cid_str, identity_data, is_identity, verify_block
from ipfs_mcp.backends.core.dag import Node, links_of, walk, walk_nodes
from ipfs_mcp.backends.errors import BlockNotFound, IntegrityError, IpfsMcpError
from ipfs_mcp.backends.repo.atomic import DiskSync, atomic_write
from ipfs_mcp.backends.repo.blockstore import BadBlock, Blockstore, key_of
from ipfs_mcp.backends.repo.eviction import (
    EvictionReport,
    Evictor,
    HeatTable,
    Leases,
    Marked,
    RepoBound,
    block_files,
)
from ipfs_mcp.backends.repo.filestore import Filestore, RefCheck, leaf_cid_digest
from ipfs_mcp.backends.repo.memory_tier import MemoryTier, MemoryTierStats
from ipfs_mcp.backends.repo.pins import Pin, PinStore, PinType

if TYPE_CHECKING:
    from ipfs_mcp.backends.settings import BackendSettings

REPO_VERSION = "1"
_RAW = 0x55
_INTEGRITY_FILE = "integrity.json"

ProgressFn = Callable[[int], None]


@dataclass(frozen=True)
class RepoStat:
    path: str
    blocks: int
    size: int
    pins: int
    free_disk: int
    references: int = 0  # leaves kept as references into files (nocopy), not in blocks/


@dataclass(frozen=True)
class GCReport:
    removed: int
    freed: int
    kept: int
    missing: tuple[str, ...] = ()  # pinned raw leaves (or direct pins) absent: a warning
    references_dropped: int = 0  # unreachable nocopy references dropped (files untouched)


# "changed", "no-file", "error": a leaf kept by reference whose file no longer gives its
# bytes (Kubo's filestore statuses).
HoleKind = Literal["absent", "corrupt", "undecodable", "changed", "no-file", "error"]


@dataclass(frozen=True)
class MissingBlock:
    """A block that a pinned DAG needs and the blockstore cannot give."""

    cid: str  # as the DAG links to it
    pins: tuple[str, ...]  # every pin whose DAG it breaks
    # "corrupt": a bad copy of it sits in quarantine/; "undecodable": present, but its links
    # cannot be read, so the blocks below it are unknown
    kind: HoleKind = "absent"


@dataclass(frozen=True)
class VerifyReport:
    """What ``repo verify`` found: every hole in a pinned DAG and every bad block."""

    checked: int  # blocks rehashed
    pins: int = 0  # pins whose DAG was walked
    missing: tuple[MissingBlock, ...] = ()
    corrupt: tuple[BadBlock, ...] = ()  # set aside in quarantine/ and still there
    removed: tuple[BadBlock, ...] = ()  # bad blocks deleted by remove_bad_blocks
    finished_at: float = 0.0  # Unix seconds
    references: int = 0  # nocopy references re-read and rehashed (also counted in checked)
    bad_references: tuple[RefCheck, ...] = ()  # references whose file fails them, kept
    removed_references: tuple[RefCheck, ...] = ()  # bad references dropped (files untouched)

    @property
    def ok(self) -> bool:
        """True only when every pinned DAG is whole and no bad block or reference remains."""
        return not self.missing and not self.corrupt and not self.bad_references


@dataclass(frozen=True)
class LastVerify:
    """The summary of a verify run, as kept in ``integrity.json``."""

    at: float  # Unix seconds, when it finished
    ok: bool
    checked: int
    pins: int
    missing: int
    corrupt: int
    bad_references: int = 0


@dataclass(frozen=True)
class IntegrityState:
    """A cheap summary for the health report: no block is read to build it."""

    quarantined: int  # blocks set aside now (counted live)
    last_verify: LastVerify | None  # None: this repo was never verified

    @property
    def status(self) -> Literal["ok", "damaged", "unverified"]:
        if self.quarantined or (self.last_verify is not None and not self.last_verify.ok):
            return "damaged"
        return "unverified" if self.last_verify is None else "ok"

    @property
    def summary(self) -> str:
        """One line for people."""
        last = self.last_verify
        parts = [f"{self.quarantined} block(s) set aside as corrupt"] if self.quarantined else []
        if last is None:
            parts.append("never verified")
        elif not last.ok:
            parts.append(f"last verify found {last.missing} missing and {last.corrupt} "
                         "corrupt block(s)" + (f", {last.bad_references} bad file "
                                               "reference(s)" if last.bad_references else ""))
        text = "; ".join(parts) or "last verify passed"
        return text + ("; run `ipfs-mcp repo verify`" if self.status == "damaged" else "")


@dataclass(frozen=True)
class TierStats:
    """The tiers at a glance, for ``peer_stats`` and the health report."""

    disk_bytes: int | None  # bytes in blocks/ (None: unbounded, not counted)
    disk_max: int | None  # --repo-max (None: unbounded)
    watermark: float | None
    memory: MemoryTierStats | None
    evicted_blocks: int = 0
    evicted_bytes: int = 0
    refused: int = 0  # fetches and adds refused for want of room


class Repo:
    def __init__(self, path: Path, *, fsync: bool = True, sync: DiskSync | None = None,
                 bound: RepoBound | None = None, memory_bytes: int = 0) -> None:
        """``sync`` decides how every write is made durable (default: fsync, or nothing
        with ``fsync=False``). ``bound`` caps ``blocks/`` and evicts past its watermark
        (see :mod:`.eviction`); ``memory_bytes`` keeps hot blocks in memory (0: none)."""
        sync = sync if sync is not None else DiskSync(fsync)
        fsync = sync.enabled
        self.path = Path(path).expanduser()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            version = self.path / "version"
            if not version.exists():  # atomic: a kill -9 on first use leaves no empty file
                atomic_write(version, (REPO_VERSION + "\n").encode(), fsync=fsync)
        except OSError as exc:
            raise IpfsMcpError(f"cannot create repo at {self.path}: {exc.strerror}") from exc
        self.filestore = Filestore(self.path, fsync=fsync)
        heat = HeatTable() if bound is not None else None
        memory = MemoryTier(memory_bytes) if memory_bytes > 0 else None
        self.blocks = Blockstore(self.path, filestore=self.filestore, sync=sync, heat=heat,
                                 memory=memory)
        self.pins = PinStore(self.path, self.blocks.tmp_dir, sync=sync)
        self._lock_path = self.path / "repo.lock"
        self.leases = Leases()
        self.evictor: Evictor | None = None
        if bound is not None and heat is not None:
            heat.load(block_files(self.blocks.iter_multihashes()))
            self.evictor = Evictor(bound, heat, self.leases, self._keep, self._evict_one)

    @classmethod
    def from_settings(cls, settings: BackendSettings) -> Repo:
        """The repo at ``settings.repo_path`` with its bound and memory tier."""
        bound = (RepoBound(settings.repo_max, settings.repo_watermark)
                 if settings.repo_max is not None else None)
        return cls(settings.repo_path, bound=bound, memory_bytes=settings.memory_tier_bytes)

    # -- the bound ------------------------------------------------------------------------
    @property
    def bound(self) -> RepoBound | None:
        return self.evictor.bound if self.evictor is not None else None

    @contextlib.contextmanager
    def lease(self, root: CID) -> Iterator[None]:
        """Hold while reading or exporting ``root``: no block of its DAG is evicted."""
        with self.leases.hold(root):
            yield
        self.settle()

    def settle(self) -> EvictionReport | None:
        """Past the watermark, evict the coldest unpinned blocks (see :mod:`.eviction`)."""
        return self.evictor.settle() if self.evictor is not None else None

    def make_room(self, what: str, needed: int) -> None:
        """Before a fetch or add of ``needed`` bytes into a bounded repo: evict to make
        room, or refuse it before its first byte.

        Raises:
            RepoFull: it would not fit under the bound even after eviction.
        """
        if self.evictor is not None and needed > 0:
            self.evictor.make_room(what, needed)

    def stored_under(self, root: CID) -> int:
        """Bytes of ``root``'s DAG already stored here (a walk of the local blocks only)."""
        total = 0
        seen: set[bytes] = set()
        for cid, kind in self._pinned_holes(root, seen):
            seen.discard(bytes(cid.digest))  # a hole is not stored
            del kind
        for multihash in seen:
            with contextlib.suppress(FileNotFoundError):
                total += self.blocks.path_of(multihash).stat().st_size
        return total

    def tiers(self) -> TierStats:
        """Tier sizes, hit rates and what was evicted (cheap: nothing is read)."""
        memory = self.blocks.memory.stats() if self.blocks.memory is not None else None
        ev = self.evictor
        if ev is None:
            return TierStats(None, None, None, memory)
        return TierStats(ev.heat.used, ev.bound.max_bytes, ev.bound.watermark, memory,
                         ev.evicted_blocks, ev.evicted_bytes, ev.refused)

    def _keep(self, leased: list[CID]) -> Marked | None:
        """The blocks a sweep keeps; None when a pinned DAG is broken."""
        pinned: set[bytes] = set()
        pins = list(self.pins)
        try:
            for pin in (p for p in pins if p.type == "recursive"):
                self._mark(pin.cid, pinned)
        except IntegrityError:
            return None
        pinned.update(bytes(p.cid.digest) for p in pins if p.type == "direct")
        held: set[bytes] = set()
        for root in leased:
            for _ in self._pinned_holes(root, held):
                pass  # a hole in a leased DAG: its reader fetches it or fails, as without us
        return Marked(pinned, held)

    def _evict_one(self, multihash: bytes) -> int:
        return self.blocks.delete_path(self.blocks.path_of(multihash), multihash)

    @contextlib.contextmanager
    def _lock(self, kind: int, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        with open(self._lock_path, "a+b") as handle:
            try:
                fcntl.flock(handle.fileno(), kind | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None:
                    on_wait()  # someone holds it: say so before blocking
                fcntl.flock(handle.fileno(), kind)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold while writing blocks that will be pinned, so GC waits for the pin (and
        eviction keeps them). A bounded repo settles once the outermost write ends."""
        heat = self.blocks.heat
        with self._lock(fcntl.LOCK_SH):
            if heat is None:
                yield
                return
            with self.leases.writing(heat.stamp + 1):
                yield
        self.settle()

    # -- pins ---------------------------------------------------------------------------
    def pin(self, cid: CID, *, recursive: bool = True, name: str = "",
            load: Callable[[CID], bytes] | None = None,
            progress: ProgressFn | None = None) -> Pin:
        """Pin ``cid``; a recursive pin first checks that the whole DAG is present.

        ``load`` may fetch missing blocks (from peers); by default only local blocks count.
        ``progress`` hears the size of each block of the DAG as it is checked.

        Raises:
            BlockNotFound: a block of the DAG is missing; the error names it.
        """
        load = load or self.blocks.get
        with self.writing(), self.leases.hold(cid):
            if recursive:
                size = 0
                # A stored raw leaf has no links: it is checked by presence, not read.
                for node_cid, block in walk(cid, load, present=self.blocks.has):
                    block_size = self._leaf_size(node_cid, load) if block is None else len(block)
                    size += block_size
                    if progress is not None:
                        progress(block_size)
            else:
                size = len(load(cid))
            # The pin file is written (atomically) only now that the DAG is complete.
            return self.pins.add(cid, "recursive" if recursive else "direct", name=name,
                                 size=size)

    def _leaf_size(self, cid: CID, load: Callable[[CID], bytes]) -> int:
        """The size of a raw leaf found stored (read only if it went meanwhile)."""
        try:
            return self.blocks.size(cid)  # GC cannot run: we hold the lock
        except BlockNotFound:
            return len(load(cid))

    def _mark(self, root: CID, live: set[bytes]) -> list[CID]:
        """Add every block of a pinned DAG to ``live``; returns its absent raw leaves.

        Raises:
            IntegrityError: a node with links is absent, corrupt (now set aside) or
                undecodable, so the blocks below it are unknown.
            DagTooLarge: the DAG is deeper, wider or larger than any real one.
        """
        absent: list[CID] = []
        for cid, kind in self._pinned_holes(root, live, reverse=True):
            if kind == "absent" and cid.codec.code == _RAW:
                absent.append(cid)  # a leaf: nothing below it can be swept by mistake
            else:
                raise IntegrityError(f"block {cid_str(cid)} is {kind}")
        return absent

    def _pinned_holes(self, root: CID, seen: set[bytes], *, recursive: bool = True,
                      reverse: bool = False, broken: dict[bytes, HoleKind] | None = None,
                      known: dict[bytes, tuple[CID, ...] | HoleKind] | None = None
                      ) -> Iterator[tuple[CID, HoleKind]]:
        """Walk a pinned DAG over the local blocks only, yielding each hole as it is met (a
        block absent, set aside as corrupt, undecodable, or a ``broken`` reference) instead
        of failing; nothing below a hole is known, so nothing below it is walked.

        ``seen`` is shared with the caller; ``known`` keeps the links of inner nodes and the
        holes for later walks (leaves are not kept, so it grows with the inner nodes, about
        one in 174 blocks). ``reverse`` visits each node's links last to first (GC's order).

        Raises:
            DagTooLarge: the DAG is deeper, wider or larger than any real one.
        """
        met: list[tuple[CID, HoleKind]] = []
        unread: dict[bytes, HoleKind] = {}

        def present(cid: CID) -> bool:
            return not (broken and bytes(cid.digest) in broken) and self.blocks.has(cid)

        def load(cid: CID) -> bytes | None:
            key = bytes(cid.digest)
            if known is not None and key in known:
                return None
            found = self._block_or_hole(cid, broken)
            if isinstance(found, bytes):
                return found
            unread[key] = found
            return None

        def links_or_hole(node: Node[None]) -> tuple[CID, ...] | HoleKind:
            key = bytes(node.cid.digest)
            if known is not None and key in known:
                return known[key]
            found: tuple[CID, ...] | HoleKind = ()
            if node.block is None:
                found = unread.pop(key, ())  # a stored raw leaf, or a hole load met
            else:
                try:
                    found = tuple(links_of(node.cid, node.block))
                except IntegrityError:
                    found = "undecodable"
            if found and known is not None:
                known[key] = found
            return found

        def follow(node: Node[None]) -> list[tuple[CID, None]]:
            found = links_or_hole(node)
            if isinstance(found, str):
                met.append((node.cid, found))
                return []
            if not recursive:
                return []
            return [(link, None) for link in (found[::-1] if reverse else found)]

        for _ in walk_nodes(root, load, follow, present=present, seen=seen):
            yield from met  # the holes met by the visits before this one
            met.clear()
        yield from met

    def unpin(self, cid: CID, kind: PinType | None = None) -> list[PinType]:
        return self.pins.remove(cid, kind)

    # -- gc -----------------------------------------------------------------------------
    def gc(self, *, on_wait: Callable[[], None] | None = None,
           progress: ProgressFn | None = None) -> GCReport:
        """Remove every block not reachable from a pin; reports what it freed.

        GC waits for adds and pins in flight (in any process); ``on_wait`` is called once
        when it has to. ``progress`` hears the size of each block removed. Blocks set aside
        as corrupt (``quarantine/``) are never touched.

        Raises:
            IntegrityError: a pinned DAG lacks a node that has links, so GC cannot tell
                which blocks that pin still needs; nothing was deleted.
        """
        with self._lock(fcntl.LOCK_EX, on_wait):
            live: set[bytes] = set()
            missing: list[str] = []
            pins = list(self.pins)
            # Direct pins last: marking one first would stop a recursive walk at its block.
            for pin in (p for p in pins if p.type == "recursive"):
                try:
                    missing.extend(cid_str(c) for c in self._mark(pin.cid, live))
                except IntegrityError as exc:
                    raise IntegrityError(
                        f"GC deleted nothing: the pinned DAG {cid_str(pin.cid)} is broken "
                        f"({exc}), so the blocks it still needs cannot be told from garbage; "
                        f"run `ipfs-mcp repo verify`, then `ipfs-mcp pin add "
                        f"{cid_str(pin.cid)}` to fetch it again or `ipfs-mcp pin rm` it"
                    ) from exc
            for pin in (p for p in pins if p.type == "direct"):
                live.add(bytes(pin.cid.digest))
                if not self.blocks.has(pin.cid):
                    missing.append(cid_str(pin.cid))
            removed = freed = kept = 0
            for multihash, path in list(self.blocks.iter_multihashes()):
                if multihash in live:
                    kept += 1
                    continue
                size = self.blocks.delete_path(path, multihash)
                freed += size
                removed += 1
                if progress is not None:
                    progress(size)
            dropped = self.filestore.drop_unreachable(live)  # rows only: files stay
            self.blocks.clean_tmp()
        return GCReport(removed, freed, kept, tuple(dict.fromkeys(missing)), dropped)

    # -- verify -------------------------------------------------------------------------
    def verify(self, *, remove_bad_blocks: bool = False,
               progress: ProgressFn | None = None) -> VerifyReport:
        """Rehash every block, then check that every pinned DAG is complete.

        A block that fails its hash is set aside in ``quarantine/``. With
        ``remove_bad_blocks`` every set-aside block is deleted (Kubo's
        ``--remove-bad-blocks``); a pinned DAG that needed one stays broken until its block
        is stored again. Nothing is fetched. ``progress`` hears the bytes of each block
        rehashed. The summary is saved for :meth:`integrity`.

        Leaves kept by reference (nocopy) are re-read from their files and rehashed too; a
        bad reference (Kubo's ``changed``, ``no-file``, ``error``) is reported with the pins
        it breaks, and only dropped (never its file) with ``remove_bad_blocks``.
        """
        checked = 0
        for multihash, path in list(self.blocks.iter_multihashes()):
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue  # GC (or a repair) removed it meanwhile
            except OSError as exc:
                raise IpfsMcpError(f"cannot read {path}: {exc.strerror}") from exc
            checked += 1
            try:
                verify_block(CID("base32", 1, "raw", multihash), data)
            except IntegrityError:
                self.blocks.quarantine(path)
            if progress is not None:
                progress(len(data))
        removed = self.blocks.remove_bad_blocks() if remove_bad_blocks else []
        refs = self.filestore.verify()
        for ref in refs:
            if progress is not None:
                progress(ref.size)
        bad_refs = [r for r in refs if not r.ok]
        dropped: list[RefCheck] = []
        if remove_bad_blocks and bad_refs:
            self.filestore.remove(leaf_cid_digest(r.cid) for r in bad_refs)
            dropped, bad_refs = bad_refs, []
        # A broken reference breaks a pin unless a good block file stands in for it.
        broken: dict[bytes, HoleKind] = {}
        for ref in (*bad_refs, *dropped):
            key = leaf_cid_digest(ref.cid)
            if not self.blocks.path_of(key).exists() and ref.status != "missing":
                broken[key] = ref.status  # type: ignore[assignment]
        with self.writing():  # GC waits, so an unpin and sweep cannot pass for a hole
            pins = list(self.pins)
            holes = self._holes(pins, broken)
        bad = self.blocks.bad_blocks()
        bad_keys = {b.multihash for b in bad}
        missing = tuple(
            MissingBlock(cid_str(cid), tuple(names),
                         "corrupt" if kind == "absent" and _key_of(cid) in bad_keys else kind)
            for cid, names, kind in holes)
        report = VerifyReport(checked + len(refs), len(pins), missing, tuple(bad),
                              tuple(removed), time.time(), len(refs), tuple(bad_refs),
                              tuple(dropped))
        self._save_last_verify(report)
        return report

    def _holes(self, pins: Iterable[Pin], broken: dict[bytes, HoleKind] | None = None
               ) -> list[tuple[CID, list[str], HoleKind]]:
        """Every block a pin needs and the store lacks, with the pins it breaks, in order.

        Each pin is walked on its own, so a block shared by two pins names both. The links
        of nodes that have some, and the holes, are kept for the pins that follow; leaves are
        not, so memory grows with the inner nodes (about one in 174 blocks), not the repo.
        """
        known: dict[bytes, tuple[CID, ...] | HoleKind] = {}
        holes: dict[bytes, tuple[CID, list[str], HoleKind]] = {}
        for pin in pins:
            name = cid_str(pin.cid)
            for cid, kind in self._pinned_holes(pin.cid, set(), known=known, broken=broken,
                                                recursive=pin.type == "recursive"):
                holes.setdefault(bytes(cid.digest), (cid, [], kind))[1].append(name)
        return list(holes.values())

    def _block_or_hole(self, cid: CID, broken: dict[bytes, HoleKind] | None = None
                       ) -> bytes | HoleKind:
        """A stored block, or why it cannot be had: absent, corrupt (``get`` has just set
        it aside) or a broken reference. Nothing is fetched."""
        if is_identity(cid):
            return identity_data(cid)
        if broken and bytes(cid.digest) in broken:
            return broken[bytes(cid.digest)]
        if cid.codec.code == _RAW and not self.blocks.has(cid):
            return "absent"
        try:
            return self.blocks.peek(cid)
        except BlockNotFound:
            return "absent"
        except IntegrityError:
            return "corrupt"

    # -- integrity state ----------------------------------------------------------------
    def integrity(self) -> IntegrityState:
        """The repo's integrity at a glance: bad blocks now, and the last verify's result."""
        return IntegrityState(self.blocks.bad_block_count(), self._load_last_verify())

    def _save_last_verify(self, report: VerifyReport) -> None:
        record = {"version": 1, "at": report.finished_at, "ok": report.ok,
                  "checked": report.checked, "pins": report.pins,
                  "missing": len(report.missing), "corrupt": len(report.corrupt),
                  "bad_references": len(report.bad_references)}
        try:
            atomic_write(self.path / _INTEGRITY_FILE, json.dumps(record).encode(),
                         tmp_dir=self.blocks.tmp_dir, fsync=self.blocks.fsync)
        except OSError as exc:
            raise IpfsMcpError(f"cannot save the verify summary in {self.path}: "
                               f"{exc.strerror}") from exc

    def _load_last_verify(self) -> LastVerify | None:
        try:
            record = json.loads((self.path / _INTEGRITY_FILE).read_text(encoding="utf-8"))
            return LastVerify(float(record["at"]), bool(record["ok"]), int(record["checked"]),
                              int(record["pins"]), int(record["missing"]),
                              int(record["corrupt"]), int(record.get("bad_references", 0)))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            # Written atomically, so only a hand edit damages it: as good as never verified.
            return None

    # -- stat ---------------------------------------------------------------------------
    def stat(self) -> RepoStat:
        blocks = size = 0
        for _, path in self.blocks.iter_multihashes():
            blocks += 1
            with contextlib.suppress(FileNotFoundError):
                size += path.stat().st_size
        free = shutil.disk_usage(self.path).free
        return RepoStat(str(self.path), blocks, size, sum(1 for _ in self.pins), free,
                        self.filestore.count())


def _key_of(cid: CID) -> str:
    return key_of(bytes(cid.digest))
