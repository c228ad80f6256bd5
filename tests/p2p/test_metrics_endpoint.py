"""The Prometheus endpoint over real HTTP on 127.0.0.1 (hypercorn, as the gateway is
served): the exposition parses with prometheus_client's own parser, and its counters move
after a real two-node fetch by exactly what the fetch moved."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import httpx
import pytest
import trio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ipfs_mcp.backends.core.dag import walk
from ipfs_mcp.p2p.stats import NodeStats, PeerStat
from ipfs_mcp.server.gateway import serve_gateway
from ipfs_mcp.server.metrics import (
    MAX_PEER_SERIES,
    PATH,
    NodeCollector,
    metrics_app,
    node_stats,
)
from ipfs_mcp.server.state import NodeSlot

from .nodes import add_bytes, node_at, repo_at

pytestmark = pytest.mark.anyio


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample, keyed by its name and sorted labels."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_the_counters_parse_and_move_after_a_fetch(tmp_path: Path) -> None:
    source = repo_at(tmp_path / "a")
    root = add_bytes(source, os.urandom(2 * 262144 + 777))
    block_bytes = sum(len(block) for _, block in walk(root, source.blocks.get))
    with trio.fail_after(60):
        async with node_at(tmp_path / "a") as a, node_at(tmp_path / "b") as b, \
                anyio.create_task_group() as tg:
            slot = NodeSlot()  # where the server keeps its node
            slot.settle(b, "running")
            (url,) = await tg.start(serve_gateway, metrics_app(node_stats(slot)),
                                    "127.0.0.1", 0)
            async with httpx.AsyncClient(base_url=url, timeout=20) as http:
                assert (await http.get("/metrics")).status_code == 404
                answer = await http.get(PATH)
                assert answer.status_code == 200
                assert answer.headers["content-type"].startswith("text/plain")
                before = samples(answer.text)
                assert before[("ipfs_mcp_node_up", ())] == 1
                assert before[("ipfs_mcp_retrievals_total", (("outcome", "ok"),))] == 0

                await b.connect_peer(a.addrs[0])
                await b.fetch_dag(root, providers=[a.peer_id])
                after = samples((await http.get(PATH)).text)
            tg.cancel_scope.cancel()

    def moved(name: str, *labels: tuple[str, str]) -> float:
        key = (name, tuple(sorted(labels)))
        return after[key] - before.get(key, 0.0)

    assert moved("ipfs_mcp_retrievals_total", ("outcome", "ok")) == 1
    assert moved("ipfs_mcp_retrievals_total", ("outcome", "failed")) == 0
    assert moved("ipfs_mcp_retrieved_bytes_total") == block_bytes
    assert moved("ipfs_mcp_bandwidth_bytes_total", ("direction", "in")) >= block_bytes
    assert moved("ipfs_mcp_bandwidth_bytes_total", ("direction", "out")) > 0
    assert after[("ipfs_mcp_bandwidth_rate_bytes_per_second", (("direction", "in"),))] > 0
    assert after[("ipfs_mcp_peer_block_bytes_total",
                  (("direction", "in"), ("peer", a.peer_id)))] == block_bytes
    assert after[("ipfs_mcp_provider_outcomes_total",
                  (("outcome", "ok"), ("peer", a.peer_id)))] == 4  # three leaves, a root
    assert after[("ipfs_mcp_peers_connected", ())] == 1


async def test_no_node_is_a_scrape_that_says_so() -> None:
    with trio.fail_after(30):
        async with anyio.create_task_group() as tg:
            (url,) = await tg.start(serve_gateway, metrics_app(lambda: None), "127.0.0.1", 0)
            async with httpx.AsyncClient(base_url=url, timeout=20) as http:
                got = samples((await http.get(PATH)).text)
            tg.cancel_scope.cancel()
    assert got == {("ipfs_mcp_node_up", ()): 0}


def test_per_peer_series_are_bounded_to_the_busiest_peers() -> None:
    """A node that met many peers (each one a hostile peer could be) makes at most
    MAX_PEER_SERIES peers' series, the ones that sent it the most bytes."""
    peers = tuple(PeerStat(peer_id=f"peer{n:03}", addrs=(), agent=None, connected=True,
                           bitswap_protocol=None, latency=None, bytes_sent=0,
                           bytes_received=n, blocks_sent=0, blocks_received=1, bad_blocks=0,
                           reputation=0.3)
                  for n in range(MAX_PEER_SERIES * 3))
    stats = NodeStats(peer_id="me", addrs=(), role="worker", dht_mode="server",
                      cache_misses=0, handled=0, failed=0, success_rate=None,
                      bytes_retrieved=0, average_retrieval_time=None, providers_found=0,
                      failed_discoveries=0, announced=0, failed_announcements=0,
                      routing_table_size=0, bytes_sent_total=0, bytes_received_total=0,
                      peers=peers)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(lambda: stats))
    got = samples(generate_latest(registry).decode())
    named = {dict(labels)["peer"] for _, labels in got if dict(labels).get("peer")}
    assert len(named) == MAX_PEER_SERIES
    assert min(named) == f"peer{MAX_PEER_SERIES * 2:03}"  # the busiest ones were kept
