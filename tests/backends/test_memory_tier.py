"""The memory tier in front of the blockstore's disk reads: bounded, hits and misses counted,
admitted on a second read so one pass over a model does not flush the hot blocks."""

from __future__ import annotations

import os
from pathlib import Path

from multiformats import CID

from ipfs_mcp.backends.core.cids import cid_of_block
from ipfs_mcp.backends.repo.repository import Repo

KIB = 1024


def raw_blocks(repo: Repo, count: int, size: int) -> list[CID]:
    cids = []
    for _ in range(count):
        data = os.urandom(size)
        cid = cid_of_block(data, version=1, codec="raw")
        repo.blocks.put(cid, data)
        cids.append(cid)
    return cids


def test_a_block_read_twice_is_then_served_from_memory(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "repo", fsync=False, memory_bytes=256 * KIB)
    (cid,) = raw_blocks(repo, 1, 10 * KIB)
    data = repo.blocks.get(cid)
    repo.blocks.get(cid)  # the second read admits it
    # Gone from disk behind the repo's back: the tier still serves the bytes it verified.
    repo.blocks.path_of(bytes(cid.digest)).unlink()
    assert repo.blocks.get(cid) == data
    stats = repo.tiers().memory
    assert stats is not None
    assert (stats.hits, stats.misses, stats.blocks, stats.bytes) == (1, 2, 1, 10 * KIB)
    assert stats.hit_rate == 1 / 3


def test_one_pass_over_many_blocks_does_not_flush_the_hot_ones(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "repo", fsync=False, memory_bytes=64 * KIB)
    hot = raw_blocks(repo, 4, 8 * KIB)
    scan = raw_blocks(repo, 40, 8 * KIB)  # 320 KiB: five times the tier
    for cid in hot * 2:
        repo.blocks.get(cid)
    for cid in scan:
        repo.blocks.get(cid)  # read once each: none is admitted
    before = repo.tiers().memory
    assert before is not None
    for cid in hot:
        repo.blocks.get(cid)
    after = repo.tiers().memory
    assert after is not None and after.hits - before.hits == len(hot)
    assert after.bytes <= 64 * KIB


def test_the_tier_stays_within_its_bytes_and_drops_least_recent_first(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "repo", fsync=False, memory_bytes=32 * KIB)
    cids = raw_blocks(repo, 6, 8 * KIB)
    for cid in cids * 2:
        repo.blocks.get(cid)
    stats = repo.tiers().memory
    assert stats is not None and stats.bytes == 32 * KIB and stats.blocks == 4
    hits = stats.hits
    repo.blocks.get(cids[-1])  # kept: among the last four admitted
    repo.blocks.get(cids[0])  # dropped: the first admitted
    stats = repo.tiers().memory
    assert stats is not None and stats.hits == hits + 1


def test_gc_drops_collected_blocks_from_memory_too(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "repo", fsync=False, memory_bytes=64 * KIB)
    (cid,) = raw_blocks(repo, 1, 8 * KIB)
    repo.blocks.get(cid)
    repo.blocks.get(cid)
    assert repo.gc().removed == 1
    stats = repo.tiers().memory
    assert stats is not None and stats.blocks == 0 and not repo.blocks.has(cid)


def test_no_tier_when_its_size_is_zero(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "repo", fsync=False)
    assert repo.blocks.memory is None and repo.tiers().memory is None
