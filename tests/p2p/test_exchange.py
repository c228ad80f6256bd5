"""Our nodes exchanging real content over real libp2p hosts on 127.0.0.1."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest
import trio
import trio.testing

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.core.dag import walk
from ipfs_mcp.backends.core.exporter import Exporter
from ipfs_mcp.backends.errors import BlockNotFound
from ipfs_mcp.p2p import Role

from .nodes import add_bytes, add_path, config, make_tree, node_at, repo_at

pytestmark = pytest.mark.anyio


def read_file(node_blocks: object, cid: object) -> bytes:
    return Exporter(node_blocks.get).read(cid)  # type: ignore[attr-defined]


def same_dag(src: object, dst: object, root: object) -> int:
    """Every block of ``root`` in ``src`` is in ``dst`` with identical bytes."""
    n = 0
    for cid, block in walk(root, src.get):  # type: ignore[attr-defined]
        assert dst.get(cid) == block  # type: ignore[attr-defined]
        n += 1
    return n


async def test_three_nodes_find_provider_in_dht_and_fetch(tmp_path: Path) -> None:
    """A adds and announces; C, connected only to B, finds A through the DHT and fetches."""
    data = os.urandom(3 * 262144 + 12345)  # 4 leaves and a root: multi-block
    tree = make_tree(tmp_path / "tree")
    with trio.fail_after(60):
        async with node_at(tmp_path / "b", config(role=Role.MASTER)) as b, \
                node_at(tmp_path / "a", config(role=Role.WORKER)) as a, \
                node_at(tmp_path / "c", config(role=Role.LEECHER)) as c:
            file_cid = add_bytes(repo_at(tmp_path / "a"), data)
            dir_cid = add_path(repo_at(tmp_path / "a"), tree)
            await a.connect_peer(b.addrs[0])
            await c.connect_peer(b.addrs[0])
            assert a.routing.routing_table_size() >= 1
            assert await a.announce_content(file_cid) == 1  # worker: roots only
            assert await a.announce_content(dir_cid, recursive=True) > 5

            assert a.peer_id not in {str(p) for p in c.connected_peers()}
            providers = await c.find_providers(file_cid)
            assert [p.peer_id for p in providers] == [a.peer_id]

            report = await c.retrieve_content(file_cid)
            assert report.fetched == report.blocks == 5
            assert report.by_peer == {a.peer_id: 5}
            dir_report = await c.retrieve_content(dir_cid)
            assert dir_report.fetched == dir_report.blocks

            stats = c.stats()
            assert stats.cache_misses == stats.handled == 2
            assert stats.announced == 0  # a leecher announces nothing

            # A master that fetches announces every block, in the background.
            await b.retrieve_content(file_cid)
            with trio.fail_after(20):
                while b.stats().announced < 5:
                    await trio.testing.wait_all_tasks_blocked(0.01)
            found = await c.find_providers(report.root)
            assert {p.peer_id for p in found} == {a.peer_id, b.peer_id}
            assert stats.dht_mode == "client" and b.stats().dht_mode == "server"
            a_stat = next(p for p in stats.peers if p.peer_id == a.peer_id)
            assert a_stat.blocks_received == report.blocks + dir_report.blocks
            assert a_stat.agent and a_stat.reputation > 0.3

    a_blocks, c_blocks = repo_at(tmp_path / "a").blocks, repo_at(tmp_path / "c").blocks
    assert read_file(c_blocks, file_cid) == data
    assert same_dag(a_blocks, c_blocks, dir_cid) == dir_report.blocks
    exported = tmp_path / "out"
    Exporter(c_blocks.get).get_to_path(dir_cid, exported)
    for path in tree.rglob("*"):
        twin = exported / path.relative_to(tree)
        assert twin.is_dir() if path.is_dir() else twin.read_bytes() == path.read_bytes()
    assert repo_at(tmp_path / "c").verify().ok


async def test_cidv1_raw_leaves_and_block_fetch(tmp_path: Path) -> None:
    data = os.urandom(2 * 262144 + 1)
    with trio.fail_after(30):
        async with node_at(tmp_path / "a") as a, node_at(tmp_path / "b") as b:
            root = add_bytes(repo_at(tmp_path / "a"), data, cid_version=1)
            await b.connect_peer(a.addrs[0])
            block = await b.retrieve_block(root)
            assert block == repo_at(tmp_path / "a").blocks.get(root)
            await b.retrieve_content(cid_str(root))
    assert read_file(repo_at(tmp_path / "b").blocks, root) == data


async def test_fetcher_bridges_worker_threads_to_the_node(tmp_path: Path) -> None:
    """The router calls BlockFetcher from worker threads; the node's loop does the work."""
    data = os.urandom(700_000)
    with trio.fail_after(30):
        async with node_at(tmp_path / "a") as a, node_at(tmp_path / "b") as b:
            root = add_bytes(repo_at(tmp_path / "a"), data)
            await b.connect_peer(a.addrs[0])
            from ipfs_mcp.backends.fetcher import BlockFetcher

            fetcher: BlockFetcher = b.fetcher()  # the protocol the router is typed against
            block = await anyio.to_thread.run_sync(fetcher.fetch_block, root)
            assert block == repo_at(tmp_path / "a").blocks.get(root)
            await anyio.to_thread.run_sync(fetcher.fetch_dag, root)
            missing = add_bytes(repo_at(tmp_path / "elsewhere"), b"nobody has this")
            with pytest.raises(BlockNotFound):
                await anyio.to_thread.run_sync(fetcher.fetch_block, missing)
    assert read_file(repo_at(tmp_path / "b").blocks, root) == data


async def test_missing_block_is_block_not_found(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with node_at(tmp_path / "a") as a, node_at(tmp_path / "b") as b:
            await b.connect_peer(a.addrs[0])
            missing = add_bytes(repo_at(tmp_path / "x"), b"absent everywhere")
            with pytest.raises(BlockNotFound) as info:
                await b.retrieve_content(missing)
            assert "DONT_HAVE" in str(info.value)
            assert b.stats().failed == 1


async def test_wants_are_spread_over_several_providers(tmp_path: Path) -> None:
    data = os.urandom(12 * 262144)
    root = add_bytes(repo_at(tmp_path / "p1"), data)
    add_bytes(repo_at(tmp_path / "p2"), data)
    with trio.fail_after(30):
        async with node_at(tmp_path / "p1") as p1, node_at(tmp_path / "p2") as p2, \
                node_at(tmp_path / "f") as fetcher:
            await fetcher.connect_peer(p1.addrs[0])
            await fetcher.connect_peer(p2.addrs[0])
            report = await fetcher.retrieve_content(root)
            assert set(report.by_peer) == {p1.peer_id, p2.peer_id}
            assert sum(report.by_peer.values()) == report.fetched == 13
            for peer in (p1, p2):
                assert fetcher.reputation.record(peer.peer_id).successes >= 1
    assert read_file(repo_at(tmp_path / "f").blocks, root) == data
