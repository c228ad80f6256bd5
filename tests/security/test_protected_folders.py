"""Protected folders on real mounts: a bind mount of the hub cache, and a case variant of its
name on a case-insensitive file system, are the hub cache too.

Both need root to mount (CI runs as root); the case-insensitive one also needs a kernel with
ext4 casefold support. Where that is missing the test says so and is skipped.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ipfs_mcp.backends.errors import UnsafePath
from ipfs_mcp.tools.roots import AllowedRoots


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def mounted() -> Iterator[list[Path]]:
    """Mount points to unmount at the end, whatever happened."""
    points: list[Path] = []
    yield points
    for point in reversed(points):
        _run("umount", str(point))


def test_a_bind_mount_of_the_hub_cache_is_still_protected(tmp_path: Path,
                                                          mounted: list[Path]) -> None:
    hub = tmp_path / "hf" / "hub"
    (hub / "models--v--m" / "blobs").mkdir(parents=True)
    work = tmp_path / "work"
    alias = work / "looks-like-a-folder"
    alias.mkdir(parents=True)
    done = _run("mount", "--bind", str(hub), str(alias))
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {done.stderr.strip()}")
    mounted.append(alias)
    assert not alias.is_symlink()  # resolving the path alone cannot see it
    roots = AllowedRoots.for_server([work], hub_cache=hub, repo=tmp_path / "hf" / "ipfs")
    with pytest.raises(UnsafePath, match="protected folder"):
        roots.check_write(alias / "models--v--m" / "blobs" / "new")
    with pytest.raises(UnsafePath, match="protected folder"):
        roots.check_write(alias)
    assert roots.check_write(work / "elsewhere") == work.resolve() / "elsewhere"


def test_a_case_variant_on_a_case_insensitive_file_system(tmp_path: Path,
                                                          mounted: list[Path]) -> None:
    if shutil.which("mkfs.ext4") is None or shutil.which("chattr") is None:
        pytest.skip("mkfs.ext4 and chattr are needed to make a case-insensitive file system")
    image, point = tmp_path / "ci.img", tmp_path / "mnt"
    point.mkdir()
    with open(image, "wb") as out:
        out.truncate(16 * 1024 * 1024)
    made = _run("mkfs.ext4", "-q", "-O", "casefold", str(image))
    if made.returncode != 0:
        pytest.skip(f"mkfs.ext4 cannot make a casefold file system: {made.stderr.strip()}")
    done = _run("mount", "-o", "loop", str(image), str(point))
    if done.returncode != 0:
        pytest.skip(f"this kernel cannot mount ext4 with casefold: {done.stderr.strip()}")
    mounted.append(point)
    home = point / "home"
    home.mkdir()
    if _run("chattr", "+F", str(home)).returncode != 0:
        pytest.skip("casefold (chattr +F) is not supported on this kernel")
    hub = home / "hub"
    roots = AllowedRoots.for_server([home], hub_cache=hub, repo=home / "ipfs")
    # The hub cache does not exist yet: "HUB" would become it.
    with pytest.raises(UnsafePath, match="protected folder"):
        roots.check_write(home / "HUB" / "models--v--m" / "blobs" / "x")
    (hub / "models--v--m" / "blobs").mkdir(parents=True)
    with pytest.raises(UnsafePath, match="protected folder"):
        roots.check_write(home / "Hub" / "models--v--m" / "blobs" / "x")
    assert roots.check_write(home / "work" / "x").name == "x"
