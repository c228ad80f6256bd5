"""An add pays for durability in batches, and a kill -9 in the middle of one loses nothing
that was reported added.

The kill test runs ``ipfs-mcp add`` as a real process and watches its repo (never a sleep):
once a batch has been renamed into ``blocks/`` while the next one is still in ``tmp/``, it
sends SIGKILL, then checks the repo with ``ipfs-mcp repo verify`` and adds the file again.
The counting tests hand the repo a :class:`DiskSync` that notes each call before making it.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from ipfs_mcp.backends.core import unixfs
from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.core.importer import Importer, ImportOptions
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.repo import blockstore
from ipfs_mcp.backends.repo.atomic import DiskSync
from ipfs_mcp.backends.repo.repository import Repo

DEADLINE = 120.0  # seconds for the add to reach the state the kill wants (a slow machine)
CHUNK = 262144


class NotingSync(DiskSync):
    """The real DiskSync, noting each call (and what it was asked to sync) first."""

    def __init__(self, *, use_syncfs: bool = True) -> None:
        super().__init__(use_syncfs=use_syncfs)
        self.calls: list[tuple[str, list[Path]]] = []

    def file(self, fd: int) -> None:
        self.calls.append(("file", []))
        super().file(fd)

    def files(self, paths: Iterable[Path], anchor: Path) -> None:
        paths = list(paths)
        # Nothing of this batch is under its final name yet: only temp files are synced.
        assert all(p.parent.name == "tmp" and p.exists() for p in paths)
        self.calls.append(("files", paths))
        super().files(paths, anchor)

    def folders(self, paths: Iterable[Path], anchor: Path) -> None:
        paths = list(paths)
        self.calls.append(("folders", paths))
        super().folders(paths, anchor)

    def folder(self, path: Path) -> None:
        self.calls.append(("folder", [path]))
        super().folder(path)

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.calls]


def batch_count(block_sizes: list[int]) -> int:
    """How many batches the blockstore's bounds cut an add of these blocks into."""
    batches = held = count = 0
    for size in block_sizes:
        held, count = held + size, count + 1
        if held >= blockstore.ADD_BATCH_BYTES or count >= blockstore.BATCH_BLOCKS:
            batches, held, count = batches + 1, 0, 0
    return batches + (1 if count else 0)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ipfs_mcp.server.cli", *args],
                          capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.parametrize("use_syncfs", [True, False], ids=["syncfs", "per-file"])
def test_an_add_syncs_once_per_batch_and_pins_after_the_last(
        tmp_path: Path, use_syncfs: bool) -> None:
    size = 40 << 20
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(size))
    sync = NotingSync(use_syncfs=use_syncfs)
    backend = HFCacheBackend(Repo(tmp_path / "repo", sync=sync))
    sync.calls.clear()

    result = backend.add_path(data)

    leaves = size // CHUNK
    kinds = sync.kinds()
    batches = batch_count([len(unixfs.file_leaf(bytes(CHUNK)))] * leaves + [1])  # and root
    assert batches == 2  # 32 MiB, then the rest: two syncs of blocks for 40 MiB
    # Each batch's files synced before its renames; the renames synced by the next batch's
    # syncfs, or by their own folders sync without one; the last ones before the pin, which
    # then syncs its file and its folder.
    per_batch = ["files"] if sync.whole_file_system else ["files", "folders"]
    tail = ["folders"] if sync.whole_file_system else []
    assert kinds == per_batch * batches + tail + ["file", "folder"], kinds
    synced = [p for kind, paths in sync.calls if kind == "files" for p in paths]
    stored = list(backend.repo.blocks.iter_multihashes())
    assert len(stored) == leaves + 1  # 160 leaves and their root
    # Each block's temp file was handed to a batch sync exactly once before its rename.
    assert len(synced) == len(set(synced)) == len(stored)
    if sync.whole_file_system:
        assert len(kinds) == batches + 3 < len(stored) / 10
    assert sync.calls[-1] == ("folder", [backend.repo.pins.dir / "recursive"])
    assert not any(backend.repo.blocks.tmp_dir.iterdir())
    assert result.root == Importer().add_path(data).root
    assert backend.repo.verify().ok


