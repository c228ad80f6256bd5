"""A flat-file blockstore keyed by multihash, safe to share between processes.

On disk (inside the repo folder)::

    blocks/
      <XY>/                     shard: the next-to-last two characters of the key
        <KEY>.data              KEY = base32 (RFC 4648, upper, unpadded) of the multihash,
                                as Kubo's flatfs names them, e.g. CIQ...XYZ.data
    quarantine/
      <KEY>.<UTC time>-<tag>.data
                                a block that failed its hash, set aside when it was read or
                                verified, e.g. CIQ...XYZ.20261201T201805Z-1a2b3c4d.data
                                (tag: a few random hex digits, so two set-asides never clash)
    tmp/                        partial writes; anything left here after a crash is garbage

Every write goes to a unique temp file in ``tmp/``, is made durable, then renamed into place,
so a reader (in this or another process) sees either no block or the whole block, and neither
a kill -9 nor a power cut leaves a torn block under a real key. Keying by multihash means a
CIDv0 and a CIDv1 of the same bytes share one file, as in Kubo.

A single ``put`` is fsynced on its own. An add (:meth:`Blockstore.batch`) pays for durability
in batches instead: its blocks are written to ``tmp/`` with no sync each and, every
ADD_BATCH_BYTES or BATCH_BLOCKS and at the end of the add, made durable together, renamed into
place and the renames made durable (:class:`~.atomic.DiskSync`: where Linux has ``syncfs``,
one per batch, which also commits the previous batch's renames, and one at the end), while
the next batch is being written. The add commits its pin only after the last batch is
durable, so a kill -9 at any moment loses nothing reported added and leaves no
pin on a missing block; an interrupted batch leaves temp files (cleaned by GC once stale) and
whole, unpinned blocks (garbage for GC), never a torn one. A batched block of 64 KiB or more
goes to the disk with direct I/O where the file system takes it (:class:`~.atomic.DirectWrites`):
no copy into the page cache and no writeback left for the batch's sync to wait on. Within an
add, the batch's writers also hash each large leaf (:meth:`Blockstore.hash_ahead`), and a
receive's own writer threads write its blocks.

A receive (:meth:`Blockstore.receiving`: a CAR stream) pays the same way, once per batch,
for blocks its caller has already hashed against their CIDs: it takes them only as
:class:`~.cids.VerifiedBlock` (which only ``verify_block`` makes), so they are not hashed a
second time. Every block of a receive is durable and in place when it ends, even when it
ends with an error, before the fetch returns and so before any pin can name them.

A leaf added with nocopy has no file here: ``get``, ``has`` and ``size`` then consult the
:class:`~.filestore.Filestore`, which re-reads its bytes from the referenced file (``pread``)
and rehashes them on every read; a bad reference is never set aside (the file is the user's).

A raw leaf that a receiver expects (:mod:`.placement`: a file being built from a fetch, in
the HF cache) is not stored here either: ``put`` writes it into that file at its offsets and
keeps a reference, so a fetched model is written once. A full disk is a
:class:`~.errors.DiskFull` on every write path.

Every read from disk is rehashed against the CID asked for; a hit in the memory tier
(:mod:`.memory_tier`, hot blocks only) returns bytes hashed when they were read from disk, and
a block leaves it when its file is removed. A bounded repo's heat (:mod:`.eviction`) hears of
every write and read here. A block that fails is moved (one atomic
rename) into ``quarantine/`` and reported as an :class:`IntegrityError`; corrupt bytes are
never returned, and a good copy can be stored again under the real key. Bad blocks stay in
``quarantine/`` for inspection until :meth:`Blockstore.remove_bad_blocks` deletes them; GC and
the temp-file cleanup never touch them. Repos written before ``quarantine/`` existed kept
bad blocks as ``tmp/corrupt-<KEY>.data.<hex>``; those are moved into ``quarantine/`` the first
time the quarantine is listed or ``tmp/`` is cleaned.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import errno
import functools
import hashlib
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from multiformats import CID, multibase

from ipfs_mcp.backends.core.cids import (
    BlockVerifier,
    VerifiedBlock,
    binary_mh_key,
    cid_str,
    identity_data,
    is_identity,
    verify_block,
)
from ipfs_mcp.backends.errors import BlockNotFound, DiskFull, IntegrityError, IpfsMcpError
from ipfs_mcp.backends.repo.atomic import DiskSync, atomic_write, write_unsynced
from ipfs_mcp.backends.repo.eviction import HeatTable
from ipfs_mcp.backends.repo.filestore import FileRef, Filestore
from ipfs_mcp.backends.repo.memory_tier import MemoryTier
from ipfs_mcp.backends.repo.placement import Placements

_RAW = 0x55


def key_of(multihash: bytes) -> str:
    """The flatfs key of a multihash: the name of its file without ``.data``."""
    # The stdlib encoder gives the same text as multibase "base32upper" without its prefix
    # (RFC 4648, unpadded) about 40 times faster; every has/get/put goes through here.
    return base64.b32encode(multihash).rstrip(b"=").decode("ascii")


def _multihash_of_key(key: str) -> bytes:
    return multibase.decode("B" + key)


# Bytes of just-stored blocks kept for readers that overlap a transfer (see
# ``Blockstore.fresh_blocks``): a window's worth at Kubo's chunk size. A reader that falls
# further behind reads the rest back from disk, as it would without them.
FRESH_BYTES = 16 * 1024 * 1024
# A batch of block writes (a receive's; an add's holds ADD_BATCH_BYTES) is made durable and
# renamed into place once it holds this many bytes or blocks (and at the end): one sync per
# 8 MiB (against one per block before), the disk's writeback spread over the transfer rather
# than all at its end, and what a power cut can take back from one in progress stays small.
# Measured on 256 MiB adds, 4 to 64 MiB batches took the same time within the disk's noise.
BATCH_BYTES = 8 * 1024 * 1024
BATCH_BLOCKS = 1024
# An add's batches hold 32 MiB: each sync also pays a journal commit and a cache flush (2-6 ms
# here with nothing to write), 32 a GiB instead of 128. 1 GiB adds on a loaded shared
# machine: in one process, 32 MiB faster in four pairs of six (by 14-35%), slower in two (by
# 2-8%); as whole commands, 1.19x and 0.95x: within the noise (bench/README.md).
ADD_BATCH_BYTES = 32 * 1024 * 1024
_STAMP = "%Y%m%dT%H%M%SZ"
_LEGACY_BAD = "corrupt-"  # tmp/corrupt-<KEY>.data.<hex>, the layout before quarantine/


@dataclass(frozen=True)
class BadBlock:
    """A block that failed its hash and sits in ``quarantine/``."""

    cid: str  # CIDv1 raw of its multihash: the codec it was stored under is not kept
    multihash: str  # the flatfs key (base32 of the multihash), as in blocks/
    path: str
    size: int
    set_aside_at: float  # Unix seconds


def _bad_block_of(path: Path) -> BadBlock | None:
    """Parse ``<KEY>.<UTC time>-<tag>.data``; None for a file that is not ours."""
    key, _, rest = path.name.removesuffix(".data").partition(".")
    stamp = rest.split("-", 1)[0]
    try:
        multihash = _multihash_of_key(key)
        when = datetime.strptime(stamp, _STAMP).replace(tzinfo=UTC).timestamp()
        size = path.stat().st_size
    except (ValueError, KeyError, FileNotFoundError):
        return None
    return BadBlock(cid_str(CID("base32", 1, "raw", multihash)), key, str(path), size, when)


class Blockstore:
    """Blocks as files; implements the importer's ``BlockSink``."""

    def __init__(self, root: Path, *, fsync: bool = True,
                 filestore: Filestore | None = None, sync: DiskSync | None = None,
                 verify: BlockVerifier = verify_block, heat: HeatTable | None = None,
                 memory: MemoryTier | None = None) -> None:
        self.root = Path(root)
        # A bounded repo's heat per block file (see .eviction), told of every write and read.
        self.heat = heat
        # Hot blocks kept in memory in front of the disk reads (see .memory_tier).
        self.memory = memory
        # What hashes blocks against their CIDs on ``put`` and ``get``.
        self._verify = verify
        # Leaves kept by reference (nocopy): consulted when no block file exists.
        self.filestore = filestore
        # Raw leaves that receivers write straight into their files (needs the filestore).
        self.placements = Placements(filestore) if filestore is not None else None
        self.blocks_dir = self.root / "blocks"
        self.tmp_dir = self.root / "tmp"
        self.quarantine_dir = self.root / "quarantine"
        # How writes become durable (``fsync=False``: never; tests and benches).
        self.sync = sync if sync is not None else DiskSync(fsync)
        self.fsync = self.sync.enabled
        self.blocks_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.quarantine_dir.mkdir(exist_ok=True)
        self._batch: contextvars.ContextVar[_WriteBatch | None] = contextvars.ContextVar(
            f"blockstore-batch-{id(self)}", default=None)
        # Notified after every put: a reader that overlaps a transfer (``.prefetch``) waits
        # here for the block it needs next instead of asking the network for it again.
        self.arrivals = threading.Condition()
        # While a reader overlaps a transfer, the blocks just put (verified, and the very
        # bytes written) are kept for it, so it does not read back and hash again what was
        # hashed a moment ago. Guarded by ``arrivals``; empty when no reader wants them.
        self._fresh: OrderedDict[bytes, bytes] = OrderedDict()
        self._fresh_size = 0
        self._fresh_readers = 0
        # Shard folders made, so a write does not ask the file system each time (nothing
        # in the project removes one; a write that finds its folder gone makes it again).
        self._shards: set[str] = set()

    def path_of(self, multihash: bytes) -> Path:
        key = key_of(multihash)
        return self.blocks_dir / key[-3:-1] / f"{key}.data"

    # -- reads --------------------------------------------------------------------------
    def has(self, cid: CID) -> bool:
        if is_identity(cid) or self.path_of(bytes(cid.digest)).exists():
            return True
        return self._reference(bytes(cid.digest)) is not None

    def _reference(self, multihash: bytes) -> FileRef | None:
        """Where a leaf kept by reference is: committed, or placed by a receiver and not
        committed yet."""
        if self.filestore is None:
            return None
        ref = self.filestore.ref(multihash)
        if ref is None and self.placements is not None:
            ref = self.placements.pending(multihash)
        return ref

    def get(self, cid: CID) -> bytes:
        """The verified bytes of ``cid``.

        Raises:
            BlockNotFound: not stored here.
            IntegrityError: the stored bytes are corrupt (they are moved aside first).
        """
        return self._read(cid, touch=True)

    def peek(self, cid: CID) -> bytes:
        """``get`` for the repo's own walks (GC, verify, eviction's mark): read from disk,
        it neither heats the block nor passes the memory tier.

        Raises:
            BlockNotFound, IntegrityError: as ``get``.
        """
        return self._read(cid, touch=False)

    def _read(self, cid: CID, *, touch: bool) -> bytes:
        if is_identity(cid):
            return identity_data(cid)
        multihash = bytes(cid.digest)
        kept = self.memory.get(multihash) if self.memory is not None and touch else None
        if kept is not None:
            if self.heat is not None:
                self.heat.read(multihash, len(kept))
            return kept  # verified when it was read from disk
        path = self.path_of(multihash)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            ref = self._reference(bytes(cid.digest))
            if ref is not None:
                assert self.filestore is not None
                return self.filestore.read(cid, ref)  # re-read with pread and re-hashed
            raise BlockNotFound(cid_str(cid), f"the blockstore at {self.root}") from None
        except OSError as exc:
            raise IpfsMcpError(f"cannot read block {cid_str(cid)}: {exc.strerror}") from exc
        try:
            self._verify(cid, data)
        except IntegrityError:
            self.quarantine(path)
            raise IntegrityError(
                f"stored block {cid_str(cid)} is corrupt and was set aside in "
                f"{self.quarantine_dir}; fetch it again"
            ) from None
        if self.heat is not None and touch:
            self.heat.read(multihash, len(data))
        if self.memory is not None and touch:
            self.memory.offer(multihash, data)
        return data

    def size(self, cid: CID) -> int:
        """Stored size of a block, without reading it.

        Raises:
            BlockNotFound: not stored here.
        """
        if is_identity(cid):
            return len(identity_data(cid))
        try:
            return self.path_of(bytes(cid.digest)).stat().st_size
        except FileNotFoundError:
            ref = self._reference(bytes(cid.digest))
            if ref is not None:
                return ref.size
            raise BlockNotFound(cid_str(cid), f"the blockstore at {self.root}") from None

    def iter_multihashes(self) -> Iterator[tuple[bytes, Path]]:
        """Every stored block as ``(multihash, path)``; unknown files are skipped."""
        for shard in sorted(self.blocks_dir.iterdir()) if self.blocks_dir.exists() else []:
            if not shard.is_dir():
                continue
            for entry in sorted(shard.iterdir()):
                if entry.suffix != ".data":
                    continue
                try:
                    yield _multihash_of_key(entry.stem), entry
                except (ValueError, KeyError):
                    continue

    # -- writes -------------------------------------------------------------------------
    def put(self, cid: CID, data: bytes) -> bool:
        """Verify and store a block. Returns False when it was already present.

        A raw leaf that a receiver expects is written into its file instead (see
        :mod:`.placement`).

        Raises:
            IntegrityError: ``data`` does not hash to ``cid``; nothing is written.
            DiskFull: the file system is full; nothing partial is left.
        """
        self._verify(cid, data)
        return self.put_computed(cid, data)

    def put_computed(self, cid: CID, data: bytes) -> bool:
        """``put`` for a block whose CID the caller has just computed from these very bytes
        (the bitswap receiver hashes each block to learn which CID it is): a CID made from
        the data, not one a sender claimed, so hashing it a second time proves nothing.

        Raises:
            DiskFull: as ``put``.
        """
        if is_identity(cid):
            return False
        multihash = bytes(cid.digest)
        if self._place(cid, multihash, data):
            self._arrived()
            return True
        self._offer(multihash, data)
        try:
            stored = self._write(multihash, data)
        except BaseException:
            self._withdraw(multihash)
            raise
        if not stored:  # it was here already: read from disk, as any stored block
            self._withdraw(multihash)
        self._arrived()
        return stored

    @contextlib.contextmanager
    def receiving(self, workers: int = 2) -> Iterator[ReceivingBatch]:
        """A batch for blocks that a receiver has verified (a CAR stream hashes each one
        as it reads it): each is stored with no second hash and no sync of its own, and the
        blocks are made durable in batches as an add's are (see the module's docstring).
        All are durable, and in place, when this block exits. Each block stands alone (no
        pin waits on it), so that holds when the block raises too: what arrived is kept,
        and the next receive resumes from it.

        Raises:
            DiskFull: the file system filled up; nothing partial is left.
            IpfsMcpError: a write or a sync failed.
        """
        writes = _WriteBatch(self, workers)
        try:
            yield ReceivingBatch(self, writes)
        except BaseException:
            with contextlib.suppress(IpfsMcpError):  # the receive's own error says more
                writes.close()
            raise
        writes.close()

    def _place(self, cid: CID, multihash: bytes, data: bytes) -> bool:
        """Write a raw leaf that a receiver expects into its file (see :mod:`.placement`);
        False when no receiver expects it."""
        return (cid.codec.code == _RAW and self.placements is not None
                and self.placements.place(multihash, data))

    def _offer(self, multihash: bytes, data: bytes) -> None:
        """Keep ``data`` for the readers overlapping a transfer (:meth:`fresh_blocks`)
        before its block can be seen stored: a reader that finds the block stored must
        find its bytes kept too, or it reads back what it was about to be handed."""
        with self.arrivals:
            if self._fresh_readers:
                self._keep_fresh(multihash, data)

    def _withdraw(self, multihash: bytes) -> None:
        """The write of an offered block failed: a reader meets that failure, not bytes
        the repo does not hold."""
        with self.arrivals:
            data = self._fresh.pop(multihash, None)
            if data is not None:
                self._fresh_size -= len(data)

    def _arrived(self) -> None:
        """Wake the readers waiting on ``arrivals``."""
        with self.arrivals:
            self.arrivals.notify_all()

    # -- blocks handed to readers that overlap a transfer ---------------------------------
    @contextlib.contextmanager
    def fresh_blocks(self) -> Iterator[None]:
        """Within this block, the blocks stored are also kept (up to FRESH_BYTES, oldest
        dropped first) for :meth:`take_fresh`. For a reader that waits on ``arrivals``."""
        with self.arrivals:
            self._fresh_readers += 1
        try:
            yield
        finally:
            with self.arrivals:
                self._fresh_readers -= 1
                if not self._fresh_readers:
                    self._fresh.clear()
                    self._fresh_size = 0

    def take_fresh(self, cid: CID) -> bytes | None:
        """The bytes of ``cid`` if it was stored a moment ago and is still kept (see
        :meth:`fresh_blocks`); they were verified when stored. Call it holding
        ``arrivals``. None otherwise: read it with :meth:`get`."""
        data = self._fresh.pop(bytes(cid.digest), None)
        if data is not None:
            self._fresh_size -= len(data)
        return data

    def _keep_fresh(self, multihash: bytes, data: bytes) -> None:
        if len(data) > FRESH_BYTES:
            return
        old = self._fresh.pop(multihash, None)
        if old is not None:
            self._fresh_size -= len(old)
        self._fresh[multihash] = data
        self._fresh_size += len(data)
        while self._fresh_size > FRESH_BYTES:
            _, dropped = self._fresh.popitem(last=False)
            self._fresh_size -= len(dropped)

    def hash_ahead(self, prefix: bytes) -> Callable[[bytes], Future[bytes]] | None:
        """``HashingSink`` for the importer: within :meth:`batch`, a large leaf is hashed and
        written to ``tmp/`` in one task on the batch's writers, and its ``put_block`` (in
        order, a moment later) only adds it to the open batch. Outside a batch, None."""
        batch = self._batch.get()
        return None if batch is None else functools.partial(batch.hash_and_write, prefix)

    def put_block(self, cid: bytes, data: bytes) -> None:
        """``BlockSink`` for the importer, which hashed ``data`` itself a moment ago."""
        multihash = binary_mh_key(cid)
        batch = self._batch.get()
        if batch is None:
            self._write(multihash, data)
        else:
            batch.submit(multihash, data)

    @contextlib.contextmanager
    def batch(self, workers: int = 4) -> Iterator[None]:
        """Within this block (in this thread or task), ``put_block`` writes run on a few
        threads with no sync each and are made durable in batches (see the module's
        docstring); all are durable, and in place, when the block exits without an error,
        and before the filestore references put within it are committed.

        In flight are at most ``2 * workers`` blocks, so memory stays bounded. The writers
        also hash an import's large leaves (:meth:`hash_ahead`), then wait for the disk
        (direct writes), so four keep it busy on two cores (a 1 GiB add in process:
        3.7-4.0 s with two, 2.9-3.2 s with four, 3.2-3.6 s with six). A block that raises
        leaves the blocks of batches already closed (garbage until pinned) and removes the
        temp files of the rest.

        Raises:
            DiskFull: the file system filled up; nothing partial is left.
            IpfsMcpError: a write or a sync failed.
        """
        if self._batch.get() is not None:
            yield
            return
        batch = _WriteBatch(self, workers, ADD_BATCH_BYTES)
        token = self._batch.set(batch)
        closed = False
        try:
            if self.filestore is None:
                yield
                batch.close()
            else:
                with self.filestore.batch():  # references: one transaction, before the pin
                    yield
                    batch.close()  # blocks durable before the references that need them
            closed = True
        finally:
            self._batch.reset(token)
            if not closed:
                batch.abandon()

    def _write(self, multihash: bytes, data: bytes) -> bool:
        final = self.path_of(multihash)
        if final.exists():
            self._rewritten(multihash, len(data))
            return False
        try:
            if final.parent.name not in self._shards:
                self._make_shard(final.parent)
            try:
                atomic_write(final, data, tmp_dir=self.tmp_dir, sync=self.sync,
                             sync_folder=False)
            except FileNotFoundError:
                # The shard folder was removed from outside since we made it: make it
                # again, once, rather than fail every later write into it.
                self._make_shard(final.parent)
                atomic_write(final, data, tmp_dir=self.tmp_dir, sync=self.sync,
                             sync_folder=False)
        except OSError as exc:
            raise self._write_error(exc) from exc
        if self.heat is not None:
            self.heat.stored(multihash, len(data))
        return True

    def _write_error(self, exc: OSError) -> IpfsMcpError:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return DiskFull(f"the file system holding the blockstore at {self.root} is "
                            f"full ({exc.strerror}); the block was not stored and "
                            "nothing partial is left")
        return IpfsMcpError(f"cannot store block in {self.root}: {exc.strerror}")

    def _rewritten(self, multihash: bytes, size: int) -> None:
        """A write met its block stored already: it is new to the writer all the same, so
        eviction keeps it until the writer's pin is written (see .eviction)."""
        if self.heat is not None:
            self.heat.stored(multihash, size)

    def _make_shard(self, folder: Path) -> None:
        folder.mkdir(exist_ok=True)
        self._shards.add(folder.name)

    def _stage(self, multihash: bytes, data: bytes) -> tuple[Path, Path] | None:
        """Where a batched write of ``multihash`` goes: ``(temp file, final path)``; None
        when the block is stored already."""
        final = self.path_of(multihash)
        if final.exists():
            self._rewritten(multihash, len(data))
            return None
        return self.tmp_dir / f".{final.name}.{uuid.uuid4().hex}.tmp", final

    def _commit(self, staged: list[tuple[Path, Path]], unsettled: set[Path], *,
                last: bool) -> None:
        """Make a batch of written temp files durable, rename them into place, then make the
        renames durable. Called by one thread at a time.

        ``unsettled`` holds the folders renamed into and not yet synced. A ``syncfs`` of the
        next batch's files commits them too, so with one the folders are synced only after
        the ``last`` batch: one sync per batch, and one more at the end.

        Raises:
            DiskFull, IpfsMcpError: a sync or a rename failed; the temp files not yet
                renamed are removed.
        """
        renamed = 0
        try:
            if staged:
                self.sync.files((tmp for tmp, _ in staged), self.blocks_dir)
                if self.sync.whole_file_system:
                    unsettled.clear()  # the earlier renames went with that syncfs
            for tmp, final in staged:
                if final.parent.name not in self._shards:
                    self._make_shard(final.parent)
                    unsettled.add(self.blocks_dir)
                try:
                    os.replace(tmp, final)
                except FileNotFoundError:
                    self._make_shard(final.parent)  # removed from outside: make it again
                    unsettled.add(self.blocks_dir)
                    os.replace(tmp, final)
                renamed += 1
                unsettled.add(final.parent)
                if self.heat is not None:
                    self.heat.stored(_multihash_of_key(final.stem), final.stat().st_size)
            if unsettled and (last or not self.sync.whole_file_system):
                self.sync.folders(unsettled, self.blocks_dir)
                unsettled.clear()
        except OSError as exc:
            for tmp, _ in staged[renamed:]:
                tmp.unlink(missing_ok=True)
            raise self._write_error(exc) from exc

    def delete_path(self, path: Path, multihash: bytes | None = None) -> int:
        """Remove one block file (of ``multihash``, when the caller knows it); returns the
        bytes freed (0 if it was gone already)."""
        if self.heat is not None or self.memory is not None:
            self.forget(_multihash_of_key(path.stem) if multihash is None else multihash)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size

    def forget(self, multihash: bytes) -> None:
        """Drop a block's heat and its copy in memory: its file is going."""
        if self.heat is not None:
            self.heat.forget(multihash)
        if self.memory is not None:
            self.memory.drop(multihash)

    # -- bad blocks -----------------------------------------------------------------------
    def quarantine(self, path: Path) -> None:
        """Move a block file that failed its hash from ``blocks/`` into ``quarantine/``.

        Another process may have set the bad file aside and stored a good copy between our
        read and this rename; the moved file is therefore hashed once more, and a good one is
        put back, so a repair racing with a reader is never undone.
        """
        multihash = _multihash_of_key(path.stem)
        stamp = datetime.now(UTC).strftime(_STAMP)
        target = self.quarantine_dir / f"{path.stem}.{stamp}-{uuid.uuid4().hex[:8]}.data"
        self.quarantine_dir.mkdir(exist_ok=True)
        try:
            os.replace(path, target)
        except FileNotFoundError:
            return  # someone else set it aside first
        try:
            verify_block(CID("base32", 1, "raw", multihash), target.read_bytes())
        except IntegrityError:
            return
        with contextlib.suppress(FileExistsError):
            os.link(target, path)  # never over a copy stored meanwhile
        target.unlink(missing_ok=True)

    def bad_blocks(self) -> list[BadBlock]:
        """Every block set aside as corrupt, oldest first."""
        self._adopt_legacy_bad_blocks()
        found = (_bad_block_of(p) for p in self.quarantine_dir.glob("*.data"))
        return sorted((b for b in found if b is not None), key=lambda b: (b.set_aside_at, b.path))

    def bad_block_count(self) -> int:
        """How many blocks are set aside (a directory listing, cheap enough for health)."""
        self._adopt_legacy_bad_blocks()
        return sum(1 for _ in self.quarantine_dir.glob("*.data"))

    def remove_bad_blocks(self, blocks: list[BadBlock] | None = None) -> list[BadBlock]:
        """Delete set-aside blocks (default: all of them); returns those deleted."""
        removed = []
        for bad in self.bad_blocks() if blocks is None else blocks:
            try:
                Path(bad.path).unlink()
            except FileNotFoundError:
                continue
            removed.append(bad)
        return removed

    def _adopt_legacy_bad_blocks(self) -> None:
        """Move ``tmp/corrupt-*`` files, from repos older than ``quarantine/``, into it."""
        try:
            legacy = [e for e in self.tmp_dir.iterdir() if e.name.startswith(_LEGACY_BAD)]
        except FileNotFoundError:
            return
        for entry in legacy:
            key = entry.name.removeprefix(_LEGACY_BAD).split(".", 1)[0]
            try:
                # A rename updates ctime, so ctime is when the block was set aside.
                when = datetime.fromtimestamp(entry.stat().st_ctime, UTC).strftime(_STAMP)
                os.replace(entry, self.quarantine_dir / f"{key}.{when}-{uuid.uuid4().hex[:8]}.data")
            except FileNotFoundError:
                continue

    def clean_tmp(self, stale_after: float = 3600.0) -> int:
        """Remove leftovers of interrupted writes.

        Only files untouched for ``stale_after`` seconds go: a write that another process
        (or a fetch outside the repo lock) has in flight right now is left alone. Bad blocks
        that an older layout kept here are moved into ``quarantine/``, never deleted.
        """
        self._adopt_legacy_bad_blocks()
        removed = 0
        cutoff = time.time() - stale_after
        for entry in self.tmp_dir.iterdir():
            try:
                if entry.stat().st_mtime < cutoff:
                    entry.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


