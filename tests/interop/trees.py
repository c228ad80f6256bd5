"""Comparing two folders on disk: what a fetch wrote against what was added."""

from __future__ import annotations

from pathlib import Path

__all__ = ["same_tree"]


def same_tree(a: Path, b: Path) -> None:
    """``a`` and ``b`` hold the same names (folders included) and files of the same bytes.

    Raises:
        AssertionError: naming what differs.
    """
    names_a = sorted(p.relative_to(a).as_posix() for p in a.rglob("*"))
    names_b = sorted(p.relative_to(b).as_posix() for p in b.rglob("*"))
    assert names_a == names_b
    for name in names_a:
        if (a / name).is_file():
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
