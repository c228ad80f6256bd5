"""Writes relative to open folders, never to path strings resolved again later.

A path is checked once (inside the allowed roots, outside the protected folders); then the
folder that will hold the output is opened, there and then, as a descriptor (:class:`Folder`),
and every later step — making folders, creating files and links, renaming the finished
output into place — names a single entry relative to such a descriptor. So a network wait
between the check and the write cannot be used to swap a link into the path: the folder the
check saw is the folder written, as with Go's ``os.Root`` and Rust's ``cap-std``.

Each component is opened with ``O_NOFOLLOW | O_DIRECTORY``: a link (or a file) where a folder
is expected is refused, never followed. ``openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)``
would do the same walk in one call, but Python has no wrapper for it and the per-component
walk gives the same guarantee with portable calls, so that is the mechanism here.

::

    target = OutputTarget.at(checked_path)    # opened now: the nearest existing folder
    ...                                       # network waits, as long as they take
    with target.parent() as folder:           # the missing folders made below it, by handle
        fd = folder.create(".name.part")      # O_CREAT | O_EXCL | O_NOFOLLOW
        folder.replace(".name.part", target.name)
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path
from types import TracebackType

from ipfs_mcp.backends.errors import UnsafePath

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _name(name: str) -> str:
    """``name`` if it is one plain entry name (no separator, not ``.``/``..``, no NUL).

    Raises:
        UnsafePath: it is not.
    """
    if not name or name in (".", "..") or "/" in name or "\x00" in name:
        raise UnsafePath(f"{name!r} is not a plain entry name")
    return name


class Folder:
    """An open folder; every operation names one entry relative to it. ``shown`` is the
    path it was opened at, for messages only: it is never resolved again."""

    def __init__(self, fd: int, shown: Path) -> None:
        self.fd = fd
        self.shown = shown

    @classmethod
    def open(cls, path: Path) -> Folder:
        """Open the absolute ``path`` one component at a time from ``/``, following no link.

        Raises:
            UnsafePath: a component is a link or not a folder.
            FileNotFoundError: a component does not exist.
        """
        path = Path(path)
        if not path.is_absolute():
            raise UnsafePath(f"{path} is not an absolute path")
        folder = cls(os.open("/", _DIR_FLAGS), Path("/"))
        for part in path.parts[1:]:
            try:
                inner = folder.sub(part)
            finally:
                folder.close()
            folder = inner
        return folder

    def path(self, name: str) -> Path:
        """Where ``name`` is, for messages."""
        return self.shown / name

    def sub(self, name: str) -> Folder:
        """The folder ``name`` inside this one, opened without following a link.

        Raises:
            UnsafePath: ``name`` is a link or not a folder.
            FileNotFoundError: it does not exist.
        """
        try:
            fd = os.open(_name(name), _DIR_FLAGS, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafePath(f"{self.path(name)} is a link or not a folder; nothing is "
                                 "written through it") from exc
            raise
        return Folder(fd, self.path(name))

    def make(self, name: str, *, exist_ok: bool = False) -> Folder:
        """Make the folder ``name`` (or take the existing one, with ``exist_ok``) and open it.

        Raises:
            UnsafePath: a link or a file is there.
            FileExistsError: it exists and not ``exist_ok``.
        """
        try:
            os.mkdir(_name(name), 0o755, dir_fd=self.fd)
        except FileExistsError:
            if not exist_ok:
                raise
        return self.sub(name)

    def create(self, name: str, mode: int = 0o644) -> int:
        """A new file ``name``, open for writing (never an existing one, never a link's).

        Raises:
            FileExistsError: something is there already.
        """
        return os.open(_name(name), _NEW_FILE, mode, dir_fd=self.fd)

    def symlink(self, target: str, name: str) -> None:
        os.symlink(target, _name(name), dir_fd=self.fd)

    def readlink(self, name: str) -> str:
        """What the link ``name`` points to.

        Raises:
            OSError: it is not a link, or is absent.
        """
        return os.readlink(_name(name), dir_fd=self.fd)

    def open_read(self, name: str) -> int:
        """The regular file ``name`` (never a link's target), open for reading.

        Raises:
            UnsafePath: ``name`` is a link or not a regular file.
            FileNotFoundError: it does not exist.
        """
        try:
            fd = os.open(_name(name), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                         dir_fd=self.fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafePath(f"{self.path(name)} is a link; it is not read") from exc
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise UnsafePath(f"{self.path(name)} is not a regular file")
        return fd

    def write_file(self, name: str, data: bytes) -> None:
        """A new file ``name`` holding ``data``, synced before it is closed (a temp that a
        :meth:`replace` or :meth:`link` then puts in place).

        Raises:
            FileExistsError: something is there already.
        """
        fd = self.create(name)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)

    def kind(self, name: str) -> str | None:
        """``"dir"``, ``"link"`` or ``"file"`` (anything else) for ``name``, or None."""
        try:
            st = os.stat(_name(name), dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(st.st_mode):
            return "link"
        return "dir" if stat.S_ISDIR(st.st_mode) else "file"

    def holds_entries(self, name: str) -> bool:
        """Whether the folder ``name`` (not a link) has any entry."""
        with self.sub(name) as inner, os.scandir(inner.fd) as listing:
            return next(listing, None) is not None

    def rename(self, src: str, dst: str) -> None:
        """``rename(2)`` within this folder (fails on a non-empty folder at ``dst``)."""
        os.rename(_name(src), _name(dst), src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def replace(self, src: str, dst: str) -> None:
        os.replace(_name(src), _name(dst), src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def link(self, src: str, dst: str) -> None:
        """A hard link ``dst`` to ``src`` (never replaces: ``FileExistsError``)."""
        os.link(_name(src), _name(dst), src_dir_fd=self.fd, dst_dir_fd=self.fd,
                follow_symlinks=False)

    def remove(self, name: str) -> None:
        """Remove ``name`` whatever it is (a folder with all it holds); absent is fine."""
        kind = self.kind(name)
        if kind == "dir":
            shutil.rmtree(name, dir_fd=self.fd, ignore_errors=True)
        elif kind is not None:
            try:
                os.unlink(name, dir_fd=self.fd)
            except FileNotFoundError:
                pass

    def rmdir(self, name: str) -> None:
        os.rmdir(_name(name), dir_fd=self.fd)

    def fsync(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Folder:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class OutputTarget:
    """Where one write lands, held from the moment its path was checked: the nearest
    existing folder of the path (open), the folders still to make below it, and the name.

    ``max_entries`` is the write's budget of files, folders and links (None: the default
    of :mod:`.limits`), carried with the target so every backend's writer applies it.
    """

    def __init__(self, base: Folder, missing: tuple[str, ...], name: str, shown: Path,
                 max_entries: int | None = None) -> None:
        self.base = base
        self.missing = missing
        self.name = _name(name)
        self.shown = shown
        self.max_entries = max_entries
        self._made: list[tuple[Folder, str]] = []  # folders this target made, outermost first

    @classmethod
    def at(cls, path: Path, *, max_entries: int | None = None) -> OutputTarget:
        """Open the nearest existing folder of the absolute (checked, resolved) ``path``.

        Raises:
            UnsafePath: a component of that folder is a link or not a folder.
        """
        path = Path(os.path.abspath(path))
        if path.parent == path:
            raise UnsafePath(f"{path} cannot be written: it is the root of the file system")
        missing: list[str] = []
        folder = path.parent
        while not os.path.lexists(folder) and folder != folder.parent:
            missing.append(folder.name)
            folder = folder.parent
        return cls(Folder.open(folder), tuple(reversed(missing)), path.name, path,
                   max_entries)

    def __str__(self) -> str:
        return str(self.shown)

    def parent(self) -> Folder:
        """The folder that holds the output, opened by handle; the missing folders on the
        way are made (and remembered, so :meth:`discard_made` can take them back).

        Raises:
            UnsafePath: a link or a file appeared where a folder is to be.
        """
        folder = Folder(os.dup(self.base.fd), self.base.shown)
        for part in self.missing:
            try:
                existed = folder.kind(part) is not None
                inner = folder.make(part, exist_ok=True)
            except BaseException:
                folder.close()
                raise
            if not existed:
                self._made.append((Folder(os.dup(folder.fd), folder.shown), part))
            folder.close()
            folder = inner
        return folder

    def discard_made(self) -> None:
        """Remove the folders :meth:`parent` made, deepest first, when they are empty."""
        for holder, name in reversed(self._made):
            try:
                holder.rmdir(name)
            except OSError:
                pass
            holder.close()
        self._made.clear()

    def close(self) -> None:
        for holder, _ in self._made:
            holder.close()
        self._made.clear()
        self.base.close()

    def __enter__(self) -> OutputTarget:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
