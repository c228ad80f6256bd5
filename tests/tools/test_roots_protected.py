"""Read roots, write roots, protected and private folders, and refusing to overwrite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ipfs_mcp.backends.errors import TargetExists, UnsafePath
from ipfs_mcp.tools.roots import AllowedRoots, ProtectedFolders, describe_existing


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home folder holding a project and the HuggingFace home."""
    (tmp_path / "home" / "work").mkdir(parents=True)
    (tmp_path / "home" / "hf" / "hub" / "models--a--b" / "blobs").mkdir(parents=True)
    (tmp_path / "home" / "hf" / "ipfs").mkdir()
    (tmp_path / "home" / "hf" / "ipfs" / "identity.key").write_bytes(b"secret key")
    return tmp_path / "home"


def server_roots(allow: Path, home: Path) -> AllowedRoots:
    return AllowedRoots.for_server([allow], hub_cache=home / "hf" / "hub",
                                   repo=home / "hf" / "ipfs")


def test_the_hub_cache_is_readable_but_not_writable(home: Path) -> None:
    roots = server_roots(home / "work", home)
    blob = home / "hf" / "hub" / "models--a--b" / "blobs" / "x"
    blob.write_bytes(b"weights")
    assert roots.check_read(blob) == blob.resolve()
    with pytest.raises(UnsafePath, match="outside the writable roots"):
        roots.check_write(blob.parent / "new")
    assert roots.check_write("new.txt") == (home / "work" / "new.txt").resolve()


def test_a_parent_folder_allowed_still_protects_the_hub_cache_and_the_repo(home: Path) -> None:
    roots = server_roots(home, home)
    for target in (home / "hf" / "hub", home / "hf" / "hub" / "models--a--b" / "blobs" / "n",
                   home / "hf" / "ipfs" / "blocks" / "x", home / "hf" / "ipfs"):
        with pytest.raises(UnsafePath, match="protected folder"):
            roots.check_write(target)
    for above in (home / "hf", "hf"):  # replacing it would delete the hub cache
        with pytest.raises(UnsafePath, match="holds the protected folder"):
            roots.check_write(above, overwrite=True)
    assert roots.check_write(home / "hf" / "other") == (home / "hf" / "other").resolve()
    assert roots.check_write(home / "hf" / "hub-notes") == (home / "hf" / "hub-notes").resolve()


def test_a_folder_above_a_hub_cache_not_made_yet_is_refused(tmp_path: Path) -> None:
    """A folder DAG written there could lay out the hub cache before huggingface_hub does."""
    (tmp_path / "home" / "hf").mkdir(parents=True)
    roots = AllowedRoots.for_server([tmp_path / "home"], hub_cache=tmp_path / "home" / "hf" / "hub",
                                    repo=tmp_path / "home" / "hf" / "ipfs")
    with pytest.raises(UnsafePath, match="holds the protected folder"):
        roots.check_write(tmp_path / "home" / "hf")


def test_the_repo_is_not_readable_through_a_path(home: Path) -> None:
    roots = server_roots(home, home)
    with pytest.raises(UnsafePath, match="private key"):
        roots.check_read(home / "hf" / "ipfs" / "identity.key")
    (home / "work" / "key-link").symlink_to(home / "hf" / "ipfs" / "identity.key")
    with pytest.raises(UnsafePath, match="private key"):
        roots.check_read(home / "work" / "key-link")


def test_symlinks_into_protected_folders_are_followed(home: Path) -> None:
    roots = server_roots(home, home)
    work = home / "work"
    (work / "to-hub").symlink_to(home / "hf" / "hub")
    (work / "dangling").symlink_to(home / "hf" / "hub" / "models--a--b" / "blobs" / "new")
    (work / "rel").symlink_to(Path("..") / "hf" / "ipfs")
    for target in (work / "to-hub" / "models--a--b" / "refs" / "main", work / "dangling",
                   work / "rel" / "x", "work/to-hub/x"):
        with pytest.raises(UnsafePath, match="protected folder"):
            roots.check_write(target, overwrite=True)


def test_a_protected_folder_created_or_replaced_later_is_still_protected(tmp_path: Path) -> None:
    hub = tmp_path / "later" / "hub"
    protected = ProtectedFolders.of([hub])
    assert protected.containing(hub / "x") == hub.resolve()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "later").mkdir()
    hub.symlink_to(tmp_path / "elsewhere")  # now the hub cache lives elsewhere
    assert protected.containing(tmp_path / "elsewhere" / "x") is not None


def test_existing_targets_need_overwrite(home: Path) -> None:
    roots = server_roots(home / "work", home)
    work = home / "work"
    (work / "notes.txt").write_text("mine")
    (work / "full").mkdir()
    (work / "full" / "a").write_text("a")
    (work / "empty").mkdir()
    with pytest.raises(TargetExists, match=r"a file of 4 bytes.*overwrite=true"):
        roots.check_write(work / "notes.txt")
    with pytest.raises(TargetExists, match="a folder with 1 entries"):
        roots.check_write("full")
    assert roots.check_write(work / "empty") == (work / "empty").resolve()
    assert roots.check_write(work / "notes.txt", overwrite=True) == (work / "notes.txt").resolve()
    assert roots.would_replace("notes.txt") == (work / "notes.txt").resolve()
    assert roots.would_replace("empty") is None and roots.would_replace("absent") is None
    assert roots.would_replace(home / "hf" / "hub") is None  # refused anyway: nothing to ask
    with pytest.raises(UnsafePath, match="allowed root itself"):
        roots.check_write(work, overwrite=True)
    os.symlink(work / "absent", work / "broken")
    assert describe_existing(work / "broken") == "a dangling symlink"


def test_client_roots_add_read_and_write_roots_but_keep_the_protection(home: Path) -> None:
    roots = server_roots(home / "work", home).plus([home])
    assert home.resolve() in roots.write and home.resolve() in roots.read
    with pytest.raises(UnsafePath, match="protected folder"):
        roots.check_write(home / "hf" / "hub" / "x")
    with pytest.raises(UnsafePath, match="private key"):
        roots.check_read(home / "hf" / "ipfs" / "identity.key")
    assert "never written through a path" in roots.describe()


def test_the_older_form_makes_read_and_write_roots(home: Path) -> None:
    roots = AllowedRoots.of([home / "work"])
    assert roots.read == roots.write == ((home / "work").resolve(),)
    assert roots.roots == roots.read
    guarded = roots.protecting([home / "work" / "kept"], private=[home / "work" / "sealed"])
    with pytest.raises(UnsafePath, match="protected folder"):
        guarded.check_write(home / "work" / "kept" / "x")
    with pytest.raises(UnsafePath, match="protected folder"):
        guarded.check_write(home / "work" / "sealed" / "x")
    (home / "work" / "sealed").mkdir()
    with pytest.raises(UnsafePath, match="not readable"):
        guarded.check_read(home / "work" / "sealed")
