"""Cancelling an MCP tool call that is fetching from peers stops the network work.

At the protocol level: the client cancels its own ``fetch_cid`` / ``pin`` request (the SDK
sends ``notifications/cancelled``); the checks are on what the server's node counted (its
fetch ended cancelled, not failed, and it wants nothing more), on what the provider itself
saw (its wantlist for our node empties, CANCEL entries arrive), and on what is left on our
side: no pin, no partial output file, and a server that goes on answering. The test waits
on those events only; no clock decides whether it passes. A fetch that went on after the
cancellation would never count as cancelled, so the bounded wait for it would fail.

The provider is one of our own nodes with a deliberately slow block source (it serves the
root and one leaf, then holds every further read until the test releases it).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
import trio
from mcp import Client

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.p2p import P2PNode
from ipfs_mcp.server.app import build_server
from ipfs_mcp.server.config import ServerSettings
from ipfs_mcp.server.state import NodeSlot
from ipfs_mcp.tools import models
from tests.p2p.nodes import GatedStore, add_bytes, node_at, repo_at

pytestmark = pytest.mark.anyio

SIZE = 7 * 262144  # seven leaves and a root
TIMEOUT = 60


async def until_wanting(provider: P2PNode, peer: str, at_least: int) -> None:
    while len(provider.bitswap.peer_wantlist(peer)) < at_least:
        await provider.bitswap.changed.wait()


async def until_withdrawn(provider: P2PNode, peer: str) -> None:
    while provider.bitswap.peer_wantlist(peer):
        await provider.bitswap.changed.wait()


async def until_cancelled(node: P2PNode) -> None:
    """Return once a fetch of ``node``'s has ended by cancellation."""
    counters = node.fetching.counters
    while not counters.cancelled:
        await counters.changed.wait()


@asynccontextmanager
async def slow_provider(tmp_path: Path) -> AsyncIterator[tuple[P2PNode, GatedStore, Any, trio.Event]]:
    data = os.urandom(SIZE)
    root = add_bytes(repo_at(tmp_path / "slow"), data)
    served = trio.Event()
    gated = GatedStore(tmp_path / "slow", after=2, served=served)
    async with node_at(tmp_path / "slow", blockstore=gated) as provider:
        try:
            yield provider, gated, root, served
        finally:
            gated.release.set()


def fetcher_settings(tmp_path: Path) -> ServerSettings:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPFS_")}
    env["HF_HOME"] = str(tmp_path / "home")
    (tmp_path / "out").mkdir()
    return ServerSettings.load(env, allow_roots=[str(tmp_path / "out")], role="worker")


@pytest.mark.parametrize("tool", ["fetch_cid", "pin"])
async def test_cancelled_tool_call_withdraws_its_wants_and_leaves_nothing(
        tmp_path: Path, tool: str) -> None:
    slot = NodeSlot()  # the server's node, to read its counters
    with anyio.fail_after(TIMEOUT):
        async with slow_provider(tmp_path) as (provider, gated, root, served), \
                Client(build_server(fetcher_settings(tmp_path), slot=slot),
                       mode="legacy") as client:
            stats = await client.call_tool("peer_stats", {})
            me = models.PeerStatsResult.model_validate(stats.structured_content)
            assert me.network is not None
            connected = await client.call_tool("connect_peer",
                                               {"multiaddr": provider.addrs[0]})
            assert not connected.is_error, connected.content

            out = tmp_path / "out" / "model.bin"
            args = ({"cid": cid_str(root), "output_path": str(out)} if tool == "fetch_cid"
                    else {"cid": cid_str(root)})
            ended = trio.Event()
            outcome: list[object] = []
            async with anyio.create_task_group() as tg:
                scope = anyio.CancelScope()

                async def call() -> None:
                    with scope:
                        outcome.append(await client.call_tool(tool, args))
                    ended.set()

                tg.start_soon(call)
                await served.wait()  # the slow provider is mid-DAG
                await until_wanting(provider, me.network.peer_id, 2)
                scope.cancel()  # the client cancels its request
                await ended.wait()
                node = slot.node
                assert node is not None
                await until_cancelled(node)  # the server's fetch itself ended
                await until_withdrawn(provider, me.network.peer_id)
            assert outcome == []  # cancelled, not answered
            assert node is not None
            counters = node.fetching.counters
            # (a tool may have fetched the root block alone first: that one was handled)
            assert (counters.cancelled, counters.failed) == (1, 0)
            assert node.bitswap.wantlist() == []  # it asks nobody for anything now
            assert provider.bitswap.ledger(me.network.peer_id).cancels_received >= 2
            pins = await client.call_tool("list_pins", {})
            assert models.PinList.model_validate(pins.structured_content).total == 0
            assert list((tmp_path / "out").iterdir()) == []  # no partial output, no temp
            # The server goes on answering, and the same fetch completes once released.
            gated.release.set()
            done = await client.call_tool(tool, args)
            assert not done.is_error, done.content
