"""``into_hf_cache`` never silently changes what a cached repo id and revision resolve to.

Written through :func:`hf_layout.write_snapshot` on a real repo and a real hub cache, and
read back with ``huggingface_hub`` itself.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from huggingface_hub import hf_hub_download
from multiformats import CID

from ipfs_mcp.backends.core import dagpb
from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.core.exporter import Exporter
from ipfs_mcp.backends.errors import BlockNotFound, IntegrityError, TargetExists, UnsafePath
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.hub.layout import commit_for, plan_revision, write_snapshot
from ipfs_mcp.backends.repo.repository import Repo

from .scene import tree_digest

FILES = {"a.txt": b"small file\n", "big.bin": os.urandom(600_000),
         "sub/c.json": b'{"c": 1}\n'}


@pytest.fixture
def backend(tmp_path: Path) -> HFCacheBackend:
    return HFCacheBackend(Repo(tmp_path / "repo", fsync=False), hub_cache=tmp_path / "hub")


def add_model(backend: HFCacheBackend, folder: Path, files: dict[str, bytes]) -> str:
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    return cid_str(backend.add_path(folder).root)


def test_blobs_are_named_by_sha256_and_a_repeated_fetch_changes_nothing(
        backend: HFCacheBackend, tmp_path: Path) -> None:
    root = add_model(backend, tmp_path / "m", FILES)
    first = backend.export_to_hf(root, "acme/x")
    assert first.commit == commit_for(backend.stat(root).cid) and first.replaced is None
    blobs = tmp_path / "hub" / "models--acme--x" / "blobs"
    assert sorted(p.name for p in blobs.iterdir()) == sorted(
        hashlib.sha256(d).hexdigest() for d in FILES.values())
    inodes = {p.name: p.stat().st_ino for p in blobs.iterdir()}
    before = tree_digest(tmp_path / "hub")
    again = backend.export_to_hf(root, "acme/x")
    assert again.commit == first.commit
    assert tree_digest(tmp_path / "hub") == before
    assert {p.name: p.stat().st_ino for p in blobs.iterdir()} == inodes  # never rewritten
    for rel, data in FILES.items():
        got = hf_hub_download("acme/x", rel, cache_dir=str(tmp_path / "hub"),
                              local_files_only=True)
        assert Path(got).read_bytes() == data


def test_a_revision_that_names_other_content_moves_only_with_replace(
        backend: HFCacheBackend, tmp_path: Path) -> None:
    old = add_model(backend, tmp_path / "old", FILES)
    new = add_model(backend, tmp_path / "new", {**FILES, "a.txt": b"poisoned\n"})
    old_commit = backend.export_to_hf(old, "acme/x").commit
    new_commit = commit_for(backend.stat(new).cid)
    before = tree_digest(tmp_path / "hub")
    with pytest.raises(TargetExists) as err:
        backend.export_to_hf(new, "acme/x")
    assert old_commit in str(err.value) and new_commit in str(err.value)
    assert "Nothing was written" in str(err.value)
    assert tree_digest(tmp_path / "hub") == before
    # Another revision name is a new ref: main is untouched.
    backend.export_to_hf(new, "acme/x", revision="candidate")
    ref = tmp_path / "hub" / "models--acme--x" / "refs"
    assert (ref / "main").read_text() == old_commit
    moved = backend.export_to_hf(new, "acme/x", replace=True)
    assert moved.replaced == old_commit and (ref / "main").read_text() == new_commit
    got = hf_hub_download("acme/x", "a.txt", cache_dir=str(tmp_path / "hub"),
                          local_files_only=True)
    assert Path(got).read_bytes() == b"poisoned\n"


def test_an_existing_blob_is_verified_and_never_rewritten(backend: HFCacheBackend,
                                                          tmp_path: Path) -> None:
    root = add_model(backend, tmp_path / "m", FILES)
    blobs = tmp_path / "hub" / "models--acme--x" / "blobs"
    blobs.mkdir(parents=True)
    tampered = blobs / hashlib.sha256(FILES["a.txt"]).hexdigest()
    tampered.write_bytes(b"not what the name says")
    with pytest.raises(IntegrityError, match="left as it is"):
        backend.export_to_hf(root, "acme/x")
    assert tampered.read_bytes() == b"not what the name says"
    snapshots = tmp_path / "hub" / "models--acme--x" / "snapshots"
    assert not any(p.is_symlink() for p in snapshots.rglob("*"))
    assert not (tmp_path / "hub" / "models--acme--x" / "refs" / "main").exists()
    assert not [p for p in blobs.iterdir() if p.name.endswith(".incomplete")]


def test_a_file_appears_in_snapshots_only_once_every_blob_is_complete(
        backend: HFCacheBackend, tmp_path: Path) -> None:
    """The last leaf of big.bin is missing (and no peer to ask): the export fails mid-file,
    and the snapshot shows no file at all, not a.txt and not half of big.bin."""
    root = add_model(backend, tmp_path / "m", FILES)
    exporter = backend.exporter()
    big = dict(exporter.children(exporter.resolve(backend.stat(root).cid, "")))["big.bin"]
    last_leaf = dagpb.decode(backend.repo.blocks.get(big)).links[-1].cid
    backend.repo.blocks.delete_path(backend.repo.blocks.path_of(bytes(last_leaf.digest)))
    with pytest.raises(BlockNotFound):
        backend.export_to_hf(root, "acme/x")
    folder = tmp_path / "hub" / "models--acme--x"
    assert not any(p.is_symlink() for p in (folder / "snapshots").rglob("*"))
    assert not (folder / "refs" / "main").exists()
    assert not [p for p in (folder / "blobs").iterdir() if p.name.endswith(".incomplete")]


def test_a_planted_symlink_in_the_repo_folder_is_refused(backend: HFCacheBackend,
                                                         tmp_path: Path) -> None:
    root = add_model(backend, tmp_path / "m", FILES)
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = tmp_path / "hub" / "models--acme--x"
    folder.mkdir(parents=True)
    (folder / "blobs").symlink_to(outside)
    with pytest.raises(UnsafePath, match="outside the hub cache"):
        backend.export_to_hf(root, "acme/x")
    assert list(outside.iterdir()) == []


class SwapOnFirstRead(Exporter):
    """The repo's exporter, except that the first file read first runs ``swap``: the moment
    a write has made and opened its folders and is about to fill them."""

    def __init__(self, inner: Exporter, swap: Callable[[], None]) -> None:
        super().__init__(inner.load)
        self._swap: Callable[[], None] | None = swap

    def cat(self, cid: CID, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        if self._swap is not None:
            swap, self._swap = self._swap, None
            swap()
        return super().cat(cid, offset, length)


@pytest.mark.parametrize("swapped", ["blobs", "snapshots", "refs"])
def test_a_folder_swapped_for_a_link_during_the_write_is_never_written_through(
        backend: HFCacheBackend, tmp_path: Path, swapped: str) -> None:
    """Between the folders being made and the first file written, a folder of the repo is
    renamed away and a link to an outside folder put in its place: every file, link and
    ref lands in the folder that was opened (now renamed, still inside the hub cache)."""
    root = add_model(backend, tmp_path / "m", FILES)
    hub = tmp_path / "hub"
    folder = hub / "models--acme--x"
    outside = tmp_path / "outside"
    outside.mkdir()

    def swap() -> None:
        (folder / swapped).rename(hub / f"moved-{swapped}")
        (folder / swapped).symlink_to(outside, target_is_directory=True)

    exporter = SwapOnFirstRead(backend.exporter(), swap)
    result = write_snapshot(exporter, backend.stat(root).cid, hub,
                            plan_revision(hub, "acme/x"))
    assert list(outside.iterdir()) == []
    held = sorted(p.name for p in (hub / f"moved-{swapped}").rglob("*"))
    expected = {"blobs": sorted(hashlib.sha256(d).hexdigest() for d in FILES.values()),
                "snapshots": sorted([result.commit, "a.txt", "big.bin", "sub", "c.json"]),
                "refs": ["main"]}
    assert held == expected[swapped]


@pytest.mark.parametrize("revision", ["", "..", ".hidden", "a/b", "a\\b", "x\x00"])
def test_unsafe_revision_names_are_refused(backend: HFCacheBackend, tmp_path: Path,
                                           revision: str) -> None:
    root = add_model(backend, tmp_path / "m", FILES)
    with pytest.raises(ValueError, match="unsafe revision"):
        backend.export_to_hf(root, "acme/x", revision=revision)
