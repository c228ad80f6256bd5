"""Allowed roots: the only places tools read local paths from and write them to.

An agent chooses paths, so every path is checked after the file system has resolved it:
``..`` is refused outright, and symlinks are followed before the check, so a link inside a
root that points outside counts as outside. The roots are the configured folders, the
client's MCP roots (``file://`` URIs) and the HuggingFace hub cache.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from ipfs_mcp.backends.errors import UnsafePath


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


@dataclass(frozen=True)
class AllowedRoots:
    roots: tuple[Path, ...]

    @classmethod
    def of(cls, paths: Iterable[str | Path]) -> AllowedRoots:
        """Roots from paths; each is resolved once, duplicates dropped, order kept."""
        seen: dict[Path, None] = {}
        for p in paths:
            seen.setdefault(_real(Path(p).expanduser()), None)
        return cls(tuple(seen))

    def plus(self, paths: Iterable[str | Path]) -> AllowedRoots:
        return AllowedRoots.of([*self.roots, *paths])

    def describe(self) -> str:
        if not self.roots:
            return "no allowed roots are configured"
        return "allowed roots: " + ", ".join(str(r) for r in self.roots)

    def _refuse(self, path: object, why: str) -> UnsafePath:
        return UnsafePath(f"{path} {why}; {self.describe()}. Add a folder with "
                          "`ipfs-mcp serve --allow-root DIR` (or IPFS_MCP_ALLOW_ROOTS), or "
                          "share it as a root from your MCP client")

    def _lexical(self, path: str | Path) -> Path:
        text = os.fspath(path)
        if not text.strip():
            raise UnsafePath("empty path")
        if "\x00" in text:
            raise UnsafePath("path contains a NUL byte")
        p = Path(text).expanduser()
        if ".." in p.parts:
            raise self._refuse(text, "contains '..'")
        if not p.is_absolute():
            if not self.roots:
                raise self._refuse(text, "is relative and there is no root to resolve it in")
            p = self.roots[0] / p
        return p

    def _inside(self, real: Path) -> bool:
        return any(real == root or real.is_relative_to(root) for root in self.roots)

    def check_read(self, path: str | Path) -> Path:
        """The resolved path of an existing file or folder inside a root.

        Relative paths are taken relative to the first root.

        Raises:
            UnsafePath: outside every root (after following symlinks), or uses ``..``.
        """
        p = self._lexical(path)
        real = _real(p)
        if not self._inside(real):
            raise self._refuse(path, f"is outside the allowed roots (it resolves to {real})")
        return real

    def check_write(self, path: str | Path) -> Path:
        """A path to write inside a root; it may not exist yet.

        The deepest existing ancestor is resolved (following symlinks) and the rest is
        appended, so a symlinked parent that leads out of the roots is caught.

        Raises:
            UnsafePath: outside every root, or uses ``..``.
        """
        p = self._lexical(path)
        tail: list[str] = []
        base = p
        while not base.exists() and not base.is_symlink():
            if base.parent == base:
                break
            tail.append(base.name)
            base = base.parent
        real = _real(base).joinpath(*reversed(tail))
        if not self._inside(real):
            raise self._refuse(path, f"is outside the allowed roots (it resolves to {real})")
        return real


def file_uri_to_path(uri: str) -> Path | None:
    """The local folder of a ``file://`` MCP root, or None for other schemes."""
    parsed = urlparse(uri)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        return None
    return Path(unquote(parsed.path))
