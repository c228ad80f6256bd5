"""Inputs for the Kubo tests: random files and trees, and what our importer makes of them."""

from __future__ import annotations

import os
import random
from pathlib import Path

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.core.importer import Importer, ImportOptions

# Names that have bitten multipart encoders: one letter (some parsers want two), spaces,
# '+' (form decoding turns it into a space), '%', '#', '?', quotes and non-ASCII.
AWKWARD_NAMES = ["a", "b c", "x+y", "100%", "#hash", "what?", "it's", "naïve", "日本語",
                 "semi;colon", "eq=ual", "amp&ersand", 'dq"uote']


def ours(data: bytes, options: ImportOptions | None = None) -> str:
    """The CID our importer gives ``data`` (nothing stored)."""
    return cid_str(Importer(None, options).add_bytes(data).cid_obj)


def ours_path(path: Path, options: ImportOptions | None = None) -> str:
    return cid_str(Importer(None, options).add_path(path).root)


def random_tree(root: Path, rng: random.Random, *, files: int = 12, depth: int = 3,
                symlinks: bool = False) -> Path:
    """A folder with nested folders, an empty folder, dotfiles, awkward names and files of
    sizes around small chunk edges."""
    root.mkdir(parents=True, exist_ok=True)
    folders = [root]
    for level in range(depth):
        folder = folders[-1] / f"level{level}"
        folder.mkdir()
        folders.append(folder)
    (root / "empty").mkdir()
    (root / ".hidden-dir").mkdir()
    (root / ".hidden-dir" / "inside.txt").write_bytes(b"hidden inside\n")
    (root / ".dotfile").write_bytes(b"dot\n")
    names = list(AWKWARD_NAMES)
    rng.shuffle(names)
    for i in range(files):
        folder = rng.choice(folders)
        name = names[i] if i < len(names) else f"file-{i}.bin"
        size = rng.choice([0, 1, 1023, 1024, 1025, 4096, 70_000, 262_143, 262_145])
        (folder / name).write_bytes(rng.randbytes(size))
    if symlinks:
        os.symlink("level0", root / "link-to-dir")
        os.symlink("../empty", folders[1] / "link-up")
    return root


def same_tree(a: Path, b: Path) -> bool:
    """Same names, kinds and bytes (symlink targets compared as text)."""
    def listing(top: Path) -> dict[str, bytes | str | None]:
        out: dict[str, bytes | str | None] = {}
        for path in sorted(top.rglob("*")):
            rel = str(path.relative_to(top))
            if path.is_symlink():
                out[rel] = "->" + os.readlink(path)
            elif path.is_dir():
                out[rel] = None
            else:
                out[rel] = path.read_bytes()
        return out

    return listing(a) == listing(b)
