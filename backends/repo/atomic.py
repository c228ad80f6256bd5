"""One way to write a file so readers see all of it or none of it, even after kill -9."""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def atomic_write(path: Path, data: bytes, *, tmp_dir: Path | None = None, fsync: bool = True,
                 mode: int = 0o644) -> None:
    """Write ``data`` to a unique temp file, fsync it, then rename it over ``path``.

    ``tmp_dir`` must be on the same file system as ``path`` (default: next to it).

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
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
