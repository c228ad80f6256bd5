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
from typing import Literal

from multiformats import CID

from ipfs_mcp.backends.core import limits
from ipfs_mcp.backends.core.cids import cid_str, identity_data, is_identity, verify_block
from ipfs_mcp.backends.core.dag import links_of
from ipfs_mcp.backends.errors import BlockNotFound, DagTooLarge, IntegrityError, IpfsMcpError
from ipfs_mcp.backends.repo.atomic import atomic_write
from ipfs_mcp.backends.repo.blockstore import BadBlock, Blockstore, key_of
from ipfs_mcp.backends.repo.filestore import Filestore, RefCheck, leaf_cid_digest
from ipfs_mcp.backends.repo.pins import Pin, PinStore, PinType

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


class Repo:
    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        self.path = Path(path).expanduser()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            version = self.path / "version"
            if not version.exists():  # atomic: a kill -9 on first use leaves no empty file
                atomic_write(version, (REPO_VERSION + "\n").encode(), fsync=fsync)
        except OSError as exc:
            raise IpfsMcpError(f"cannot create repo at {self.path}: {exc.strerror}") from exc
        self.filestore = Filestore(self.path, fsync=fsync)
        self.blocks = Blockstore(self.path, fsync=fsync, filestore=self.filestore)
        self.pins = PinStore(self.path, self.blocks.tmp_dir)
        self._lock_path = self.path / "repo.lock"

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

    def writing(self) -> contextlib.AbstractContextManager[None]:
        """Hold while writing blocks that will be pinned, so GC waits for the pin."""
        return self._lock(fcntl.LOCK_SH)

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
        with self.writing():
            if recursive:
                size = 0
                for block_size in self._walk(cid, load, set()):
                    size += block_size
                    if progress is not None:
                        progress(block_size)
            else:
                size = len(load(cid))
            # The pin file is written (atomically) only now that the DAG is complete.
            return self.pins.add(cid, "recursive" if recursive else "direct", name=name,
                                 size=size)

    def _walk(self, root: CID, load: Callable[[CID], bytes], seen: set[bytes]
              ) -> Iterator[int]:
        """Walk a DAG, yielding each new block's size and adding its multihash to ``seen``.

        Raw blocks have no links, so a stored one is checked by presence, not read. The DAG
        may come from peers, so the walk keeps :mod:`.limits`' bounds, as ``dag.walk`` does
        (which would read every raw leaf: bytes a local pin never needs).

        Raises:
            BlockNotFound: ``load`` cannot give a block of the DAG.
            DagTooLarge: the DAG is deeper, wider or larger than any real one.
        """
        stack = [(root, 0)]
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
                raise DagTooLarge(f"DAG {cid_str(root)} has more than "
                                  f"{limits.MAX_WALK_BLOCKS} blocks")
            if cid.codec.code == _RAW and self.blocks.has(cid):
                with contextlib.suppress(BlockNotFound):  # GC cannot run: we hold the lock
                    yield self.blocks.size(cid)
                    continue
            block = load(cid)
            yield len(block)
            links = links_of(cid, block)
            limits.check_links(len(links), cid)
            stack.extend((link, depth + 1) for link in reversed(links))

    def _mark(self, root: CID, live: set[bytes]) -> list[CID]:
        """Add every block of a pinned DAG to ``live``; returns its absent raw leaves.

        Raises:
            IntegrityError: a node with links is absent, corrupt (now set aside) or
                undecodable, so the blocks below it are unknown.
        """
        absent: list[CID] = []
        stack = [root]
        while stack:
            cid = stack.pop()
            key = bytes(cid.digest)
            if key in live:
                continue
            live.add(key)
            found = self._links_or_hole(cid)
            if found == "absent" and cid.codec.code == _RAW:
                absent.append(cid)  # a leaf: nothing below it can be swept by mistake
            elif isinstance(found, str):
                raise IntegrityError(f"block {cid_str(cid)} is {found}")
            else:
                stack.extend(found)
        return absent

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
                size = self.blocks.delete_path(path)
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
        links: dict[bytes, tuple[CID, ...] | HoleKind] = {}
        holes: dict[bytes, tuple[CID, list[str], HoleKind]] = {}
        for pin in pins:
            name = cid_str(pin.cid)
            stack = [pin.cid]
            seen: set[bytes] = set()
            while stack:
                cid = stack.pop()
                key = bytes(cid.digest)
                if key in seen:
                    continue
                seen.add(key)
                found = links.get(key)
                if found is None:
                    found = self._links_or_hole(cid, broken)
                    if found:
                        links[key] = found
                if isinstance(found, str):
                    holes.setdefault(key, (cid, [], found))[1].append(name)
                elif pin.type == "recursive":
                    stack.extend(reversed(found))
        return list(holes.values())

    def _links_or_hole(self, cid: CID, broken: dict[bytes, HoleKind] | None = None
                       ) -> tuple[CID, ...] | HoleKind:
        if is_identity(cid):
            block = identity_data(cid)
        elif broken and bytes(cid.digest) in broken:
            return broken[bytes(cid.digest)]
        elif cid.codec.code == _RAW:
            return () if self.blocks.has(cid) else "absent"
        else:
            try:
                block = self.blocks.get(cid)
            except BlockNotFound:
                return "absent"
            except IntegrityError:
                return "corrupt"  # get() has just set it aside
        try:
            return tuple(links_of(cid, block))
        except IntegrityError:
            return "undecodable"

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
