"""Replication on a real 3-peer IPFS Cluster 1.1.6 (each peer with its own Kubo 0.43), as
``ipfs-cluster-ctl add --rmin/--rmax`` does it: the factors and the name go with the add,
so the blocks reach the chosen peers only; a later pin keeps them; the pinset says when
each pin was added and how big it is."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.remote.cluster import ClusterBackend
from ipfs_mcp.server.app import build_server
from ipfs_mcp.server.config import ServerSettings
from ipfs_mcp.tools import models

from .cluster import Cluster, ClusterPeer


@pytest.fixture
def cluster(cluster3: Cluster) -> Iterator[ClusterBackend]:
    first = cluster3.peers[0]
    backend = ClusterBackend.connect(first.rest_url, kubo_api=first.proxy_url, timeout=60)
    try:
        yield backend
    finally:
        backend.close()


def _local_refs(peer: ClusterPeer) -> set[str]:
    """Every block the peer's Kubo holds (``refs local``: multihashes as CIDv1 raw)."""
    answer = peer.kubo.rpc("refs/local")
    records = answer if isinstance(answer, list) else [answer]
    return {str(r["Ref"]) for r in records if isinstance(r, dict) and r.get("Ref")}


def _dag_blocks(peer: ClusterPeer, root: str) -> set[str]:
    """The root and every block under it, as the holder's Kubo lists them offline, in
    ``refs local``'s form (the same multihash as a CIDv1 raw)."""
    answer = peer.kubo.rpc("refs", arg=root, recursive=True, unique=True, offline=True)
    refs = [str(r["Ref"]) for r in (answer if isinstance(answer, list) else [answer])
            if isinstance(r, dict) and r.get("Ref")]
    converted = peer.kubo.rpc("cid/format", arg=[root, *refs], v="1", mc="raw", b="base32")
    out = converted if isinstance(converted, list) else [converted]
    return {str(r["Formatted"]) for r in out if isinstance(r, dict) and r.get("Formatted")}


def _holders(cluster3: Cluster, backend: ClusterBackend, cid: str) -> list[ClusterPeer]:
    pinned = set(backend.pin_status(cid)[0].pinned_on())
    return [p for p in cluster3.peers if p.peer_id in pinned]


def _env(peer: ClusterPeer, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPFS_")}
    env.update(HF_HOME=str(home), IPFS_BACKEND="cluster", IPFS_CLUSTER_API=peer.rest_url,
               IPFS_API=peer.proxy_url)
    return env


@pytest.mark.anyio
async def test_store_model_with_replication_2_never_sends_a_block_to_the_third_peer(
        cluster3: Cluster, cluster: ClusterBackend, tmp_path: Path) -> None:
    folder = tmp_path / "work" / "model"
    folder.mkdir(parents=True)
    (folder / "weights.bin").write_bytes(os.urandom(900_000))  # four chunks and a root
    (folder / "config.json").write_bytes(b'{"layers": 2}\n')
    settings = ServerSettings.load(_env(cluster3.peers[0], tmp_path / "home"),
                                   allow_roots=[str(tmp_path / "work")])
    with anyio.fail_after(120):
        async with Client(build_server(settings), mode="auto") as client:
            stored = await client.call_tool("store_model", {
                "source": str(folder), "announce": False,
                "replication_min": 2, "replication_max": 2})
            assert not stored.is_error, stored.content
            root = models.StoreResult.model_validate(stored.structured_content).root_cid
            added = await client.call_tool("add_content", {
                "text": "one copy " + os.urandom(8).hex(), "name": "single",
                "replication_min": 1, "replication_max": 1})
            assert not added.is_error, added.content
            single = str(added.structured_content["cid"])

    for cid, copies in ((root, 2), (single, 1)):
        holders = _holders(cluster3, cluster, cid)
        assert len(holders) == copies
        blocks = _dag_blocks(holders[0], cid)
        assert len(blocks) >= (7 if cid == root else 1)
        for peer in cluster3.peers:
            held = blocks & _local_refs(peer)
            if peer in holders:
                assert held == blocks, f"{peer.name} holds {len(held)} of {len(blocks)}"
            else:  # not even the peer whose REST API took the add
                assert not held, f"{peer.name} got {len(held)} blocks of {cid}"
        allocation = cluster.allocation(cid)
        assert allocation is not None
        assert (allocation["replication_factor_min"],
                allocation["replication_factor_max"]) == (copies, copies)
    assert cluster.allocation(root)["name"] == str(folder)  # type: ignore[index]
    assert cluster.allocation(single)["name"] == "single"  # type: ignore[index]


def _options(allocation: dict[str, Any] | None) -> tuple[str, int, int]:
    assert allocation is not None
    return (allocation["name"], allocation["replication_factor_min"],
            allocation["replication_factor_max"])


def test_a_later_pin_keeps_the_name_and_factors_it_is_not_given(
        cluster: ClusterBackend) -> None:
    cid = cluster.add_bytes(os.urandom(5000), name="kept", replication_min=2,
                            replication_max=2)
    cluster.pin(cid)  # plain: as the pin tool and the seed API's pin(cid) call it
    assert _options(cluster.allocation(cid)) == ("kept", 2, 2)
    assert len(cluster.pin_status(cid)[0].pinned_on()) == 2

    cluster.pin(cid, name="renamed")  # a new name only: the factors stay
    assert _options(cluster.allocation(cid)) == ("renamed", 2, 2)
    cluster.pin(cid, replication_min=3)  # a minimum above the kept maximum raises it
    assert _options(cluster.allocation(cid)) == ("renamed", 3, 3)
    assert len(cluster.pin_status(cid)[0].pinned_on()) == 3


@pytest.mark.anyio
async def test_the_pin_tool_takes_a_name_and_a_plain_pin_keeps_it(
        cluster3: Cluster, cluster: ClusterBackend, tmp_path: Path) -> None:
    cid = cluster.add_bytes(os.urandom(3000), pin=False)
    settings = ServerSettings.load(_env(cluster3.peers[0], tmp_path / "home"))
    with anyio.fail_after(120):
        async with Client(build_server(settings), mode="auto") as client:
            named = await client.call_tool("pin", {"cid": cid, "name": "by the tool",
                                                   "replication_min": 2,
                                                   "replication_max": 2})
            assert not named.is_error, named.content
            again = await client.call_tool("pin", {"cid": cid})
            assert not again.is_error, again.content
            listed = await client.call_tool("list_pins", {"name_contains": "by the tool"})
    assert _options(cluster.allocation(cid)) == ("by the tool", 2, 2)
    assert [p["cid"] for p in listed.structured_content["pins"]] == [cid]


def test_list_pins_says_when_each_pin_was_added_and_its_size(cluster3: Cluster,
                                                              cluster: ClusterBackend) -> None:
    before = time.time()
    data = os.urandom(600_000)
    cid = cluster.add_bytes(data, name="dated", replication_min=3, replication_max=3)
    after = time.time()
    pin = {cid_str(p.cid): p for p in cluster.pins()}[cid]
    # The cluster stamps whole seconds; the pin was made between the two readings.
    assert int(before) <= pin.created <= after + 1
    cumulative = cluster3.peers[0].kubo.rpc("files/stat", arg=f"/ipfs/{cid}")
    assert pin.size == cumulative["CumulativeSize"] > len(data)
