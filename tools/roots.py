"""Allowed roots: the only places tools read local paths from and write them to.

An agent chooses paths, and an agent can be steered by text it reads, so every path is
checked after the file system has resolved it: ``..`` is refused outright, and symlinks are
followed before the check, so a link inside a root that points outside counts as outside.

There are three kinds of folder:

- **read roots**: tools may read files inside them (the configured folders, the client's
  MCP roots as :class:`ClientRoots` allows, the HuggingFace hub cache);
- **write roots**: tools may write inside them (the configured folders and client roots);
- **protected folders**: nothing is written inside them through a path argument, even when
  a write root contains them (the user allowed ``~`` and the hub cache is
  ``~/.cache/huggingface/hub``). The hub cache is written only by ``into_hf_cache``, which
  keeps its layout honest; the IPFS repo only by the repo itself. **Private** folders (the
  repo, which holds the node's private key) are protected and cannot be read either.

A target is inside a protected folder when its resolved path is (symlinks, a symlinked
parent), when it or an existing ancestor is the same directory by device and inode (a bind
mount, or a case variant of the name on a case-insensitive file system), or, while the
protected folder does not exist yet, when the names match ignoring case and Unicode
normalisation on a file system that ignores them.
"""

from __future__ import annotations

import enum
import os
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote, urlparse

from ipfs_mcp.backends.errors import TargetExists, UnsafePath


def _real(path: str | Path) -> Path:
    return Path(os.path.realpath(Path(path).expanduser()))


def _unique(paths: Iterable[str | Path]) -> tuple[Path, ...]:
    """Resolved once, duplicates dropped, order kept."""
    seen: dict[Path, None] = {}
    for p in paths:
        seen.setdefault(_real(p), None)
    return tuple(seen)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(path.anchor or "/")


def _ignores_case(folder: Path) -> bool:
    """Whether the file system that holds ``folder`` (existing) matches names ignoring case:
    probed with the first name on the way up that has a case twin."""
    for candidate in (folder, *folder.parents):
        name = candidate.name
        twin = name.swapcase()
        if name and twin != name:
            try:
                return os.path.samefile(candidate, candidate.parent / twin)
            except OSError:
                return False
    return False


def _fold(path: Path) -> tuple[str, ...]:
    return tuple(unicodedata.normalize("NFD", part).casefold() for part in path.parts)


