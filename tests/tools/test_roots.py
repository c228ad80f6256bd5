"""Allowed roots against a real file system: `..`, absolute paths, symlinks out and in."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ipfs_mcp.backends.errors import UnsafePath
from ipfs_mcp.tools.roots import AllowedRoots, file_uri_to_path


@pytest.fixture
def layout(tmp_path: Path) -> tuple[AllowedRoots, Path, Path]:
    inside = tmp_path / "root"
    outside = tmp_path / "outside"
    inside.mkdir()
    outside.mkdir()
    (inside / "a.txt").write_text("a")
    (outside / "secret.txt").write_text("s")
    os.symlink(outside / "secret.txt", inside / "link-out")
    os.symlink(outside, inside / "dir-out")
    os.symlink(inside / "a.txt", inside / "link-in")
    return AllowedRoots.of([inside]), inside, outside


def test_read_inside_and_relative(layout: tuple[AllowedRoots, Path, Path]) -> None:
    roots, inside, _ = layout
    assert roots.check_read(inside / "a.txt") == (inside / "a.txt").resolve()
    assert roots.check_read("a.txt") == (inside / "a.txt").resolve()
    assert roots.check_read(inside / "link-in") == (inside / "a.txt").resolve()


@pytest.mark.parametrize("bad", ["../outside/secret.txt", "sub/../../outside",
                                 "/etc/passwd", "link-out", "dir-out/secret.txt"])
def test_read_refuses_escapes(layout: tuple[AllowedRoots, Path, Path], bad: str) -> None:
    roots, inside, _ = layout
    with pytest.raises(UnsafePath) as err:
        roots.check_read(bad)
    assert str(inside.resolve()) in str(err.value)  # the error names the allowed roots
    assert "--allow-root" in str(err.value)


def test_write_new_paths(layout: tuple[AllowedRoots, Path, Path]) -> None:
    roots, inside, _ = layout
    assert roots.check_write(inside / "new" / "deep" / "f") == inside.resolve() / "new/deep/f"
    with pytest.raises(UnsafePath):
        roots.check_write(inside / "dir-out" / "new-file")  # a symlinked parent leads out
    with pytest.raises(UnsafePath):
        roots.check_write(inside / "link-out")  # overwriting through a link that leads out
    with pytest.raises(UnsafePath):
        roots.check_write("/tmp/../etc/x")


def test_no_roots_and_bad_values() -> None:
    empty = AllowedRoots.of([])
    with pytest.raises(UnsafePath, match="no allowed roots"):
        empty.check_read("/etc/passwd")
    with pytest.raises(UnsafePath, match="relative"):
        empty.check_read("x")
    with pytest.raises(UnsafePath, match="NUL"):
        AllowedRoots.of(["/"]).check_read("a\x00b")
    with pytest.raises(UnsafePath, match="empty"):
        empty.check_write("  ")


def test_file_uris() -> None:
    assert file_uri_to_path("file:///home/me/proj") == Path("/home/me/proj")
    assert file_uri_to_path("file://localhost/a%20b") == Path("/a b")
    assert file_uri_to_path("https://example.com/x") is None
    assert file_uri_to_path("file://otherhost/x") is None