class ReceivingBatch:
    """The blocks of one receive (:meth:`Blockstore.receiving`); several threads may put
    into it at once."""

    def __init__(self, store: Blockstore, writes: _WriteBatch) -> None:
        self._store = store
        self._writes = writes

    def put_verified(self, block: VerifiedBlock) -> None:
        """Store a block its receiver verified, without hashing it again: a raw leaf that a
        receiver expects goes into its file (see :mod:`.placement`), any other block joins
        the open batch. A block stored (or queued) already is not written again.

        Raises:
            TypeError: ``block`` is not a :class:`VerifiedBlock` (the proof of a hash).
            DiskFull, IpfsMcpError: an earlier write or sync of this receive failed.
        """
        if not isinstance(block, VerifiedBlock):
            raise TypeError("put_verified takes the VerifiedBlock that verify_block returns, "
                            f"not a {type(block).__name__}")
        self.put_computed(block.cid, block.data)

    def put_computed(self, cid: CID, data: bytes) -> None:
        """``put_verified`` for a block whose CID the caller has just computed from these very
        bytes (a bitswap receiver hashes each block to learn which CID it is), as
        :meth:`Blockstore.put_computed`.

        Raises:
            DiskFull, IpfsMcpError: this write, or an earlier write or sync of this receive,
                failed.
        """
        if is_identity(cid):
            return
        multihash = bytes(cid.digest)
        # Its bytes go to a reader now, before it can be seen stored (placed into its
        # receiver's file, or its batch committed); ``has`` sees it then, and the readers
        # are woken again. A placed leaf too: the hub receiver reads the file it is placing
        # (for the blob's sha256), and would otherwise read each leaf back from it.
        self._store._offer(multihash, data)
        try:
            if not self._store._place(cid, multihash, data):
                # On the receiver's writer thread, which placing a leaf needs anyway.
                self._writes.write_here(multihash, data)
        except BaseException:
            self._store._withdraw(multihash)
            raise
        self._store._arrived()

    def flush(self) -> None:
        """Put every block so far in place now (for a receiver about to ask what is still
        missing); they are durable by the end of the receive.

        Raises:
            DiskFull, IpfsMcpError: a write, a sync or a rename failed.
        """
        self._writes.flush()


