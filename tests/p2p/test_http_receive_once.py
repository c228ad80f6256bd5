"""Between our nodes over HTTP, each block is hashed once and synced with its batch.

A fetch of a file added with Kubo's defaults (CIDv0: every leaf a dag-pb block, which a
walk must read to learn it has no links) into a real blockstore whose verifier counts every
hash it makes and whose :class:`DiskSync` notes every sync. The CAR reader hashes each block
as it arrives (its own verifier); the blockstore then must not hash it again on the way in
(the node's counting store hands it the receive batch), nor read it back afterwards (the
CAR walk already proved the DAG complete), nor sync it on its own.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
import trio

from ipfs_mcp.backends.core.dag import walk
from ipfs_mcp.backends.core.exporter import Exporter
from ipfs_mcp.backends.repo.blockstore import Blockstore
from ipfs_mcp.p2p import open_node
from ipfs_mcp.server.state import PeerCarStreams
from tests.backends.test_batched_durability import NotingSync
from tests.retrieval.test_car_receive_batched import CountingVerifier

from .nodes import add_bytes, config, repo_at
from .test_http_transfer import http_provider

pytestmark = pytest.mark.anyio

SIZE = 6 * 1024 * 1024 + 12345  # 25 dag-pb leaves and a root


async def test_a_dag_from_our_node_is_hashed_once_and_never_read_back(tmp_path: Path) -> None:
    data = os.urandom(SIZE)
    root = add_bytes(repo_at(tmp_path / "a"), data)
    sync = NotingSync()
    verifier = CountingVerifier()
    fetcher = repo_at(tmp_path / "b")
    store = Blockstore(fetcher.path, filestore=fetcher.filestore, sync=sync, verify=verifier)
    streams = PeerCarStreams(store)
    try:
        with trio.fail_after(60):
            async with http_provider(tmp_path / "a") as (a, _), \
                    open_node(fetcher, config(), blockstore=store, http=streams) as b:
                await b.connect_peer(a.addrs[0])
                report = await b.fetch_dag(root)
                assert b.bitswap.ledger(a.host.get_id()).blocks_received == 0
    finally:
        streams.close()

    # Not one hash by the blockstore: the CAR reader's proof was taken on the way in, and
    # nothing was read back to learn that the DAG is whole.
    assert verifier.hashed == Counter()
    assert "file" not in sync.kinds() and "files" in sync.kinds()  # per batch, never alone
    blocks = list(walk(root, repo_at(tmp_path / "a").blocks.get))
    assert report.blocks == report.fetched == len(blocks) > 20
    assert report.bytes_fetched == sum(len(block) for _, block in blocks)
    # The count is not blind: reading the fetched DAG back hashes each block once.
    assert Exporter(store.get).read(root) == data
    assert verifier.hashed == Counter(bytes(cid.digest) for cid, _ in blocks)
