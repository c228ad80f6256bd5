"""What an add sends: the multipart body Kubo's RPC ``add`` (and IPFS Cluster's ``/add``)
read, the tree walk that feeds it, and the entries read back from the answer.

Shared by the Kubo backend (over HTTP) and the cluster backend, so both send a folder the
way ``ipfs add -r`` does: each folder before what it holds, names sorted, dotfiles skipped
unless ``hidden``, symlinks sent as symlinks unless ``follow_symlinks``. Bodies are made as
they are sent: one file open at a time, read in 1 MiB pieces.
"""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from multiformats import CID

from ipfs_mcp.backends.core.importer import AddedEntry, ImportOptions
from ipfs_mcp.backends.errors import InvalidInput, NotFound

__all__ = ["PIECE", "Part", "LocalTree", "multipart", "multipart_boundary", "read_pieces",
           "added_entries"]

PIECE = 1 << 20  # upload and download granularity

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Part:
    """One entry of an upload."""

    path: str  # the entry's path inside the upload
    kind: str  # "file" | "directory" | "symlink"
    body: Iterable[bytes]


_CONTENT_TYPES = {"file": "application/octet-stream", "directory": "application/x-directory",
                  "symlink": "application/symlink"}


def multipart_boundary() -> str:
    return f"ipfs-mcp-{uuid.uuid4().hex}"


def _encode_name(path: str) -> str:
    # Kubo URL-unescapes the part's filename. Escaping every byte keeps quotes, ';' and
    # non-ASCII out of the header's own syntax; Kubo gets the path back, '/' and all.
    return "".join(f"%{b:02X}" for b in path.encode())


def multipart(parts: Iterable[Part], boundary: str) -> Iterator[bytes]:
    """A multipart/form-data body produced as it is sent (one file open at a time)."""
    for part in parts:
        yield (f"--{boundary}\r\n"
               f'Content-Disposition: form-data; name="file"; '
               f'filename="{_encode_name(part.path)}"\r\n'
               f"Content-Type: {_CONTENT_TYPES[part.kind]}\r\n\r\n").encode()
        yield from part.body
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def read_pieces(stream: BinaryIO, progress: Progress | None = None) -> Iterator[bytes]:
    """``stream`` in 1 MiB pieces, each reported to ``progress`` as it is read."""
    while piece := stream.read(PIECE):
        if progress is not None:
            progress(len(piece))  # may raise OperationCancelled: the upload stops here
        yield piece


class LocalTree:
    """A file or folder on this machine, to be added: its parts as ``ipfs add -r`` sends
    them, and how many file bytes were read (:attr:`sent`).

    Use :meth:`open`, which checks the path first.
    """

    def __init__(self, top: Path, name: str, options: ImportOptions,
                 progress: Progress | None = None) -> None:
        self.top = top
        self.name = name
        self.options = options
        self._progress = progress
        self._sizes: list[int] = []

    @classmethod
    def open(cls, path: str | Path, *, recursive: bool, options: ImportOptions,
             progress: Progress | None = None) -> LocalTree:
        """Raises: NotFound: no such path. InvalidInput: a folder without ``recursive``."""
        top = Path(path)
        if not top.exists():
            raise NotFound(f"no such file or folder: {top}")
        if top.is_dir() and not recursive:
            raise InvalidInput(f"{top} is a folder; add it recursively (-r)")
        name = top.resolve().name if top.name in ("", ".", "..") else top.name
        return cls(top, name, options, progress)

    @property
    def sent(self) -> int:
        """File bytes read so far (by :meth:`parts`, or counted by :meth:`read_elsewhere`)."""
        return sum(self._sizes)

    def read_elsewhere(self) -> None:
        """The node read the tree itself (the CLI): count the file bytes it read (symlinks
        kept as symlinks, dotfiles as ``hidden`` says) and report them once."""
        total = _tree_bytes(self.top, self.options)
        self._sizes = [total]
        if self._progress is not None:
            self._progress(total)

    def parts(self) -> Iterator[Part]:
        """The parts of ``ipfs add -r``, read as they are sent.

        Raises:
            InvalidInput: a symlink cycle, or an entry that is not a file, folder or symlink.
        """
        self._sizes = []
        if not self.top.is_dir():  # a file, or a symlink named on the command line (followed)
            yield Part(self.name, "file", self._file_body(self.top))
            return
        top = self.top.resolve() if self.top.is_symlink() else self.top
        yield from self._walk(top, self.name, set())

    def _walk(self, folder: Path, rel: str, following: set[Path]) -> Iterator[Part]:
        o = self.options
        yield Part(rel, "directory", ())
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.name.startswith(".") and not o.hidden:
                continue
            child = f"{rel}/{entry.name}"
            if entry.is_symlink() and not o.follow_symlinks:
                yield Part(child, "symlink", [os.fsencode(os.readlink(entry.path))])
            elif entry.is_dir():
                target = Path(entry.path).resolve()
                if entry.is_symlink():  # followed: guard against cycles
                    if target in following or folder.resolve().is_relative_to(target):
                        raise InvalidInput(f"symlink cycle at {entry.path}")
                    following.add(target)
                yield from self._walk(target if entry.is_symlink() else Path(entry.path),
                                      child, following)
            elif stat.S_ISREG(os.stat(entry.path).st_mode):
                yield Part(child, "file", self._file_body(Path(entry.path)))
            else:
                raise InvalidInput(f"cannot add {entry.path}: not a file, folder or symlink")

    def _file_body(self, path: Path) -> Iterator[bytes]:
        # Opened only when the upload reaches it, so a folder of many files holds one open.
        with open(path, "rb") as stream:
            total = 0
            for piece in read_pieces(stream, self._progress):
                total += len(piece)
                yield piece
            self._sizes.append(total)


def _tree_bytes(top: Path, o: ImportOptions) -> int:
    if not top.is_dir():
        return top.stat().st_size
    total = 0
    for folder, dirs, files in os.walk(top):
        if not o.hidden:
            dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            path = Path(folder) / name
            if (o.hidden or not name.startswith(".")) and not path.is_symlink():
                total += path.stat().st_size
    return total


def added_entries(tree: LocalTree, added: Iterable[tuple[str, CID]]) -> list[AddedEntry]:
    """The entries of an add, from the node's ``(name, cid)`` answers, with kind and size
    read from the local tree that was sent (the node reports names and CIDs only)."""
    top, name = tree.top, tree.name
    out = []
    base = top.parent
    for reported, cid in added:
        rel = reported[len(name):].lstrip("/") if reported == name or reported.startswith(
            name + "/") else reported
        local = base / reported if reported.startswith(name) else top / rel
        target = None
        # Sent as a symlink unless followed (the top always is), whatever it points to.
        if local.is_symlink() and local != top and not tree.options.follow_symlinks:
            kind, size, target = "symlink", 0, os.readlink(local)
        elif local.is_dir():
            kind, size = "directory", 0
        else:
            kind = "file"
            try:
                size = local.stat().st_size
            except OSError:
                size = 0
        out.append(AddedEntry(rel, cid, size, kind, target))
    return out
