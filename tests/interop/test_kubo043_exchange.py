"""Bitswap and the DHT between our node and a real Kubo 0.43 daemon, both ways, CIDv0 and v1.

Kubo keeps peers on 127.0.0.1 in its LAN DHT (``/ipfs/lan/kad/1.0.0``, the Amino messages
under another id; ``Routing.LoopbackAddressesOnLanDHT=true``); our DHT servers answer on
that id too, which is what lets Kubo find what we announce and announce to us.

Our node runs on the trio loop; Kubo's calls block, so they run in worker threads.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import anyio
import pytest
import trio
from p2p.nodes import FAST, add_bytes, add_path, make_tree, node_at, repo_at

from ipfs_mcp.backends.core.cids import cid_str, parse_cid
from ipfs_mcp.backends.core.exporter import Exporter

from .kubo_daemon import KuboDaemon
from .trees import same_tree

pytestmark = pytest.mark.anyio

SIZE = 3 * 262144 + 4321  # four leaves under a root with Kubo's defaults


async def run(fn: Callable[[], object]) -> object:
    return await anyio.to_thread.run_sync(fn)


async def test_kubo_fetches_from_us_over_bitswap(kubo043_factory: Callable[..., KuboDaemon],
                                                 tmp_path: Path) -> None:
    data = os.urandom(SIZE)
    repo = repo_at(tmp_path / "n")
    v0 = cid_str(add_bytes(repo, data, cid_version=0))
    v1 = cid_str(add_bytes(repo, data[:-5], cid_version=1))  # raw leaves
    tree = make_tree(tmp_path / "tree")
    tree_cid = cid_str(add_path(repo, tree, cid_version=1))
    with trio.fail_after(120):
        async with node_at(tmp_path / "n") as node:
            kubo: KuboDaemon = await run(lambda: kubo043_factory())  # type: ignore[assignment]
            await run(lambda: kubo.connect(node.addrs[0]))
            assert await run(lambda: kubo.cli("cat", "--", v0, timeout=60)) == data
            assert await run(lambda: kubo.cli("cat", "--", v1, timeout=60)) == data[:-5]
            out = tmp_path / "kubo-got"
            await run(lambda: kubo.cli("get", "-o", str(out), "--", tree_cid, timeout=60))
            same_tree(tree, out)
            assert node.peer_stats(kubo.peer_id)[0].blocks_sent >= 10


async def test_we_fetch_from_kubo_over_bitswap(kubo043_factory: Callable[..., KuboDaemon],
                                               tmp_path: Path) -> None:
    data = os.urandom(SIZE)
    with trio.fail_after(120):
        async with node_at(tmp_path / "n") as node:
            kubo: KuboDaemon = await run(lambda: kubo043_factory())  # type: ignore[assignment]
            v0 = await run(lambda: kubo.add_bytes(data))
            v1 = await run(lambda: kubo.add_bytes(data[:-9], "--cid-version=1"))
            await node.connect_peer(kubo.dial_addr)
            for cid, blocks in ((v0, 5), (v1, 5)):
                report = await node.retrieve_content(cid)
                assert report.by_peer == {kubo.peer_id: blocks}
            stat = node.peer_stats(kubo.peer_id)[0]
            assert stat.agent and stat.agent.startswith("kubo/0.43.1")
            assert stat.bitswap_protocol == "/ipfs/bitswap/1.2.0"
    repo = repo_at(tmp_path / "n")  # what the node stored, verified block by block
    assert Exporter(repo.blocks.get).read(parse_cid(v0)) == data
    assert Exporter(repo.blocks.get).read(parse_cid(v1)) == data[:-9]


@pytest.mark.parametrize("version", [0, 1], ids=["cidv0", "cidv1"])
async def test_kubo_finds_what_we_announced_and_gets_it_from_us(
        kubo043_factory: Callable[..., KuboDaemon], tmp_path: Path, version: int) -> None:
    data = os.urandom(SIZE)
    repo = repo_at(tmp_path / "n")
    cid = cid_str(add_bytes(repo, data, cid_version=version))
    with trio.fail_after(120):
        async with node_at(tmp_path / "n") as node:
            # Our node is Kubo's only bootstrap peer and so its whole DHT.
            kubo: KuboDaemon = await run(  # type: ignore[assignment]
                lambda: kubo043_factory(config={"Bootstrap": [node.addrs[0]]}))
            await run(lambda: kubo.wait_for_dht_peer(node.peer_id, table="lan"))
            assert await node.announce_content(cid) >= 1
            providers = await run(lambda: kubo.find_providers(cid, seconds=20))
            assert node.peer_id in providers  # type: ignore[operator]
            out = tmp_path / "from-us"
            await run(lambda: kubo.cli("get", "-o", str(out), "--", cid, timeout=60))
            assert out.read_bytes() == data
            assert node.peer_stats(kubo.peer_id)[0].blocks_sent == 5


@pytest.mark.parametrize("version", [0, 1], ids=["cidv0", "cidv1"])
async def test_our_find_providers_finds_what_only_kubo_provides_through_the_dht(
        kubo043_factory: Callable[..., KuboDaemon], tmp_path: Path, version: int) -> None:
    """Kubo and our node meet only through a third node's DHT: Kubo announces to it, we
    ask it, then dial Kubo because the provider record says where it is."""
    data = os.urandom(SIZE)
    with trio.fail_after(120):
        async with node_at(tmp_path / "rendezvous") as rendezvous:
            kubo: KuboDaemon = await run(  # type: ignore[assignment]
                lambda: kubo043_factory(config={"Bootstrap": [rendezvous.addrs[0]]}))
            await run(lambda: kubo.wait_for_dht_peer(rendezvous.peer_id, table="lan"))
            flags = ["--cid-version=1"] if version else []
            cid = await run(lambda: kubo.add_bytes(data, *flags))
            await run(lambda: kubo.cli("routing", "provide", "--", str(cid), timeout=60))
            cfg = replace(FAST, bootstrap=(rendezvous.addrs[0],))
            async with node_at(tmp_path / "n", cfg) as node:
                await node.wait_for_peer(rendezvous.peer_id, timeout=20)
                assert kubo.peer_id not in [str(p) for p in node.connected_peers()]
                providers = await node.find_providers(str(cid))
                assert [p.peer_id for p in providers] == [kubo.peer_id]
                assert any(str(a).startswith("/ip4/127.0.0.1/tcp/") for a in providers[0].addrs)
                report = await node.retrieve_content(str(cid))
                assert report.by_peer == {kubo.peer_id: 5}
    repo = repo_at(tmp_path / "n")
    assert Exporter(repo.blocks.get).read(parse_cid(str(cid))) == data
