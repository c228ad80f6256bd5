"""The opt-in announcement topic between real nodes on 127.0.0.1: a worker that announces a
root says so on the topic, and a master listening there prefetches it from the worker,
verified as any fetch; a worker hears but does not fetch; a message that is not a CID is
counted and ignored; the server's ``--announce-topic`` (off by default) feeds a master."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio
from mcp import Client
from multiformats import CID

from ipfs_mcp.p2p import Role, open_node
from ipfs_mcp.server.app import build_server
from ipfs_mcp.server.config import ServerSettings

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


async def test_the_servers_announce_topic_is_off_by_default_and_feeds_a_master(
        tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_CACHE", "IPFS_MCP_P2P", "IPFS_MCP_ANNOUNCE_TOPIC")}
    env["HF_HOME"] = str(tmp_path / "home")
    assert ServerSettings.load(env).announce_topic is None
    settings = ServerSettings.load(env, announce_topic=TOPIC, role="worker")
    with trio.fail_after(90):
        async with Client(build_server(settings)) as client, \
                open_node(repo_at(tmp_path / "m"), config(role=Role.MASTER)) as master:
            heard = await master.start_announcements(TOPIC)
            stats = await client.call_tool("peer_stats", {})
            server_node = stats.structured_content["network"]
            await master.connect_peer(server_node["listen_addrs"][0])
            assert master.pubsub is not None
            await master.pubsub.wait_for_topic_peer(TOPIC, server_node["peer_id"], timeout=60)
            added = await client.call_tool("add_content", {"text": "a worker's new root"})
            assert not added.is_error, added.content
            # add_content leaves announcing to the agent (store_model announces itself).
            said = await client.call_tool("announce", {"cid": added.structured_content["cid"]})
            assert not said.is_error, said.content
            await heard.wait_settled(1)
            assert heard.counters.fetched == 1
            assert master.blockstore.has(CID.decode(added.structured_content["cid"]))
