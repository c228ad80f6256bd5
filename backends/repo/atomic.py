"""One way to write a file so readers see all of it or none of it, even after kill -9, and
the one place that decides how written files are made durable (:class:`DiskSync`)."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import mmap
import os
import sys
import threading
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path


def _load_syncfs() -> Callable[[int], int] | None:
    """libc's ``syncfs(2)`` (Linux), which the ``os`` module does not offer; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # the C library the interpreter uses
        fn = libc.syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_SYNCFS = _load_syncfs()


class DiskSync:
    """How written files become durable: every fsync-class call of the repo goes through
    here, so a repo opened without fsync (tests, benches) skips them all in one place.

    ``file`` makes one open file durable before it is renamed (single writes). A batch of
    files written without a sync each is made durable with ``files`` before renaming them,
    and the renames with ``folders`` after: one ``syncfs(2)`` of the file system for each
    where Linux offers it (it writes back every dirty page and commits the journal, directory
    entries included), else an ``fdatasync`` per file and an ``fsync`` per folder.
    """

    def __init__(self, enabled: bool = True, *, use_syncfs: bool = True,
                 direct: bool = True) -> None:
        self.enabled = enabled
        self._syncfs = _SYNCFS if use_syncfs else None
        # Only a repo that syncs writes around the page cache: without syncs (tests, benches
        # of the CPU path) the page cache is the cheaper place for bytes nobody waits for.
        self.direct = DirectWrites() if enabled and direct and hasattr(os, "O_DIRECT") else None

    @property
    def whole_file_system(self) -> bool:
        """True when a batch is synced with ``syncfs`` rather than file by file."""
        return self._syncfs is not None

    def file(self, fd: int) -> None:
        """Make one open file's bytes and size durable.

        Raises:
            OSError: as the file system reports it.
        """
        if self.enabled:
            os.fsync(fd)

    def files(self, paths: Iterable[Path], anchor: Path) -> None:
        """Make the bytes of files written (and closed) earlier durable; ``anchor`` is any
        folder on their file system.

        Raises:
            OSError: as the file system reports it.
        """
        self._each(paths, anchor, os.O_RDONLY, _fdatasync)

    def folders(self, paths: Iterable[Path], anchor: Path) -> None:
        """Make the entries just renamed into ``paths`` (and folders made in them) durable.

        Raises:
            OSError: as the file system reports it.
        """
        self._each(paths, anchor, os.O_RDONLY | os.O_DIRECTORY, os.fsync)

    def folder(self, path: Path) -> None:
        """Make one folder's entries durable.

        Raises:
            OSError: as the file system reports it.
        """
        if self.enabled:
            _sync_path(path, os.O_RDONLY | os.O_DIRECTORY, os.fsync)

    def _each(self, paths: Iterable[Path], anchor: Path, flags: int,
              sync: Callable[[int], None]) -> None:
        """One ``syncfs`` of ``anchor``'s file system where there is one, else ``sync`` of
        each path opened with ``flags``."""
        if not self.enabled:
            return
        if self._syncfs is not None:
            self.syncfs(anchor)
            return
        for path in paths:
            _sync_path(path, flags, sync)

    def syncfs(self, anchor: Path) -> None:
        """``syncfs(2)`` of the file system holding ``anchor``.

        Raises:
            OSError: as the kernel reports it (writeback errors included, Linux >= 5.8).
        """
        assert self._syncfs is not None
        fd = os.open(anchor, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            if self._syncfs(fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err), str(anchor))
        finally:
            os.close(fd)


def _sync_path(path: Path, flags: int, sync: Callable[[int], None]) -> None:
    fd = os.open(path, flags | os.O_CLOEXEC)
    try:
        sync(fd)
    finally:
        os.close(fd)


def _fdatasync(fd: int) -> None:
    # macOS has no fdatasync in os; its fsync is the closest.
    sync = getattr(os, "fdatasync", os.fsync)
    sync(fd)


