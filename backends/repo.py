"""The embedded IPFS repo: blockstore, pins, garbage collection and verification.

On disk, at ``$HF_HOME/ipfs`` (``HF_HOME`` defaults to ``~/.cache/huggingface``)::

    ipfs/
      version                 repo format version ("1")
      repo.lock               flock: shared while adding or pinning, exclusive during GC
      blocks/<XY>/<KEY>.data  one file per block (see blockstore.py)
      pins/recursive/<CID>.json, pins/direct/<CID>.json   (see pins.py)
      tmp/                    atomic-write staging; cleaned by GC
      identity.key            the libp2p node's Ed25519 key (mode 0600), when a node ran

Several processes (the CLI while the server runs) may use one repo: writes are atomic
renames, and the lock keeps GC from sweeping blocks that an add has written but not yet
pinned.
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from multiformats import CID

from .blockstore import Blockstore
from .cids import cid_str, verify_block
from .dag import links_of
from .errors import BlockNotFound, IntegrityError, IpfsMcpError
from .pins import Pin, PinStore, PinType

REPO_VERSION = "1"
_RAW = 0x55


@dataclass(frozen=True)
class RepoStat:
    path: str
    blocks: int
    size: int
    pins: int
    free_disk: int


@dataclass(frozen=True)
class GCReport:
    removed: int
    freed: int
    kept: int
    missing: tuple[str, ...] = ()  # pinned blocks absent from the store (a warning)


@dataclass(frozen=True)
class VerifyReport:
    checked: int
    corrupt: tuple[str, ...] = field(default_factory=tuple)  # CIDv1 raw of each bad block
    removed: bool = False

    @property
    def ok(self) -> bool:
        return not self.corrupt


class Repo:
    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        self.path = Path(path).expanduser()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            version = self.path / "version"
            if not version.exists():
                version.write_text(REPO_VERSION + "\n")
        except OSError as exc:
            raise IpfsMcpError(f"cannot create repo at {self.path}: {exc.strerror}") from exc
        self.blocks = Blockstore(self.path, fsync=fsync)
        self.pins = PinStore(self.path, self.blocks.tmp_dir)
        self._lock_path = self.path / "repo.lock"

    @contextlib.contextmanager
    def _lock(self, kind: int) -> Iterator[None]:
        with open(self._lock_path, "a+b") as handle:
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
            load: Callable[[CID], bytes] | None = None) -> Pin:
        """Pin ``cid``; a recursive pin first checks that the whole DAG is present.

        ``load`` may fetch missing blocks (from peers); by default only local blocks count.

        Raises:
            BlockNotFound: a block of the DAG is missing; the error names it.
        """
        load = load or self.blocks.get
        with self.writing():
            if recursive:
                size = sum(self._walk(cid, load, set()))
            else:
                size = len(load(cid))
            return self.pins.add(cid, "recursive" if recursive else "direct", name=name,
                                 size=size)

    def _walk(self, root: CID, load: Callable[[CID], bytes] | None, seen: set[bytes]
              ) -> Iterator[int]:
        """Walk a DAG, yielding each new block's size and adding its multihash to ``seen``.

        Raw blocks have no links, so they are checked by presence, not read. With
        ``load=None`` (GC marking) a missing or corrupt block is kept as seen and its
        links are skipped, so GC never sweeps what a repair could still save.

        Raises:
            BlockNotFound: with a ``load``, a block of the DAG is missing.
        """
        stack = [root]
        while stack:
            cid = stack.pop()
            key = bytes(cid.digest)
            if key in seen:
                continue
            seen.add(key)
            if cid.codec.code == _RAW and (load is None or self.blocks.has(cid)):
                with contextlib.suppress(BlockNotFound):
                    yield self.blocks.size(cid)
                continue
            if load is None:
                try:
                    block = self.blocks.get(cid)
                except (BlockNotFound, IntegrityError):
                    continue
            else:
                block = load(cid)
            yield len(block)
            stack.extend(reversed(links_of(cid, block)))

    def unpin(self, cid: CID, kind: PinType | None = None) -> list[PinType]:
        return self.pins.remove(cid, kind)

    # -- gc -----------------------------------------------------------------------------
    def gc(self) -> GCReport:
        """Remove every block not reachable from a pin; reports what it freed."""
        with self._lock(fcntl.LOCK_EX):
            live: set[bytes] = set()
            missing: list[str] = []
            for pin in list(self.pins):
                if pin.type == "direct":
                    live.add(bytes(pin.cid.digest))
                else:
                    for _ in self._walk(pin.cid, None, live):
                        pass
                if not self.blocks.has(pin.cid):
                    missing.append(cid_str(pin.cid))
            removed = freed = kept = 0
            for multihash, path in list(self.blocks.iter_multihashes()):
                if multihash in live:
                    kept += 1
                    continue
                freed += self.blocks.delete_path(path)
                removed += 1
            self.blocks.clean_tmp()
        return GCReport(removed, freed, kept, tuple(missing))

    # -- verify / stat ------------------------------------------------------------------
    def verify(self, *, remove_corrupt: bool = False) -> VerifyReport:
        """Rehash every block; list (and optionally delete) the corrupt ones."""
        checked = 0
        corrupt: list[str] = []
        for multihash, path in list(self.blocks.iter_multihashes()):
            checked += 1
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            cid = CID("base32", 1, "raw", multihash)
            try:
                verify_block(cid, data)
                ok = True
            except IntegrityError:
                ok = False
            if not ok:
                corrupt.append(cid_str(cid))
                if remove_corrupt:
                    self.blocks.delete_path(path)
        return VerifyReport(checked, tuple(corrupt), remove_corrupt and bool(corrupt))

    def stat(self) -> RepoStat:
        blocks = size = 0
        for _, path in self.blocks.iter_multihashes():
            blocks += 1
            with contextlib.suppress(FileNotFoundError):
                size += path.stat().st_size
        free = shutil.disk_usage(self.path).free
        return RepoStat(str(self.path), blocks, size, sum(1 for _ in self.pins), free)
