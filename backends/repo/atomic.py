"""One way to write a file so readers see all of it or none of it, even after kill -9, and
the one place that decides how written files are made durable (:class:`DiskSync`)."""

from __future__ import annotations

import ctypes
import os
import sys
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

    def __init__(self, enabled: bool = True, *, use_syncfs: bool = True) -> None:
        self.enabled = enabled
        self._syncfs = _SYNCFS if use_syncfs else None

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


def write_unsynced(tmp: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to the new file ``tmp`` with no sync: a batch makes it durable (with
    :meth:`DiskSync.files`) before renaming it into place.

    Raises:
        OSError: as raised by the file system; the file is removed first.
    """
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
