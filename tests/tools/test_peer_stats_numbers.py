"""``peer_stats`` shows the node's numbers after a real two-node fetch: success rate,
average retrieval time, bytes retrieved and failed discoveries, per provider and in total,
and bandwidth in and out (totals and rates) counted at the connections."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from ipfs_mcp.backends.core.cids import cid_of_block, cid_str
from ipfs_mcp.backends.core.dag import walk
from ipfs_mcp.backends.errors import NetworkError
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.server.node_network import NodeNetwork
from ipfs_mcp.server.state import NodeSlot
from ipfs_mcp.tools import network
from tests.p2p.nodes import add_bytes, node_at, repo_at

pytestmark = pytest.mark.anyio


async def test_peer_stats_after_a_two_node_fetch(tmp_path: Path, backend: HFCacheBackend
                                                 ) -> None:
    source = repo_at(tmp_path / "a")
    root = add_bytes(source, os.urandom(2 * 262144 + 5))  # three leaves and a root
    block_bytes = sum(len(block) for _, block in walk(root, source.blocks.get))
    with trio.fail_after(60):
        async with node_at(tmp_path / "a") as a, node_at(tmp_path / "b") as b:
            slot = NodeSlot()
            slot.settle(b, "running")
            node = NodeNetwork(slot)
            quiet = (await network.peer_stats(node, backend)).network
            assert quiet is not None
            assert quiet.success_rate is None and quiet.average_retrieval_ms is None
            assert quiet.bytes_retrieved == 0 and quiet.failed_discoveries == 0

            await b.connect_peer(a.addrs[0])
            await b.fetch_dag(root, providers=[a.peer_id])
            fetched = (await network.peer_stats(node, backend)).network
            assert fetched is not None and fetched.failed_discoveries is not None
            try:
                await network.find_providers(node, cid_str(cid_of_block(os.urandom(32))))
            except NetworkError:  # a lookup that timed out is a failed discovery too
                pass
            stats = (await network.peer_stats(node, backend)).network

    assert stats is not None
    assert stats.network_fetches == stats.network_fetches_ok == 1
    assert stats.success_rate == 1.0
    assert stats.average_retrieval_ms is not None and stats.average_retrieval_ms > 0
    assert stats.bytes_retrieved == block_bytes
    # The lookup for a CID nobody has (the fetch may have made its own lookups before).
    assert stats.failed_discoveries == fetched.failed_discoveries + 1
    assert stats.bandwidth_in is not None and stats.bandwidth_in >= block_bytes
    assert stats.bandwidth_out is not None and stats.bandwidth_out > 0
    assert stats.bandwidth_rate_in is not None and stats.bandwidth_rate_in > 0
    (provider,) = [p for p in stats.peers if p.peer_id == a.peer_id]
    assert provider.bytes_received == block_bytes
    assert provider.successes == 4 and provider.failures == 0
    assert provider.success_rate == 1.0
    assert provider.latency_ms is not None and provider.latency_ms > 0
