"""The opt-in announcement topic between real nodes on 127.0.0.1: a worker that announces a
root says so on the topic, and a master listening there prefetches it from the worker,
verified as any fetch; a worker hears but does not fetch; a message that is not a CID is
counted and ignored."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from ipfs_mcp.p2p import Role, open_node

from .nodes import add_bytes, config, repo_at

pytestmark = pytest.mark.anyio
TOPIC = "ipfs-mcp/providing"


async def test_a_master_prefetches_what_a_worker_announces(tmp_path: Path) -> None:
    data = os.urandom(700_000)  # a few chunks: a real DAG to walk
    worker_repo = repo_at(tmp_path / "w")
    root = add_bytes(worker_repo, data)
    with trio.fail_after(120):
        async with open_node(worker_repo, config(role=Role.WORKER)) as worker, \
                open_node(repo_at(tmp_path / "m"), config(role=Role.MASTER)) as master, \
                open_node(repo_at(tmp_path / "o"), config(role=Role.WORKER)) as onlooker:
            said = await worker.start_announcements(TOPIC)
            heard = await master.start_announcements(TOPIC)
            other = await onlooker.start_announcements(TOPIC)
            for node in (master, onlooker):
                await node.connect_peer(worker.addrs[0])
                assert node.pubsub is not None and worker.pubsub is not None
                await worker.pubsub.wait_for_topic_peer(TOPIC, node.peer_id)
                await node.pubsub.wait_for_topic_peer(TOPIC, worker.peer_id)

            assert worker.pubsub is not None
            await worker.pubsub.publish(TOPIC, b"not a CID")
            await worker.announce_content(root)
            await heard.wait_settled(1)
            assert (heard.counters.fetched, heard.counters.failed) == (1, 0)
            assert master.blockstore.has(root)
            assert said.counters.said == 1
            assert heard.counters.malformed == 1  # it came before the CID, on one stream
            # The onlooker (a worker) heard the same and fetched nothing.
            assert onlooker.pubsub is not None
            for _ in range(100):  # bounded: each round takes at least one message
                if other.counters.heard:
                    break
                feed = onlooker.pubsub.feed(TOPIC)
                await onlooker.pubsub.wait_for_message(TOPIC, feed.received)
            assert other.counters.heard == 1 and other.counters.fetched == 0
            assert not onlooker.blockstore.has(root)
