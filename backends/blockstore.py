"""A flat-file blockstore keyed by multihash, safe to share between processes.

On disk (inside the repo folder)::

    blocks/
      <XY>/                     shard: the next-to-last two characters of the key
        <KEY>.data              KEY = base32 (RFC 4648, upper, unpadded) of the multihash,
                                as Kubo's flatfs names them, e.g. CIQ...XYZ.data
    tmp/                        partial writes; anything left here after a crash is garbage

Every write goes to a unique temp file in ``tmp/``, is fsynced, then renamed into place, so
a reader (in this or another process) sees either no block or the whole block, and a kill -9
never leaves a torn block under a real key. Keying by multihash means a CIDv0 and a CIDv1 of
the same bytes share one file, as in Kubo.

Every read is rehashed against the CID asked for. A block that fails is moved aside to
``tmp/`` (so a good copy can be stored again) and reported as an :class:`IntegrityError`;
corrupt bytes are never returned.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from multiformats import CID, multibase

from .atomic import atomic_write
from .cids import cid_str, identity_data, is_identity, verify_block
from .errors import BlockNotFound, IntegrityError, IpfsMcpError


def _key(multihash: bytes) -> str:
    # The stdlib encoder gives the same text as multibase "base32upper" without its prefix
    # (RFC 4648, unpadded) about 40 times faster; every has/get/put goes through here.
    return base64.b32encode(multihash).rstrip(b"=").decode("ascii")


def _multihash_of_key(key: str) -> bytes:
    return multibase.decode("B" + key)


class Blockstore:
    """Blocks as files; implements the importer's ``BlockSink``."""

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = Path(root)
        self.blocks_dir = self.root / "blocks"
        self.tmp_dir = self.root / "tmp"
        self.fsync = fsync
        self.blocks_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self._batch: contextvars.ContextVar[_WriteBatch | None] = contextvars.ContextVar(
            f"blockstore-batch-{id(self)}", default=None)

    def path_of(self, multihash: bytes) -> Path:
        key = _key(multihash)
        return self.blocks_dir / key[-3:-1] / f"{key}.data"

    # -- reads --------------------------------------------------------------------------
    def has(self, cid: CID) -> bool:
        return is_identity(cid) or self.path_of(bytes(cid.digest)).exists()

    def get(self, cid: CID) -> bytes:
        """The verified bytes of ``cid``.

        Raises:
            BlockNotFound: not stored here.
            IntegrityError: the stored bytes are corrupt (they are moved aside first).
        """
        if is_identity(cid):
            return identity_data(cid)
        path = self.path_of(bytes(cid.digest))
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BlockNotFound(cid_str(cid), f"the blockstore at {self.root}") from None
        except OSError as exc:
            raise IpfsMcpError(f"cannot read block {cid_str(cid)}: {exc.strerror}") from exc
        try:
            verify_block(cid, data)
        except IntegrityError:
            self._quarantine(path)
            raise IntegrityError(
                f"stored block {cid_str(cid)} is corrupt and was set aside; fetch it again"
            ) from None
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

        Raises:
            IntegrityError: ``data`` does not hash to ``cid``; nothing is written.
        """
        verify_block(cid, data)
        if is_identity(cid):
            return False
        return self._write(bytes(cid.digest), data)

    def put_block(self, cid: bytes, data: bytes) -> None:
        """``BlockSink`` for the importer, which hashed ``data`` itself a moment ago."""
        # A binary CIDv0 is the bare multihash; a CIDv1 is 0x01, the codec, the multihash.
        multihash = cid if cid[0] == 0x12 else cid[2:]
        batch = self._batch.get()
        if batch is None:
            self._write(multihash, data)
        else:
            batch.submit(self._write, multihash, data)

    @contextlib.contextmanager
    def batch(self, workers: int = 4) -> Iterator[None]:
        """Within this block (in this thread or task), ``put_block`` writes run on a few
        threads, so fsyncs overlap with hashing; all are durable when the block exits.

        In flight are at most ``2 * workers`` blocks, so memory stays bounded.
        """
        if self._batch.get() is not None:
            yield
            return
        batch = _WriteBatch(workers)
        token = self._batch.set(batch)
        try:
            yield
        finally:
            self._batch.reset(token)
            batch.close()

    def _write(self, multihash: bytes, data: bytes) -> bool:
        final = self.path_of(multihash)
        if final.exists():
            return False
        final.parent.mkdir(exist_ok=True)
        try:
            atomic_write(final, data, tmp_dir=self.tmp_dir, fsync=self.fsync)
        except OSError as exc:
            raise IpfsMcpError(f"cannot store block in {self.root}: {exc.strerror}") from exc
        return True

    def delete_path(self, path: Path) -> int:
        """Remove one block file; returns the bytes freed (0 if it was gone already)."""
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size

    def _quarantine(self, path: Path) -> None:
        try:
            os.replace(path, self.tmp_dir / f"corrupt-{path.name}.{uuid.uuid4().hex}")
        except FileNotFoundError:
            pass

    def clean_tmp(self, stale_after: float = 3600.0) -> int:
        """Remove leftovers of interrupted writes and set-aside corrupt blocks.

        Only files untouched for ``stale_after`` seconds go: a write that another process
        (or a fetch outside the repo lock) has in flight right now is left alone.
        """
        removed = 0
        cutoff = time.time() - stale_after
        for entry in self.tmp_dir.iterdir():
            try:
                if entry.name.startswith("corrupt-") or entry.stat().st_mtime < cutoff:
                    entry.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


class _WriteBatch:
    """A bounded pool of block writes; the first failure is raised on close."""

    def __init__(self, workers: int) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="block-write")
        self._slots = threading.BoundedSemaphore(2 * workers)
        self._errors: list[BaseException] = []

    def submit(self, fn: Callable[[bytes, bytes], bool], multihash: bytes, data: bytes) -> None:
        if self._errors:
            raise self._errors[0]
        self._slots.acquire()
        future = self._pool.submit(fn, multihash, data)
        future.add_done_callback(self._done)

    def _done(self, future: Future[bool]) -> None:
        self._slots.release()
        if future.exception() is not None:
            self._errors.append(future.exception())  # type: ignore[arg-type]

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        if self._errors:
            raise self._errors[0]
