"""TCP port reuse (p2p/reuseport.py) on real hosts over 127.0.0.1: dials leave from the
listen port, and where that 4-tuple is taken they still connect, from another port."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import trio
from libp2p.network.swarm import Swarm
from multiaddr import Multiaddr

from ipfs_mcp.p2p import P2PNode
from ipfs_mcp.p2p.host import peer_info_from_addr
from ipfs_mcp.p2p.reuseport import listen_source, open_tcp_from

from .nodes import node_at

pytestmark = pytest.mark.anyio


def _socket_of(conn: object) -> object:
    """The trio socket under a swarm connection (muxer, security, buffered reader, TCP)."""
    layer: object = conn
    for _ in range(12):
        socket = getattr(layer, "socket", None)
        if socket is not None:
            return socket
        layer = next(getattr(layer, name) for name in
                     ("muxed_conn", "secured_conn", "conn", "stream") if hasattr(layer, name))
    raise AssertionError(f"no socket under {conn!r}")


def _local_ports(node: P2PNode, other: P2PNode) -> list[int]:
    conns = node.host.get_network().get_connections(other.host.get_id())
    return [_socket_of(c).getsockname()[1] for c in conns]  # type: ignore[attr-defined]


def _listen_port(node: P2PNode) -> int:
    return int(Multiaddr(node.addrs[0]).value_for_protocol("tcp"))


async def test_a_dial_leaves_from_the_listen_port_and_both_ways_still_connect(
        tmp_path: Path) -> None:
    async with node_at(tmp_path / "a") as a, node_at(tmp_path / "b") as b:
        with trio.fail_after(30):
            await a.connect_peer(b.addrs[0])
        assert _local_ports(a, b) == [_listen_port(a)]
        # The other way, while that connection stands: from b's listen port to a's is the
        # same 4-tuple, which the kernel refuses; the dial goes from another port instead.
        swarm = b.host.get_network()
        assert isinstance(swarm, Swarm)
        info = peer_info_from_addr(a.addrs[0])
        with trio.fail_after(30):
            await swarm.dial_addr(info.addrs[0], info.peer_id)
        ports = _local_ports(b, a)
        assert len(ports) == 2 and _listen_port(b) in ports
        assert len([p for p in ports if p != _listen_port(b)]) == 1


async def test_a_source_that_cannot_be_bound_falls_back_to_an_ephemeral_port() -> None:
    got: list[tuple[str, int]] = []

    async def accept(stream: trio.SocketStream) -> None:
        got.append(stream.socket.getpeername())
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, accept, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        # 192.0.2.1 (a documentation address) is none of this host's: it cannot be bound.
        with trio.fail_after(10):
            stream = await open_tcp_from("127.0.0.1", port, ("192.0.2.1", 40000))
        assert stream.socket.getsockname()[0] == "127.0.0.1"
        assert stream.socket.getsockname()[1] != 40000
        await stream.aclose()
        nursery.cancel_scope.cancel()


def test_the_source_is_a_listen_address_of_the_same_family_and_reach() -> None:
    listen = [Multiaddr("/ip4/127.0.0.1/tcp/4001"), Multiaddr("/ip4/0.0.0.0/tcp/4002"),
              Multiaddr("/ip6/::1/tcp/4003")]
    assert listen_source(listen, Multiaddr("/ip4/127.0.0.1/tcp/9")) == ("127.0.0.1", 4001)
    # A loopback listener cannot reach another host: the wildcard one is used.
    assert listen_source(listen, Multiaddr("/ip4/11.77.0.2/tcp/9")) == ("0.0.0.0", 4002)
    assert listen_source(listen, Multiaddr("/ip6/::1/tcp/9")) == ("::1", 4003)
    assert listen_source(listen[:1], Multiaddr("/ip4/11.77.0.2/tcp/9")) is None
    assert listen_source(listen, Multiaddr("/dns4/example.org/tcp/9")) is None
    assert listen_source([Multiaddr("/ip4/127.0.0.1/tcp/0")],
                         Multiaddr("/ip4/127.0.0.1/tcp/9")) is None
