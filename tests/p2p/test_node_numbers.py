"""The node's numbers after a real two-node fetch over bitswap: each one moved as it should.

Bytes retrieved are the content's block bytes, per provider and in total; the fetch and the
provider's successes are counted; a lookup for a CID nobody has is a failed discovery; and
the bandwidth counted at the connections (below noise and yamux) is at least the block
bytes, in on the fetcher and out on the server.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from ipfs_mcp.backends.core.cids import cid_of_block
from ipfs_mcp.backends.core.dag import walk
from ipfs_mcp.backends.errors import NetworkError

from .nodes import add_bytes, node_at, repo_at

pytestmark = pytest.mark.anyio


async def test_a_two_node_fetch_moves_every_number(tmp_path: Path) -> None:
    source = repo_at(tmp_path / "a")
    root = add_bytes(source, os.urandom(3 * 262144 + 4321))  # four leaves and a root
    blocks = [block for _, block in walk(root, source.blocks.get)]
    block_bytes = sum(len(b) for b in blocks)
    with trio.fail_after(60):
        async with node_at(tmp_path / "a") as a, node_at(tmp_path / "b") as b:
            before_a, before_b = a.stats(), b.stats()
            assert before_b.handled == 0 and before_b.bytes_retrieved == 0
            assert before_b.success_rate is None and before_b.average_retrieval_time is None
            await b.connect_peer(a.addrs[0])
            report = await b.fetch_dag(root, providers=[a.peer_id])
            assert report.fetched == len(blocks) == 5

            after = b.stats()
            assert after.cache_misses == 1 and after.handled == 1 and after.failed == 0
            assert after.success_rate == 1.0
            assert after.average_retrieval_time is not None and after.average_retrieval_time > 0
            assert after.bytes_retrieved == block_bytes
            (provider,) = [p for p in after.peers if p.peer_id == a.peer_id]
            assert provider.blocks_received == len(blocks)
            assert provider.bytes_received == block_bytes
            assert provider.successes == len(blocks) and provider.failures == 0
            assert provider.success_rate == 1.0
            assert provider.latency is not None and provider.latency > 0

            served = a.stats()
            (client,) = [p for p in served.peers if p.peer_id == b.peer_id]
            assert client.blocks_sent == len(blocks) and client.bytes_sent == block_bytes

            # Counted on the connections, every protocol and every frame: at least the
            # block bytes, and more than bitswap's own message bytes.
            assert after.bandwidth.total_in - before_b.bandwidth.total_in >= block_bytes
            assert served.bandwidth.total_out - before_a.bandwidth.total_out >= block_bytes
            assert after.bandwidth.total_in > after.bytes_received_total
            assert served.bandwidth.total_out > served.bytes_sent_total
            assert after.bandwidth.rate_in > 0 and served.bandwidth.rate_out > 0

            nobody_has = cid_of_block(os.urandom(64))
            try:
                found = await b.find_providers(nobody_has, timeout=5)
            except NetworkError:  # a lookup that times out is a failed discovery too
                pass
            else:
                assert found == []
            assert b.stats().failed_discoveries == after.failed_discoveries + 1
