"""A DAG fetched over bitswap pays for durability per batch, as a CAR stream does, and is
whole, durable and in place when the fetch returns.

Two real nodes on 127.0.0.1 (neither serves HTTP, so the fetch is bitswap's); the fetcher's
blockstore notes every sync it is asked for (the real DiskSync underneath).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from pathlib import Path

import pytest
import trio

from ipfs_mcp.backends.core.cids import cid_of_block
from ipfs_mcp.backends.core.dag import walk
from ipfs_mcp.backends.errors import DiskFull, IpfsMcpError
from ipfs_mcp.backends.repo.blockstore import Blockstore
from ipfs_mcp.p2p.bitswap.receive_batches import ReceiveBatches
from tests.backends.test_batched_durability import NotingSync
from tests.conftest import fill_disk

from .nodes import PATIENT, add_bytes, node_at, repo_at

pytestmark = pytest.mark.anyio
SIZE = 12 << 20  # 48 blocks of 256 KiB and their parents
DEADLINE = 120


async def test_a_dag_fetched_over_bitswap_syncs_per_batch_and_is_durable_on_return(
        tmp_path: Path) -> None:
    a_repo = repo_at(tmp_path / "a")
    root = add_bytes(a_repo, os.urandom(SIZE))
    blocks = list(walk(root, a_repo.blocks.get))
    sync = NotingSync()
    fetcher = Blockstore(tmp_path / "b-blocks", sync=sync)
    with trio.fail_after(DEADLINE):
        async with node_at(tmp_path / "a", blockstore=a_repo.blocks) as a, \
                node_at(tmp_path / "b", PATIENT, blockstore=fetcher) as b:
            await b.connect_peer(a.addrs[0])
            report = await b.fetch_dag(root)
            # On return, before the node stops: every block in place, none left in tmp/.
            assert [(cid, fetcher.get(cid)) for cid, _ in blocks] == blocks
            assert not any(fetcher.tmp_dir.iterdir())
            assert report.fetched == len(blocks)
            assert b.bitswap.ledger(a.peer_id).blocks_received == len(blocks)
    kinds = sync.kinds()
    # Before, each block was synced on its own (a "file" and its "folder" each).
    assert "file" not in kinds and "folder" not in kinds, kinds
    batches = kinds.count("files")
    assert 1 <= batches < len(blocks) / 10
    synced = [p for kind, paths in sync.calls if kind == "files" for p in paths]
    assert len(synced) == len(set(synced)) == len(blocks)  # each temp file synced once


async def test_a_dag_fetch_onto_a_full_disk_fails_as_disk_full_and_resumes_after(
        tmp_path: Path, small_disk: Path) -> None:
    a_repo = repo_at(tmp_path / "a")
    root = add_bytes(a_repo, os.urandom(3 << 20))
    blocks = list(walk(root, a_repo.blocks.get))
    full = Blockstore(small_disk / "blocks", fsync=False)
    filler = fill_disk(small_disk)
    with trio.fail_after(DEADLINE):
        async with node_at(tmp_path / "a", blockstore=a_repo.blocks) as a, \
                node_at(tmp_path / "b", PATIENT, blockstore=full) as b:
            await b.connect_peer(a.addrs[0])
            with pytest.raises(DiskFull):
                await b.fetch_dag(root)
            filler.unlink()  # space again: the same node fetches the rest now
            await b.fetch_dag(root)
            assert all(full.get(cid) == data for cid, data in blocks)


class FailingSync(NotingSync):
    """The real DiskSync, except that syncing a batch's files fails as a dying disk's would:
    an I/O error is not something a test can cause on a healthy disk."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = False

    def files(self, paths: Iterable[Path], anchor: Path) -> None:
        if self.failing:
            raise OSError(errno.EIO, "Input/output error")
        super().files(paths, anchor)


def test_received_blocks_are_seen_once_settled_and_a_failed_commit_fails_the_fetches_open(
        tmp_path: Path) -> None:
    sync = FailingSync()
    store = Blockstore(tmp_path / "repo", sync=sync)
    batches = ReceiveBatches(store)
    first = [os.urandom(70_000) for _ in range(3)]
    for data in first:
        batches.put(cid_of_block(data), data)
    assert not any(store.has(cid_of_block(d)) for d in first)  # in tmp/, not yet in place
    before = batches.mark()
    batches.settle(since=before)
    assert all(store.get(cid_of_block(d)) == d for d in first)
    batches.settle()  # nothing open: nothing to do

    running = batches.mark()  # a fetch that runs while the next commit fails
    data = os.urandom(70_000)
    batches.put(cid_of_block(data), data)
    sync.failing = True
    with pytest.raises(IpfsMcpError):
        batches.settle()
    sync.failing = False
    with pytest.raises(IpfsMcpError):
        batches.settle(since=running)  # its block may have been in that batch
    batches.settle(since=batches.mark())  # a fetch that began after it is not failed
    later = os.urandom(70_000)
    batches.put(cid_of_block(later), later)
    batches.settle(since=batches.mark())
    assert store.get(cid_of_block(later)) == later
