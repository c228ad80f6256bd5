"""Our DHT speaks to a Kubo DHT server as Kubo's dual DHT does: loopback and private peers
over the LAN id (``/ipfs/lan/kad/1.0.0``), public ones over the Amino id.

A Kubo in ``dhtserver`` mode files an ADD_PROVIDER that arrives on ``/ipfs/kad/1.0.0`` in
its WAN DHT, which drops loopback addresses (and buffers the write); a third Kubo that knows
only that server asks its LAN DHT and finds nothing. When our node offered the Amino id
first, its records given to a loopback Kubo server were lost that way once it was gone.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
import trio
from p2p.nodes import add_bytes, node_at, repo_at

from ipfs_mcp.backends.core.cids import cid_str

from .kubo_daemon import KuboDaemon

pytestmark = pytest.mark.anyio

SERVER = {"Routing.Type": "dhtserver"}


async def run(fn: Callable[[], object]) -> object:
    return await anyio.to_thread.run_sync(fn)


async def test_a_record_we_give_a_kubo_dht_server_is_found_by_another_kubo_after_we_left(
        kubo043_factory: Callable[..., KuboDaemon], tmp_path: Path) -> None:
    repo = repo_at(tmp_path / "n")
    cid = cid_str(add_bytes(repo, os.urandom(5000), cid_version=1))
    with trio.fail_after(180):
        server: KuboDaemon = await run(lambda: kubo043_factory(config=SERVER))  # type: ignore[assignment]
        async with node_at(tmp_path / "n") as node:
            await node.connect_peer(server.dial_addr)
            await run(lambda: server.wait_for_dht_peer(node.peer_id, table="lan"))
            assert await node.announce_content(cid) >= 1
            me = node.peer_id
        # We are gone; a Kubo that knows only the server asks it.
        other: KuboDaemon = await run(  # type: ignore[assignment]
            lambda: kubo043_factory(config={"Bootstrap": [server.dial_addr]}))
        await run(lambda: other.wait_for_dht_peer(server.peer_id, table="lan"))
        providers = await run(lambda: other.find_providers(cid, seconds=20))
    assert me in providers  # type: ignore[operator]
