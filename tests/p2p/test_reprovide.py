"""Content added by any path is provided when the node runs: the pinned roots are
reprovided at start (and periodically), per the role's policy, as Kubo's Reprovider.

Here the content is added and pinned with the repo alone, no node running (as the CLI
does); node A then starts on that repo, and B, knowing only A as its DHT peer, finds A as
the provider.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from ipfs_mcp.p2p import Role

from .nodes import add_bytes, config, node_at, repo_at

pytestmark = pytest.mark.anyio


async def test_content_pinned_with_no_node_running_is_provided_when_the_node_starts(
        tmp_path: Path) -> None:
    repo = repo_at(tmp_path / "a")
    pinned = add_bytes(repo, os.urandom(2 * 262144 + 99))
    repo.pin(pinned)
    unpinned = add_bytes(repo, os.urandom(1000))  # held but not pinned: not reprovided
    with trio.fail_after(60):
        async with node_at(tmp_path / "a", config(role=Role.WORKER)) as a:
            done = a.providing.reprovided
            if a.stats().reprovide_rounds == 0:
                await done.wait()
            assert a.stats().reprovided == 1  # worker: the root only
            async with node_at(tmp_path / "b", config(role=Role.LEECHER,
                                                      bootstrap=(a.addrs[0],))) as b:
                await b.wait_for_peer(a.peer_id)
                found = await b.find_providers(pinned)
                assert [p.peer_id for p in found] == [a.peer_id]
                assert await b.find_providers(unpinned, timeout=5) == []


async def test_a_master_reprovides_every_block_and_a_leecher_nothing(tmp_path: Path) -> None:
    repo = repo_at(tmp_path / "a")
    root = add_bytes(repo, os.urandom(2 * 262144 + 99))  # three leaves and a root
    repo.pin(root)
    with trio.fail_after(60):
        for role, expected in ((Role.MASTER, 4), (Role.LEECHER, 0)):
            async with node_at(tmp_path / "a", config(role=role)) as a:
                done = a.providing.reprovided
                if a.stats().reprovide_rounds == 0:
                    await done.wait()
                assert a.stats().reprovided == expected


async def test_a_round_run_with_no_dht_peer_is_run_again_when_one_appears(
        tmp_path: Path) -> None:
    """A starts alone, so its first round can only keep the record itself; once B is in its
    routing table the next round puts the record on B, where C finds it after A is gone."""
    repo = repo_at(tmp_path / "a")
    pinned = add_bytes(repo, os.urandom(5000))
    repo.pin(pinned)
    with trio.fail_after(60):
        async with node_at(tmp_path / "b", config(role=Role.MASTER)) as b:
            async with node_at(tmp_path / "a", config(role=Role.WORKER)) as a:
                first = a.providing.reprovided
                if a.stats().reprovide_rounds == 0:
                    await first.wait()
                assert a.stats().reprovide_rounds == 1
                again = a.providing.reprovided
                await a.connect_peer(b.addrs[0])
                await again.wait()
                assert a.stats().reprovide_rounds == 2 and a.stats().reprovided == 2
                gone = a.peer_id
            async with node_at(tmp_path / "c", config(role=Role.LEECHER,
                                                      bootstrap=(b.addrs[0],))) as c:
                await c.wait_for_peer(b.peer_id)
                found = await c.find_providers(pinned)
                assert [p.peer_id for p in found] == [gone]