def test_an_add_that_fails_mid_batch_leaves_no_temp_file_and_no_pin(tmp_path: Path) -> None:
    class Failing(io.RawIOBase):
        """Random bytes that stop with an error after ``limit`` of them."""

        def __init__(self, limit: int) -> None:
            self.left = limit

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
            if self.left <= 0:
                raise OSError("the source went away")
            n = min(len(buffer), self.left)
            buffer[:n] = os.urandom(n)
            self.left -= n
            return n

    sync = NotingSync()
    backend = HFCacheBackend(Repo(tmp_path / "repo", sync=sync))
    with pytest.raises(OSError, match="went away"):
        # one batch and a half: the first is committed, the second is open
        backend.add_stream(Failing(blockstore.ADD_BATCH_BYTES * 3 // 2))  # type: ignore[arg-type]
    repo = Repo(tmp_path / "repo")
    assert list(repo.pins) == []
    assert not any(repo.blocks.tmp_dir.iterdir())  # the open batch's temp files are gone
    committed = blockstore.ADD_BATCH_BYTES // CHUNK
    assert len(list(repo.blocks.iter_multihashes())) == committed  # whole, and garbage
    assert repo.verify().ok
    assert repo.gc().removed == committed


def _has_entry(folder: Path) -> bool:
    try:
        with os.scandir(folder) as entries:
            return any(True for _ in entries)
    except FileNotFoundError:
        return False


def _has_block(blocks: Path) -> bool:
    """A block stored under its final name: a shard folder is made just before the first
    rename into it, so a folder alone does not yet hold a block."""
    try:
        with os.scandir(blocks) as shards:
            return any(shard.is_dir() and _has_entry(Path(shard.path)) for shard in shards)
    except FileNotFoundError:
        return False


def test_kill_9_in_the_middle_of_a_batch_of_ipfs_mcp_add(
        isolated_hf_home: Path, tmp_path: Path) -> None:
    data = tmp_path / "big.bin"
    data.write_bytes(os.urandom(160 << 20))
    repo_path = isolated_hf_home / "ipfs"
    blocks, tmp = repo_path / "blocks", repo_path / "tmp"
    with subprocess.Popen([sys.executable, "-m", "ipfs_mcp.server.cli", "add", "-Q",
                           str(data)], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL) as proc:
        try:
            # Blocks appear under their final names only when a batch is renamed into place;
            # temp files are the batch being written. Both at once: a batch is in place, the
            # next in flight.
            deadline = time.monotonic() + DEADLINE
            while not (_has_block(blocks) and _has_entry(tmp)):
                assert proc.poll() is None, "the add ended before a batch was seen in flight"
                assert time.monotonic() < deadline, "no batch was seen in flight"
                time.sleep(0.001)  # a polling interval; nothing is asserted on time
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
        assert proc.stdout is not None
        assert proc.stdout.read() == b""  # nothing was reported added
    leftovers = [p.name for p in tmp.iterdir()]
    assert leftovers and all(name.endswith(".tmp") for name in leftovers)

    checked = cli("repo", "verify")  # every block rehashed: none torn under its final name
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "0 missing, 0 corrupt" in checked.stdout
    repo = Repo(repo_path)
    for pin in repo.pins:  # no pin names a missing block (the add was killed before its pin)
        assert repo.blocks.has(pin.cid)
    assert list(repo.pins) == []
    assert repo.stat().blocks > 0  # batches already durable stay, as garbage until pinned

    again = cli("add", "-Q", str(data))
    assert again.returncode == 0, again.stderr
    expected = cid_str(Importer(options=ImportOptions()).add_path(data).root)
    assert again.stdout.strip() == expected
    repo = Repo(repo_path)
    assert [cid_str(p.cid) for p in repo.pins] == [expected]
    assert repo.verify().ok
    repo.blocks.clean_tmp(stale_after=0)  # the killed batch's temp files are garbage
    assert not any(repo.blocks.tmp_dir.iterdir())
