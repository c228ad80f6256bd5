"""A block that arrives but cannot be stored (the disk is full) fails the fetch with the
error tree's DiskFull at once: not a BlockNotFound, not a wait for the timeout, and not an
error that escapes the engine's stream handler.

Two real nodes on 127.0.0.1; the fetcher's blockstore is on a small tmpfs that another
writer has filled.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
import trio

from ipfs_mcp.backends.errors import DiskFull
from ipfs_mcp.backends.repo.blockstore import Blockstore
from tests.conftest import fill_disk

from .nodes import PATIENT, add_bytes, node_at, repo_at

pytestmark = pytest.mark.anyio
# The fetcher's wants and fetches never time out within the test (and the test's bound is
# far below them), so the fetch can only end by the DiskFull its block raised.
PATIENT_FETCH = replace(PATIENT, fetch_block_timeout=3600.0)
DEADLINE = 60


async def test_a_block_that_cannot_be_stored_fails_the_fetch_as_disk_full(
        tmp_path: Path, small_disk: Path) -> None:
    a_repo = repo_at(tmp_path / "a")
    root = add_bytes(a_repo, os.urandom(600_000))
    full = Blockstore(small_disk / "blocks", fsync=False)
    filler = fill_disk(small_disk)
    with trio.fail_after(DEADLINE):
        async with node_at(tmp_path / "a", blockstore=a_repo.blocks) as a, \
                node_at(tmp_path / "b", PATIENT_FETCH, blockstore=full) as b:
            await b.connect_peer(a.addrs[0])
            with pytest.raises(DiskFull):
                await b.fetch_block(root)
            filler.unlink()  # space again: the same node fetches it now
            assert await b.fetch_block(root) == a_repo.blocks.get(root)
    assert full.has(root)
