"""AutoNAT against Kubo 0.43.1 on loopback: our node asks a Kubo that serves AutoNAT to dial
it back, and its reachability stays ``unknown`` (Kubo will not dial back a loopback
address, so its answer is no vote), as peer_stats says.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
import trio
from p2p.nodes import RunningSlot, node_at

from ipfs_mcp.p2p.reachability import AUTONAT_PROTOCOL
from ipfs_mcp.server.node_network import NodeNetwork
from ipfs_mcp.tools.network import network_stats

from .kubo_daemon import KuboDaemon

pytestmark = pytest.mark.anyio


async def test_a_kubo_serving_autonat_is_asked_and_loopback_stays_unknown(
        kubo043_factory: Callable[..., KuboDaemon], tmp_path: Path) -> None:
    with trio.fail_after(120):
        kubo: KuboDaemon = await anyio.to_thread.run_sync(
            lambda: kubo043_factory(config={"AutoNAT.ServiceMode": "enabled"}))
        async with node_at(tmp_path / "n") as node:
            reachability = node.peers.reachability
            assert reachability.status == "unknown"
            # We ask, but serve no dial-backs: that would dial whatever a stranger names.
            assert AUTONAT_PROTOCOL not in node.host.get_mux().handlers
            await node.connect_peer(kubo.dial_addr)
            await reachability.asked.reach(1)
            assert reachability.answers == {kubo.peer_id: "refused"}
            assert reachability.status == "unknown"
            # What peer_stats shows of it.
            snapshot = await NodeNetwork(RunningSlot(node)).snapshot()
            assert network_stats(snapshot).reachability == "unknown"
