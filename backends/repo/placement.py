"""Placements: received raw leaves written straight into the file they belong to.

A receiver (:mod:`.receiver`) building a file from a UnixFS DAG tells the blockstore,
before the fetch, where each raw leaf of the file goes: the file being built and the
offsets (a leaf whose bytes repeat in the file, a run of zeros say, has several). Every
retrieval source (bitswap, trustless gateways) verifies a block and then calls the
blockstore's ``put``; ``put`` asks :meth:`Placements.place` first, and a placed leaf is
written with ``pwrite`` at each of its offsets and kept as a filestore reference
``(file, first offset, size)`` instead of a block. So each received byte is written once.

References are committed in batches, each after an ``fdatasync`` of the file, so a
committed reference never names bytes that a crash could lose. Until its batch is
committed a placed leaf is answered from :meth:`Placements.pending` (has, get, serving to
peers), read back with ``pread`` and rehashed like any reference.

Placements live in memory for one receive; what survives a crash is the file and the
committed references into it, which is what the next receive resumes from.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from ipfs_mcp.backends.errors import DiskFull, IpfsMcpError
from ipfs_mcp.backends.repo.filestore import FileRef, Filestore

COMMIT_EVERY = 256  # placed leaves per reference transaction (64 MiB of 256 KiB leaves)
COMMIT_AFTER = 5.0  # seconds a placed leaf may wait for its reference to be committed


class ReceivingFile:
    """One file being built from arriving leaves: its descriptor, where each leaf goes,
    and the references not yet committed."""

    def __init__(self, path: Path, fd: int, offsets: Mapping[bytes, Sequence[int]],
                 sizes: Mapping[bytes, int], filestore: Filestore) -> None:
        self.path = path
        self.fd = fd
        self.offsets = {m: tuple(o) for m, o in offsets.items()}
        self.sizes = dict(sizes)
        self.filestore = filestore
        self.placed: set[int] = set()  # offsets written and verified in this receive
        self.placed_bytes = 0
        self._pending: dict[bytes, FileRef] = {}
        self._oldest = 0.0
        self._lock = threading.Lock()
        # One commit at a time: puts run on several threads, and each would otherwise
        # commit the same batch again while the first commit is still under way.
        self._committing = threading.Lock()

    def wants(self, multihash: bytes, size: int) -> bool:
        # A leaf longer or shorter than its parent declares is not placed: it would spill
        # into its neighbour. Stored as a block instead, the exporter then names the lie.
        return self.sizes.get(multihash) == size

    def write(self, multihash: bytes, data: bytes) -> None:
        """Write verified ``data`` at each of its offsets; its reference joins the batch.

        Raises:
            DiskFull: the file system is full (the file keeps what it had).
            IpfsMcpError: another write failure, naming the file.
        """
        offsets = self.offsets[multihash]
        try:
            for offset in offsets:
                done = 0
                while done < len(data):  # pwrite may write less than asked
                    done += os.pwrite(self.fd, memoryview(data)[done:], offset + done)
        except OSError as exc:
            raise write_error(exc, self.path) from exc
        with self._lock:
            self.placed.update(offsets)
            self.placed_bytes += len(data) * len(offsets)
            if not self._pending:
                self._oldest = time.monotonic()
            self._pending[multihash] = FileRef(str(self.path), offsets[0], len(data))
            full = len(self._pending) >= COMMIT_EVERY
            due = full or time.monotonic() - self._oldest >= COMMIT_AFTER
        # A full batch waits for the commit under way (then commits what is still due), so
        # a put never returns with more than COMMIT_EVERY leaves unreferenced and no
        # commit done: what a kill -9 can lose is bounded. A batch due by time alone does
        # not wait; the next put tries again.
        if due and self._committing.acquire(blocking=full):
            try:
                with self._lock:
                    still = (len(self._pending) >= COMMIT_EVERY
                             or time.monotonic() - self._oldest >= COMMIT_AFTER)
                if still:
                    self._commit()
            finally:
                self._committing.release()

    def adopt(self, multihash: bytes, offset: int, size: int) -> None:
        """Reference a leaf the receiver wrote itself (it was local, so no ``put`` came)."""
        with self._lock:
            if not self._pending:
                self._oldest = time.monotonic()
            self._pending[multihash] = FileRef(str(self.path), offset, size)

    def pending(self, multihash: bytes) -> FileRef | None:
        with self._lock:
            return self._pending.get(multihash)

    def commit(self) -> None:
        """Make the written bytes durable, then their references, in one transaction.

        Raises:
            DiskFull, IpfsMcpError: the data or the index could not be made durable.
        """
        with self._committing:
            self._commit()

    def _commit(self) -> None:
        with self._lock:
            batch = dict(self._pending)
        if not batch:
            return
        try:
            os.fdatasync(self.fd)
        except OSError as exc:
            raise write_error(exc, self.path) from exc
        self.filestore.put_references((m, r.path, r.offset, r.size) for m, r in batch.items())
        with self._lock:
            for multihash, ref in batch.items():
                if self._pending.get(multihash) is ref:  # not placed again meanwhile
                    del self._pending[multihash]
            if self._pending:
                self._oldest = time.monotonic()


class Placements:
    """The leaves receivers expect, by multihash, shared by every ``put`` of a blockstore."""

    def __init__(self, filestore: Filestore) -> None:
        self.filestore = filestore
        self._lock = threading.Lock()
        self._targets: dict[bytes, list[ReceivingFile]] = {}

    def open(self, path: Path, fd: int, offsets: Mapping[bytes, Sequence[int]],
             sizes: Mapping[bytes, int]) -> ReceivingFile:
        """Expect the leaves ``offsets`` (multihash -> offsets) for the file open as ``fd``."""
        receiving = ReceivingFile(path, fd, offsets, sizes, self.filestore)
        with self._lock:
            for multihash in receiving.offsets:
                self._targets.setdefault(multihash, []).append(receiving)
        return receiving

    def close(self, receiving: ReceivingFile) -> None:
        """Stop expecting the file's leaves; commits what it placed first.

        Raises:
            DiskFull, IpfsMcpError: the last batch could not be committed.
        """
        with self._lock:
            for multihash in receiving.offsets:
                files = self._targets.get(multihash)
                if files is None:
                    continue
                files[:] = [f for f in files if f is not receiving]
                if not files:
                    del self._targets[multihash]
        receiving.commit()

    def place(self, multihash: bytes, data: bytes) -> bool:
        """Write a verified raw leaf into every file that expects it; False if none does
        (then the caller stores it as a block).

        Raises:
            DiskFull, IpfsMcpError: as :meth:`ReceivingFile.write`.
        """
        with self._lock:
            files = [f for f in self._targets.get(multihash, ()) if f.wants(multihash, len(data))]
        for receiving in files:
            receiving.write(multihash, data)
        return bool(files)

    def pending(self, multihash: bytes) -> FileRef | None:
        """Where a placed leaf whose reference is not committed yet is, or None."""
        with self._lock:
            files = list(self._targets.get(multihash, ()))
        for receiving in files:
            ref = receiving.pending(multihash)
            if ref is not None:
                return ref
        return None


def write_error(exc: OSError, path: Path) -> IpfsMcpError:
    """A failed write into a file being received, as the project's error."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(f"the file system holding {path} is full; the received part is "
                        "kept, and a new fetch resumes from it once there is room")
    return IpfsMcpError(f"cannot write {path}: {exc.strerror or exc}")