class _WriteBatch:
    """The block writes of one add or receive: written to ``tmp/`` on a bounded pool with no
    sync each, and cut into batches that one committing thread makes durable and renames
    into place (:meth:`Blockstore._commit`) while the next batch is being written. At most
    one batch waits for its commit, so the temp files staged stay bounded too. Several
    threads may submit at once (a receive's writers).

    The first failure is raised on the next ``submit`` or on ``close``.
    """

    def __init__(self, store: Blockstore, workers: int,
                 batch_bytes: int = BATCH_BYTES) -> None:
        self._store = store
        self._batch_bytes = batch_bytes  # a batch is cut at this many bytes or BATCH_BLOCKS
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="block-write")
        self._committer = ThreadPoolExecutor(1, thread_name_prefix="block-commit")
        self._slots = threading.BoundedSemaphore(2 * workers)
        self._errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._writes: list[Future[_Staged | None]] = []  # of the open batch
        self._bytes = 0
        self._queued: set[bytes] = set()  # submitted and not yet in place: not written twice
        self._commit: Future[None] | None = None
        self._unsettled: set[Path] = set()  # folders renamed into, not yet synced
        self._submitting = threading.Lock()  # the open batch, between submitting threads
        # Written by hash_and_write, not yet submitted (None: it was stored already).
        self._ahead: dict[bytes, _Staged | None] = {}

    def submit(self, multihash: bytes, data: bytes) -> None:
        if self._errors:
            raise self._errors[0]
        with self._lock:
            ahead = self._ahead.pop(multihash, _NOT_AHEAD)
            if ahead is _NOT_AHEAD:
                if multihash in self._queued:
                    return
                self._queued.add(multihash)
        if ahead is not _NOT_AHEAD:  # hashed and written by hash_and_write: adopt it
            self._adopt(ahead, len(data))
            return
        with self._submitting:
            self._slots.acquire()
            future = self._pool.submit(self._write, multihash, data)
            future.add_done_callback(self._done)
            self._writes.append(future)
            self._bytes += len(data)
            if self._bytes >= self._batch_bytes or len(self._writes) >= BATCH_BLOCKS:
                self._cut()

    def write_here(self, multihash: bytes, data: bytes) -> None:
        """:meth:`submit`, but written on the calling thread, which is one of a receiver's
        own writers (bounded by the receiver): one thread hand-off per block fewer.

        Raises:
            DiskFull, IpfsMcpError: this write, or an earlier write or sync, failed.
        """
        if self._errors:
            raise self._errors[0]
        with self._lock:
            if multihash in self._queued:
                return
            self._queued.add(multihash)
        self._adopt(self._write_queued(multihash, data), len(data))

    def _write_queued(self, multihash: bytes, data: bytes) -> _Staged | None:
        """:meth:`_write` of a block just marked queued, on the calling thread; its failure
        goes to that caller. The block is then no longer taken as queued, so a later put of
        it is written (or fails) again rather than skipped as if it had been written; the
        blocks written before it are still committed when the batch closes."""
        try:
            return self._write(multihash, data)
        except BaseException:
            with self._lock:
                self._queued.discard(multihash)
            raise

    def _adopt(self, staged: _Staged | None, size: int) -> None:
        """Add a block already written to its temp file to the open batch."""
        done: Future[_Staged | None] = Future()
        done.set_result(staged)
        with self._submitting:
            self._writes.append(done)
            self._bytes += size
            if self._bytes >= self._batch_bytes or len(self._writes) >= BATCH_BLOCKS:
                self._cut()

    def hash_and_write(self, prefix: bytes, block: bytes) -> Future[bytes]:
        """Hash ``block`` (its CID is ``prefix`` and the sha256) and write it to its temp
        file, on the writers; the future gives the digest. The block joins a batch only at
        its ``submit``: the importer submits every leaf it hashed, in order, after this.

        Bounded by the caller, which keeps few blocks ahead (the importer's read-ahead).
        """
        if self._errors:
            raise self._errors[0]
        return self._pool.submit(self._hash_and_write, prefix, block)

    def _hash_and_write(self, prefix: bytes, block: bytes) -> bytes:
        digest = hashlib.sha256(block).digest()
        multihash = binary_mh_key(prefix + digest)
        with self._lock:
            if multihash in self._queued:  # the same block, hashed twice in a file
                return digest
            self._queued.add(multihash)
        staged = self._write_queued(multihash, block)
        with self._lock:
            self._ahead[multihash] = staged
        return digest

    def flush(self) -> None:
        """Commit the open batch now and wait for it: every block submitted so far is in
        place.

        Raises:
            DiskFull, IpfsMcpError: the first failure of a write, a sync or a rename.
        """
        with self._submitting:
            self._cut()
            assert self._commit is not None
            wait([self._commit])
        if self._errors:
            raise self._errors[0]

    def _write(self, multihash: bytes, data: bytes) -> _Staged | None:
        staged = self._store._stage(multihash, data)
        if staged is None:
            return None
        try:
            write_unsynced(staged[0], data, sync=self._store.sync)
        except OSError as exc:
            raise self._store._write_error(exc) from exc
        return _Staged(multihash, *staged)

    def _done(self, future: Future[Any]) -> None:
        self._slots.release()
        if future.exception() is not None:
            self._errors.append(future.exception())  # type: ignore[arg-type]

    def _cut(self, *, last: bool = False) -> None:
        """Hand the open batch to the committer once the previous commit is done."""
        writes, self._writes, self._bytes = self._writes, [], 0
        if self._commit is not None:
            wait([self._commit])
        if self._errors:
            self._discard(writes)
            raise self._errors[0]
        self._commit = self._committer.submit(self._commit_batch, writes, last)
        self._commit.add_done_callback(self._committed)

    def _commit_batch(self, writes: list[Future[_Staged | None]], last: bool) -> None:
        wait(writes)
        staged = [s for f in writes if f.exception() is None and (s := f.result()) is not None]
        if any(f.exception() is not None for f in writes):
            for s in staged:
                s.tmp.unlink(missing_ok=True)
            return  # the write's own error is raised
        self._store._commit([(s.tmp, s.final) for s in staged], self._unsettled, last=last)
        with self._lock:
            self._queued.difference_update(s.multihash for s in staged)
        with self._store.arrivals:  # a reader waiting for one of them finds it now
            self._store.arrivals.notify_all()

    def _committed(self, future: Future[None]) -> None:
        if future.exception() is not None:
            self._errors.append(future.exception())  # type: ignore[arg-type]

    def close(self) -> None:
        """Commit the last batch and wait for every commit: then every block is durable and
        in place.

        Raises:
            DiskFull, IpfsMcpError: the first failure of a write, a sync or a rename.
        """
        try:
            self._cut(last=True)
            assert self._commit is not None
            wait([self._commit])
        finally:
            self._pool.shutdown(wait=True)
            self._committer.shutdown(wait=True)
            self._discard_ahead()  # written ahead and never submitted: not part of the add
        if self._errors:
            raise self._errors[0]

    def abandon(self) -> None:
        """After a failure: remove the temp files of the open batch; batches handed to the
        committer are finished (their blocks are whole, and garbage until pinned)."""
        self._pool.shutdown(wait=True)
        self._discard(self._writes)
        self._writes = []
        self._discard_ahead()
        self._committer.shutdown(wait=True)

    def _discard_ahead(self) -> None:
        with self._lock:
            ahead, self._ahead = self._ahead, {}
        for staged in ahead.values():
            if staged is not None:
                staged.tmp.unlink(missing_ok=True)

    @staticmethod
    def _discard(writes: list[Future[_Staged | None]]) -> None:
        wait(writes)
        for future in writes:
            staged = future.result() if future.exception() is None else None
            if staged is not None:
                staged.tmp.unlink(missing_ok=True)


_NOT_AHEAD: Any = object()


class _Staged(NamedTuple):
    """A block written to its temp file, waiting for its batch's commit."""

    multihash: bytes
    tmp: Path
    final: Path
