"""QUIC (``/udp/…/quic-v1``) and WebSocket (``/tcp/…/ws``) between our node and Kubo 0.43.1,
both ways: each side listens on that transport alone, so every connection uses it.

Our node offers a transport when it listens on it (py-libp2p picks the transport by the
listen address). Security: QUIC brings its own, TLS 1.3 inside the QUIC handshake; on TCP
and WebSocket the connection is upgraded with noise, the only security we accept there.
Our dials on both pass the dial scope's check (dialing.gate_dials), seen here by counting
them at that seam.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from pathlib import Path

import anyio
import pytest
import trio
from multiaddr import Multiaddr
from p2p.nodes import FAST, add_bytes, repo_at

from ipfs_mcp.backends.core.cids import cid_str, parse_cid
from ipfs_mcp.backends.core.exporter import Exporter
from ipfs_mcp.p2p import P2PNode
from tests.p2p.driven import node_with

from .kubo_daemon import KuboDaemon

pytestmark = pytest.mark.anyio

TRANSPORTS = {"quic": ("/ip4/127.0.0.1/udp/0/quic-v1", "/quic-v1"),
              "websocket": ("/ip4/127.0.0.1/tcp/0/ws", "/ws")}


async def run(fn: Callable[[], object]) -> object:
    return await anyio.to_thread.run_sync(fn)


def counted_node(path: Path, listen: str, dialled: list[Multiaddr]
                 ) -> AbstractAsyncContextManager[P2PNode]:
    """Our node on ``path``'s repo listening on ``listen`` alone, telling ``dialled`` of
    every address it dials."""
    cfg = replace(FAST, listen_addrs=(listen,))
    return node_with(path, cfg, dial_policy=replace(cfg.dial_policy(), on_dial=dialled.append))


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
async def test_a_block_each_way_over_the_transport(
        kubo043_factory: Callable[..., KuboDaemon], tmp_path: Path, transport: str) -> None:
    listen, marker = TRANSPORTS[transport]
    ours, theirs = os.urandom(200_000), os.urandom(200_000)
    cid = cid_str(add_bytes(repo_at(tmp_path / "n"), ours, cid_version=1))
    dialled: list[Multiaddr] = []
    with trio.fail_after(120):
        kubos: list[KuboDaemon] = await run(lambda: [  # type: ignore[assignment]
            kubo043_factory(config={"Addresses.Swarm": [listen]}) for _ in range(2)])
        dialler, server = kubos
        assert all(marker in a for k in (dialler, server) for a in k.dial_addrs)
        async with counted_node(tmp_path / "n", listen, dialled) as node:
            assert node.addrs and all(marker in a for a in node.addrs)
            # A Kubo dials us and fetches our block.
            await run(lambda: dialler.connect(node.addrs[0]))
            assert await run(lambda: dialler.cli("cat", "--", cid, timeout=60)) == ours
            peers = await run(lambda: dialler.rpc("swarm/peers"))
            addrs = {p["Peer"]: p["Addr"] for p in peers["Peers"]}  # type: ignore[index]
            assert marker in addrs[node.peer_id]
            # We dial the other Kubo and fetch its block.
            kcid = await run(lambda: server.add_bytes(theirs, "--cid-version=1"))
            await node.connect_peer(server.dial_addr)
            report = await node.retrieve_content(str(kcid))
            assert report.by_peer == {server.peer_id: 1}
    assert [str(a) for a in dialled] == [server.dial_addr]  # through the dial-scope check
    assert Exporter(repo_at(tmp_path / "n").blocks.get).read(parse_cid(str(kcid))) == theirs