def atomic_write(path: Path, data: bytes, *, tmp_dir: Path | None = None, fsync: bool = True,
                 mode: int = 0o644, sync: DiskSync | None = None,
                 sync_folder: bool = True) -> None:
    """Write ``data`` to a unique temp file, fsync it, then rename it over ``path``.

    ``tmp_dir`` must be on the same file system as ``path`` (default: next to it). With
    ``sync`` (which then decides, and ``fsync`` is ignored) the folder holding ``path`` is
    made durable after the rename too (unless ``sync_folder`` is false), so the new entry
    survives a power cut.

    Raises:
        OSError: as raised by the file system; the temp file is removed first.
    """
    tmp = (tmp_dir or path.parent) / f".{path.name}.{uuid.uuid4().hex}.tmp"
    # Plain descriptors, not a buffered file object: the blockstore writes every block
    # through here, and a file object's set-up (and its tty probe) costs a block as much
    # as the copy of a small one.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            _write_all(fd, data)
            if sync is not None:
                sync.file(fd)
            elif fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync is not None and sync_folder:
        sync.folder(path.parent)


def write_unsynced(tmp: Path, data: bytes, mode: int = 0o644, *,
                   sync: DiskSync | None = None) -> None:
    """Write ``data`` to the new file ``tmp`` with no sync: a batch makes it durable (with
    :meth:`DiskSync.files`) before renaming it into place.

    With ``sync``'s :class:`DirectWrites` (a repo that syncs), a large block goes to the disk
    with direct I/O where the file system takes it; the rest through the page cache.

    Raises:
        OSError: as raised by the file system; the file is removed first.
    """
    direct = sync.direct if sync is not None else None
    if direct is not None and len(data) >= DIRECT_MIN and direct.usable(tmp):
        try:
            if direct.write(tmp, data, mode):
                return
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


_ALIGN = 4096  # covers every logical block size in use (512 and 4096) and the page size
DIRECT_MIN = 64 * 1024  # below this the copy into the page cache costs less than the I/O


class DirectWrites:
    """Block files written with ``O_DIRECT``: the aligned part of a block goes from an aligned
    buffer straight to the disk, the unaligned tail (a dag-pb leaf's few header bytes past
    256 KiB) through the page cache.

    Why: an add or a receive writes each block once and syncs it in a batch soon after. Through
    the page cache that costs a kernel copy of every byte and then a writeback the batch's
    ``syncfs`` waits for; on the disks measured here the page-cache path reached a quarter of
    what direct writes did, and the copy was the largest kernel cost of an add. Durability is
    unchanged: the batch's ``syncfs`` (or ``fdatasync``) still commits the file's size and
    extents and flushes the disk's cache before anything names the block.

    A file system that refuses ``O_DIRECT`` (tmpfs, some FUSE and network mounts) is
    remembered by device and written through the page cache from then on. Each thread keeps
    one aligned buffer, grown to the largest block it has written.
    """

    def __init__(self) -> None:
        self.refused: set[int] = set()  # devices whose file system refused O_DIRECT
        self.written = 0  # files written this way (read by tests)
        self._local = threading.local()

    def usable(self, path: Path) -> bool:
        return not self.refused or self._device(path) not in self.refused

    def write(self, tmp: Path, data: bytes, mode: int) -> bool:
        """Write ``data`` to the new file ``tmp``; False (nothing left behind) when its file
        system refuses direct I/O.

        Raises:
            OSError: any other failure of the file system.
        """
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_DIRECT,
                         mode)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            self.refused.add(self._device(tmp))
            return False
        try:
            aligned = len(data) - len(data) % _ALIGN
            buffer = self._buffer(aligned)
            with memoryview(data) as view:  # a slice of bytes would be one more copy
                buffer[:aligned] = view[:aligned]
            try:
                _write_all(fd, memoryview(buffer)[:aligned])
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                self.refused.add(self._device(tmp))
                os.close(fd)
                fd = -1
                tmp.unlink(missing_ok=True)
                return False
            if aligned < len(data):
                fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_DIRECT)
                _write_all(fd, memoryview(data)[aligned:])
        finally:
            if fd >= 0:
                os.close(fd)
        self.written += 1
        return True

    def _buffer(self, size: int) -> mmap.mmap:
        buffer: mmap.mmap | None = getattr(self._local, "buffer", None)
        if buffer is None or len(buffer) < size:
            if buffer is not None:
                buffer.close()
            # An anonymous map is page aligned, as O_DIRECT needs its memory to be.
            buffer = self._local.buffer = mmap.mmap(-1, max(size, 1 << 20))
        return buffer

    @staticmethod
    def _device(path: Path) -> int:
        return os.stat(path.parent).st_dev


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
