"""A UnixFS file or folder as a TAR stream (``?format=tar``, path-gateway spec).

The archive holds one top entry named by the CID asked for; a folder's entries follow
below it, depth-first in link order, each folder before what it holds. Headers are made by
the standard library's ``tarfile`` (PAX, so any UTF-8 name and any size fit); the bodies
stream from the exporter a block at a time, so memory stays a chunk whatever the size.

Bounded: the tree is walked by the exporter's DAG walker (depth and entry bounds), and
blocks come through the request's loader (its fetch budget). A file whose bytes differ
from the size its root declared (written before its bytes, as TAR needs) stops the stream.

Names: a UnixFS link name is any string, so a hostile DAG can name an entry ``../x``. As the
spec asks, every member's name is resolved (``a/../b`` is ``b``) and must stay under the
top entry; one that leaves it stops the archive. Since the gateway sends nothing before the
first chunk is made, a DAG whose first entries leave is refused with an error status.
"""

from __future__ import annotations

import posixpath
import tarfile
from collections.abc import Iterator

from multiformats import CID

from ipfs_mcp.backends.core.exporter import Exporter
from ipfs_mcp.backends.errors import IntegrityError

from .failures import NotRendered

BLOCK = tarfile.BLOCKSIZE


class EscapingName(NotRendered):
    """A UnixFS entry whose name leads out of the archive's top folder (HTTP 501)."""


def member_name(top: str, path: str) -> str:
    """The archive name of the entry at ``path`` (``/``-joined link names) under ``top``.

    Raises:
        EscapingName: the name, once resolved, is not under ``top``.
    """
    if not path:
        return top
    name = posixpath.normpath(f"{top}/{path}")
    if not name.startswith(top + "/") or "\x00" in name:
        raise EscapingName(f"the entry {path!r} would leave the archive's folder {top!r}: "
                           "this gateway refuses to write it into a TAR")
    return name


def _header(name: str, kind: bytes, mode: int, size: int = 0, target: str = "") -> bytes:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.linkname = kind, mode, size, target
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")


def _file_body(exporter: Exporter, cid: CID, size: int, name: str) -> Iterator[bytes]:
    sent = 0
    for piece in exporter.cat(cid):
        sent += len(piece)
        if sent > size:
            break
        yield piece
    if sent != size:
        raise IntegrityError(f"{name!r} holds other than the {size} bytes it declares")
    if size % BLOCK:
        yield b"\0" * (BLOCK - size % BLOCK)


def tar_pieces(exporter: Exporter, cid: CID, top: str) -> Iterator[bytes]:
    """The TAR archive of the UnixFS tree at ``cid``, its top entry called ``top``.

    Raises:
        EscapingName: an entry's name leads out of ``top``.
        IntegrityError: a file's bytes differ from its declared size, or a block is bad.
        DagTooLarge: the tree is over the walker's bounds.
        BlockNotFound: a block is missing (and cannot be fetched).
    """
    for item in exporter.tree(cid):
        name = member_name(top, item.path)
        entry = item.entry
        if entry.kind == "directory":
            yield _header(name, tarfile.DIRTYPE, 0o755)
        elif entry.kind == "symlink":
            yield _header(name, tarfile.SYMTYPE, 0o777, target=entry.target or "")
        else:
            yield _header(name, tarfile.REGTYPE, 0o644, entry.size)
            yield from _file_body(exporter, entry.cid, entry.size, name)
    yield b"\0" * (2 * BLOCK)  # the end-of-archive marker