def _within(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


@dataclass(frozen=True)
class ProtectedFolders:
    """Folders no path argument may write into (see the module docstring)."""

    folders: tuple[Path, ...] = ()

    @classmethod
    def of(cls, paths: Iterable[str | Path]) -> ProtectedFolders:
        return cls(_unique(paths))

    def containing(self, path: str | Path) -> Path | None:
        """The protected folder that ``path`` (resolved here) lies in, or None."""
        real = _real(path)
        by_identity: dict[tuple[int, int], Path] = {}
        for folder in self.folders:
            # Resolved again now: the folder may have been created (or replaced by a
            # symlink) since start-up.
            folder_real = _real(folder)
            if _within(real, folder_real):
                return folder
            identity = _identity(folder_real)
            if identity is not None:
                by_identity[identity] = folder
            elif _ignores_case(_nearest_existing(folder_real)):
                folded, target = _fold(folder_real), _fold(real)
                if target[:len(folded)] == folded:
                    return folder
        if by_identity:
            for ancestor in (real, *real.parents):
                identity = _identity(ancestor)
                if identity in by_identity:
                    return by_identity[identity]
        return None

    def held_by(self, path: str | Path) -> Path | None:
        """The protected folder that lies below ``path`` (resolved here), or None. Writing a
        folder at such a path could create the protected folder's files, and replacing it
        would delete them, so it is refused like a path inside."""
        real = _real(path)
        for folder in self.folders:
            folder_real = _real(folder)
            if folder_real != real and folder_real.is_relative_to(real):
                return folder
            if _ignores_case(_nearest_existing(folder_real)):
                folded, target = _fold(folder_real), _fold(real)
                if len(folded) > len(target) and folded[:len(target)] == target:
                    return folder
        return None

    def check(self, path: str | Path, shown: object | None = None) -> Path:
        """``path`` resolved, after making sure it is not inside a protected folder, nor
        above one.

        Raises:
            UnsafePath: it is, or it resolves into one, or one lies below it.
        """
        real = _real(path)
        name = shown if shown is not None else path
        hit = self.containing(real)
        if hit is not None:
            raise UnsafePath(
                f"{name} is (or leads through a link) inside the protected folder {hit} (the "
                "HuggingFace hub cache or the IPFS repo): nothing is written there through a "
                "path. To put a model into the hub cache, fetch it with into_hf_cache; to "
                "write a file, choose a path in an allowed root outside these folders")
        held = self.held_by(real)
        if held is not None:
            raise UnsafePath(
                f"{name} is (or leads through a link to) a folder that holds the protected "
                f"folder {held} (the HuggingFace hub cache or the IPFS repo): a write there "
                "could replace or create files inside it. Choose a path in an allowed root "
                "outside these folders")
        return real


class ClientRoots(enum.Enum):
    """How far the roots an MCP client declares count, by who the client can be.

    Over stdio the client is the program that started the server: its roots are the
    user's, and become read and write roots. Over HTTP any local process that reaches the
    port can be the client and declare ``file:///``, so without a token its roots count for
    nothing, and with one (every request then carries it) only the parts inside the
    configured write roots count.
    """

    TRUSTED = "trusted"  # stdio
    CONFINED = "confined"  # HTTP with a token: only inside the configured write roots
    IGNORED = "ignored"  # HTTP without a token


@dataclass(frozen=True)
class AllowedRoots:
    read: tuple[Path, ...] = ()
    write: tuple[Path, ...] = ()
    protected: ProtectedFolders = field(default_factory=ProtectedFolders)
    private: ProtectedFolders = field(default_factory=ProtectedFolders)
    client_roots: ClientRoots = ClientRoots.TRUSTED
    # Roots a client declared that :attr:`client_roots` did not let count, to say so.
    declined: tuple[Path, ...] = ()

    @classmethod
    def of(cls, paths: Iterable[str | Path] | None = None, *,
           read: Iterable[str | Path] = (), write: Iterable[str | Path] = (),
           protected: Iterable[str | Path] = (),
           private: Iterable[str | Path] = ()) -> AllowedRoots:
        """Roots from paths, each resolved once, duplicates dropped, order kept.

        ``paths`` (the older form) are read and write roots both. Write roots are also read
        roots. ``protected`` folders take no writes, ``private`` ones no reads or writes.
        """
        given = list(paths or ())
        write_roots = _unique([*given, *write])
        private_folders = ProtectedFolders.of(private)
        return cls(read=_unique([*given, *write, *read]), write=write_roots,
                   protected=ProtectedFolders.of([*protected, *private_folders.folders]),
                   private=private_folders)

    @property
    def roots(self) -> tuple[Path, ...]:
        """Every folder a path may name (the read roots)."""
        return self.read

    def plus(self, paths: Iterable[str | Path]) -> AllowedRoots:
        """These roots and ``paths`` (an MCP client's roots) as read and write roots, as far
        as :attr:`client_roots` lets them count (the others are kept in :attr:`declined`, so
        a refusal can say why); the protected and private folders stay as they are."""
        given = _unique(paths)
        if self.client_roots is ClientRoots.TRUSTED:
            extra = given
        elif self.client_roots is ClientRoots.CONFINED:
            extra = tuple(p for p in given if any(_within(p, root) for root in self.write))
        else:
            extra = ()
        return AllowedRoots(read=_unique([*self.read, *extra]),
                            write=_unique([*self.write, *extra]),
                            protected=self.protected, private=self.private,
                            client_roots=self.client_roots,
                            declined=tuple(p for p in given if p not in extra))

    @classmethod
    def for_server(cls, allow: Iterable[str | Path], *, hub_cache: str | Path,
                   repo: str | Path,
                   client_roots: ClientRoots = ClientRoots.TRUSTED) -> AllowedRoots:
        """The server's roots: ``allow`` to read and write, the hub cache to read, nothing
        written into the hub cache or the repo through a path, nothing read from the repo;
        a client's roots count as ``client_roots`` says."""
        folders = list(allow)
        made = cls.of(read=[*folders, hub_cache], write=folders, protected=[hub_cache],
                      private=[repo])
        return replace(made, client_roots=client_roots)

    def protecting(self, folders: Iterable[str | Path], *,
                   private: Iterable[str | Path] = ()) -> AllowedRoots:
        """These roots with ``folders`` protected (no writes) and ``private`` ones sealed
        (no reads or writes) as well."""
        sealed = ProtectedFolders.of([*self.private.folders, *private])
        return replace(self, protected=ProtectedFolders.of([*self.protected.folders, *folders,
                                                            *sealed.folders]),
                       private=sealed)

    def describe(self) -> str:
        if not self.read:
            text = "no allowed roots are configured"
        else:
            text = "allowed roots: " + ", ".join(str(r) for r in self.read)
        if self.write != self.read:
            text += "; writable: " + (", ".join(str(r) for r in self.write) or "none")
        if self.protected.folders:
            text += "; never written through a path: " + ", ".join(
                str(p) for p in self.protected.folders)
        if self.declined:
            text += ("; roots your MCP client declared that do not count over HTTP "
                     + ("without a token" if self.client_roots is ClientRoots.IGNORED else
                        "outside the configured roots") + ": "
                     + ", ".join(str(p) for p in self.declined))
        return text

    def _refuse(self, path: object, why: str) -> UnsafePath:
        share = (", or share it as a root from your MCP client"
                 if self.client_roots is ClientRoots.TRUSTED else "")
        return UnsafePath(f"{path} {why}; {self.describe()}. Add a folder with "
                          f"`ipfs-mcp serve --allow-root DIR` (or IPFS_MCP_ALLOW_ROOTS){share}")

    def _lexical(self, path: str | Path, base: tuple[Path, ...]) -> Path:
        text = os.fspath(path)
        if not text.strip():
            raise UnsafePath("empty path")
        if "\x00" in text:
            raise UnsafePath("path contains a NUL byte")
        p = Path(text).expanduser()
        if ".." in p.parts:
            raise self._refuse(text, "contains '..'")
        if not p.is_absolute():
            if not base:
                raise self._refuse(text, "is relative and there is no root to resolve it in")
            p = base[0] / p
        return p

    def check_read(self, path: str | Path) -> Path:
        """The resolved path of an existing file or folder inside a root.

        Relative paths are taken relative to the first root.

        Raises:
            UnsafePath: outside every root (after following symlinks), inside a private
                folder, or uses ``..``.
        """
        lexical = self._lexical(path, self.read)
        real = _real(lexical)
        if not any(_within(real, root) for root in self.read):
            raise self._refuse(path, _outside("allowed", lexical, self.read))
        hit = self.private.containing(real)
        if hit is not None:
            raise UnsafePath(f"{path} is (or leads through a link) inside {hit}, the IPFS "
                             "repo: its files (the node's private key among them) are not "
                             "readable through a path; use the CIDs it stores")
        return real

    def check_reference_tree(self, path: str | Path, *, hidden: bool = False,
                             follow_symlinks: bool = False,
                             max_entries: int = 1_000_000) -> int:
        """Check that every file an import of ``path`` reads resolves inside a read root,
        so it may be kept by reference (nocopy); returns their total size.

        The server's read roots include the hub cache, so a hub snapshot passes while its
        symlinks point into its ``blobs/``. Dotfiles are skipped unless ``hidden``, and
        symlinks are checked (and followed) only with ``follow_symlinks``, as the importer
        reads them.

        Raises:
            UnsafePath: a file (or the folder a symlink leads to) outside every read root,
                inside a private folder, or more than ``max_entries`` entries.
        """
        top = self.check_read(path)
        if not top.is_dir():
            return top.stat().st_size
        total = entries = 0
        seen: set[Path] = set()
        stack = [top]
        while stack:
            folder = stack.pop()
            if folder in seen:
                continue
            seen.add(folder)
            try:
                listing = list(os.scandir(folder))
            except OSError as exc:
                raise UnsafePath(f"cannot list {folder}: {exc.strerror}") from exc
            for entry in listing:
                entries += 1
                if entries > max_entries:
                    raise UnsafePath(f"{path} has more than {max_entries} entries")
                if (entry.name.startswith(".") and not hidden) or (
                        entry.is_symlink() and not follow_symlinks):
                    continue
                real = self.check_read(entry.path)  # a symlink that leads out is refused
                if real.is_dir():
                    stack.append(real)
                elif real.is_file():
                    total += real.stat().st_size
        return total

    def check_write(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """A path to write inside a write root; it may not exist yet.

        Symlinks are followed (also a dangling one, also in a parent), so the result is
        where the bytes would land. Relative paths are taken relative to the first write
        root.

        An allowed root itself, empty or not, existing or not, is never a target, nor is a
        folder that holds one (a root inside another): a write there would replace or
        remove the root as a whole. Writing inside it is what roots are for.

        Raises:
            UnsafePath: outside every write root, inside a protected folder or holding one,
                uses ``..``, or is (or holds) a write root itself.
            TargetExists: an existing file or non-empty folder, and ``overwrite`` is false.
        """
        lexical = self._lexical(path, self.write)
        real = _real(lexical)
        if not any(_within(real, root) for root in self.write):
            raise self._refuse(path, _outside("writable", lexical, self.write))
        self.protected.check(real, path)
        held = next((root for root in self.write if _within(root, real)), None)
        if held is not None:
            what = "" if held == real else f" (through {held}, a root inside it)"
            raise UnsafePath(f"{path} is an allowed root itself{what}; a root is never "
                             "replaced or removed as a whole: write to a path inside it")
        if not overwrite and _occupied(real):
            raise TargetExists(
                f"{path} already exists ({describe_existing(real)}); nothing was written. Pass "
                "overwrite=true to replace it, or choose a new path")
        return real

    def would_replace(self, path: str | Path) -> Path | None:
        """Where a write to ``path`` would replace something, or None when it would not
        (nothing there yet, or the path is refused anyway)."""
        try:
            real = self.check_write(path, overwrite=True)
        except UnsafePath:
            return None
        return real if _occupied(real) else None


def _outside(kind: str, lexical: Path, roots: tuple[Path, ...]) -> str:
    """Why a path is refused, without where it resolves to: the message names the path as
    the caller gave it, and where its links lead (``/proc/self/cwd``, a link planted in a
    root) is not the caller's to learn. ``lexical`` is the path before links are followed."""
    if any(_within(lexical, root) for root in roots):
        return f"leads outside the {kind} roots through a link"
    return f"is outside the {kind} roots"


def _occupied(real: Path) -> bool:
    """An existing file, symlink or non-empty folder (an empty folder is a fine target)."""
    return describe_existing(real) is not None


def describe_existing(path: str | Path) -> str | None:
    """What a write to ``path`` would replace ("a file of 12 bytes", "a folder with 3
    entries"), or None when nothing would be (absent, or an empty folder)."""
    if not os.path.lexists(path):
        return None
    if os.path.isdir(path):
        with os.scandir(path) as listing:
            count = sum(1 for _ in listing)
        return f"a folder with {count} entries" if count else None
    try:
        return f"a file of {os.stat(path).st_size} bytes"
    except OSError:
        return "a dangling symlink"


def file_uri_to_path(uri: str) -> Path | None:
    """The local folder of a ``file://`` MCP root, or None for other schemes."""
    parsed = urlparse(uri)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        return None
    return Path(unquote(parsed.path))
