"""Start/stop hygiene, identity persistence, and refusing unencrypted peers."""

from __future__ import annotations

import gc
import stat
from pathlib import Path

import multiaddr
import pytest
import trio
import trio.testing
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux

from ipfs_mcp.backends.errors import BackendUnavailable, IpfsMcpError
from ipfs_mcp.p2p import ROLE_PROFILES, NodeConfig, Role
from ipfs_mcp.p2p.host import build_host, peer_info_from_addr
from ipfs_mcp.p2p.identity import IDENTITY_FILE

from .nodes import FAST, add_bytes, config, fd_count, node_at, repo_at

pytestmark = pytest.mark.anyio

LOOPBACK = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]


async def test_identity_is_persistent_and_private(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with node_at(tmp_path / "n") as node:
            first = node.peer_id
        async with node_at(tmp_path / "n") as node:
            assert node.peer_id == first
    key = tmp_path / "n" / IDENTITY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert first.startswith("12D3KooW")  # Ed25519


async def test_safe_defaults_and_roles() -> None:
    cfg = NodeConfig()
    assert cfg.listen_addrs == ("/ip4/127.0.0.1/tcp/0",)
    assert cfg.bootstrap == () and cfg.mdns is False and cfg.role is Role.WORKER
    assert ROLE_PROFILES[Role.LEECHER].dht_server is False
    assert NodeConfig(role="leecher").profile.announce == "none"
    assert NodeConfig(role="master", announce="roots").profile.announce == "roots"
    lan = cfg.lan()
    assert lan.mdns and lan.listen_addrs[0].startswith("/ip4/0.0.0.0/")


async def test_plaintext_only_dialer_is_refused(tmp_path: Path) -> None:
    key = create_new_key_pair()
    plaintext = new_host(key_pair=key, sec_opt={PLAINTEXT_PROTOCOL_ID: InsecureTransport(key)},
                         muxer_opt={YAMUX_PROTOCOL_ID: Yamux}, listen_addrs=LOOPBACK)
    noise = build_host(create_new_key_pair(), FAST)
    with trio.fail_after(30):
        async with node_at(tmp_path / "n") as node, plaintext.run(LOOPBACK), noise.run(LOOPBACK):
            target = peer_info_from_addr(node.addrs[0])
            with pytest.raises(Exception) as refused:
                await plaintext.connect(target)
            assert not isinstance(refused.value, AssertionError)
            assert plaintext.get_id() not in node.connected_peers()
            # The same dial with noise succeeds: it was the security that was refused.
            await noise.connect(target)
            assert node.host.get_network().get_connections(noise.get_id())
            await plaintext.close()
            await noise.close()


async def test_twenty_start_stop_cycles_leak_nothing(tmp_path: Path) -> None:
    """Each cycle starts a node, connects, fetches a block over bitswap and stops."""
    server_repo = repo_at(tmp_path / "server")
    cids = [add_bytes(server_repo, f"block {i}\n".encode()) for i in range(22)]

    async def cycle(i: int, server_addr: str) -> None:
        async with node_at(tmp_path / "client") as client:
            await client.connect_peer(server_addr)
            assert await client.retrieve_block(cids[i]) == server_repo.blocks.get(cids[i])

    with trio.fail_after(90):
        async with node_at(tmp_path / "server") as server:
            await cycle(0, server.addrs[0])  # warm-up: lazily created thread pools etc.
            await cycle(1, server.addrs[0])
            fds, tasks = fd_count(), _task_count()
            for i in range(2, 22):
                await cycle(i, server.addrs[0])
            # The server sees each client go; its side of the sockets must close as well.
            with trio.fail_after(10):
                while server.connected_peers():
                    await trio.testing.wait_all_tasks_blocked()
            # Sockets the peer closed can take a moment to be reaped by the loop (and, for
            # objects py-libp2p drops, by the collector): wait for that, boundedly.
            with trio.move_on_after(10):
                while fd_count() > fds:
                    gc.collect()
                    await trio.sleep(0.05)
            assert fd_count() <= fds
            assert _task_count() <= tasks, __import__("collections").Counter(_task_names()).most_common(4)
            assert server.stats().peers[0].blocks_sent >= 1


def _task_names() -> list[str]:
    names = []
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        names.append(task.name)
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return names


def _task_count() -> int:
    count = 0
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        count += 1
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return count


async def test_node_refuses_work_when_stopped(tmp_path: Path) -> None:
    async with node_at(tmp_path / "n") as node:
        fetcher = node.fetcher()
    assert not node.running
    cid = add_bytes(repo_at(tmp_path / "n"), b"x")
    with pytest.raises(BackendUnavailable):
        await node.retrieve_block(cid)
    with pytest.raises(BackendUnavailable):
        fetcher.fetch_block(cid)
    assert issubclass(BackendUnavailable, IpfsMcpError)


async def test_background_failure_is_not_silent(tmp_path: Path) -> None:
    """A crashed background task ends the node's block with the error, not a quiet hang."""
    node_cfg = config()
    with trio.fail_after(20):
        with pytest.raises(RuntimeError, match="boom"):
            async with node_at(tmp_path / "n", node_cfg) as node:
                async def explode() -> None:
                    raise RuntimeError("boom")

                node.loop.nursery().start_soon(explode)
                await trio.sleep_forever()


async def test_bootstrap_peers_are_dialled_and_join_the_routing_table(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with node_at(tmp_path / "a") as seed, \
                node_at(tmp_path / "b", config(bootstrap=(seed.addrs[0],))) as joiner:
            # Connected, identified (agent known) and in each other's routing tables.
            while not (joiner.routing.routing_table_size() and seed.routing.routing_table_size()
                       and joiner.peer_stats(seed.peer_id)[0].agent):
                await trio.testing.wait_all_tasks_blocked(0.01)
            assert [str(p) for p in joiner.connected_peers()] == [seed.peer_id]
