"""Attack 10: ``connect_peer`` dialled any address, and its error told an open port from a
closed one.

A prompt-injected agent could make the node dial the cloud metadata service
(169.254.169.254), hosts on the user's LAN, IPv6 link-local neighbours, and read from the
error which ports answer. Now the node dials only inside its dial scope (by default the
scope it listens on: 127.0.0.1 here, so loopback), never a link-local or metadata address
whatever the scope, refuses before dialling with the scope and the setting named, and a
failed dial says "could not connect to PEER" and nothing more.

The calls go through the MCP client against a server whose P2P node listens on 127.0.0.1.
That nothing was dialled is shown two ways: every TCP connection the process opens passes
through ``trio.open_tcp_stream`` (recorded here, each call still made), and the unspecified
address 0.0.0.0, which on Linux reaches a listener on 127.0.0.1, leaves a listener of the
test's own with no connection waiting.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import trio
from libp2p.network.exceptions import SwarmException
from libp2p.peer.id import ID
from mcp import Client
from multiaddr import Multiaddr

from ipfs_mcp.backends.core.ip_scope import DialScope, Scope, never_dialled, scope_of_ip
from ipfs_mcp.backends.errors import InvalidInput
from ipfs_mcp.p2p.dialing import DialPolicy
from ipfs_mcp.server.app import build_server
from ipfs_mcp.server.config import ServerSettings
from tests.p2p.nodes import node_at

from .mcp_calls import call, call_error

pytestmark = pytest.mark.anyio
TIMEOUT = 60
PEER = "12D3KooWLeX3U6LJNU2Yw5dEPzQPLUBHyyf3p65S8GwxUmw8mDbE"

# Out of the default (loopback) scope; the first four are never dialled in any scope.
OUT_OF_SCOPE = [
    "/ip4/169.254.169.254/tcp/80",  # the cloud metadata service
    "/ip6/fe80::1/tcp/4001",  # an IPv6 link-local neighbour
    "/ip6/fd00:ec2::254/tcp/80",  # AWS's IPv6 metadata endpoint
    "/ip6/::ffff:169.254.169.254/tcp/80",  # the metadata service, IPv4-mapped
    "/ip4/10.1.2.3/tcp/4001",  # a host on the user's LAN
]
NEVER = OUT_OF_SCOPE[:4]


def server_settings(tmp_path: Path, env: dict[str, str] | None = None,
                    **options: Any) -> ServerSettings:
    """A server whose P2P node listens on 127.0.0.1 (the default)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IPFS_")}
    clean["HF_HOME"] = str(tmp_path / "home")
    (tmp_path / "work").mkdir(parents=True, exist_ok=True)
    return ServerSettings.load({**clean, **(env or {})}, allow_roots=[str(tmp_path / "work")],
                               **options)


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every TCP connection the process opens through trio (py-libp2p's TCP transport
    opens its sockets there), recorded; each call still goes through."""
    seen: list[tuple[str, int]] = []
    real = trio.open_tcp_stream

    async def recorded(host: Any, port: int, **kwargs: Any) -> trio.SocketStream:
        seen.append((str(host), int(port)))
        return await real(host, port, **kwargs)

    monkeypatch.setattr(trio, "open_tcp_stream", recorded)
    return seen


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP listener on 127.0.0.1 that accepts nothing by itself: a dial to it stays in
    its backlog, where the test looks."""
    sock = socket.create_server(("127.0.0.1", 0))
    sock.setblocking(False)
    with sock:
        yield sock


def waiting_connections(sock: socket.socket) -> int:
    count = 0
    while count < 100:
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            break
        conn.close()
        count += 1
    return count


@pytest.fixture
def not_libp2p() -> Iterator[int]:
    """A port open to something that is not libp2p: it answers like a web server and
    hangs up. Its port."""
    sock = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        done.set()
        sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() the thread is blocked in
        sock.close()
        thread.join(5)


def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return int(sock.getsockname()[1])


async def test_the_default_scope_refuses_metadata_lan_and_link_local_before_any_dial(
        tmp_path: Path, opened: list[tuple[str, int]]) -> None:
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(server_settings(tmp_path))) as client:
            for address in OUT_OF_SCOPE:
                text = await call_error(client, "connect_peer",
                                        {"multiaddr": f"{address}/p2p/{PEER}"})
                assert "refused to dial" in text, text
                assert "dial scope 'loopback'" in text, text  # the scope, and why it is that
                assert "127.0.0.1" in text, text
                assert "--dial-scope" in text and "IPFS_MCP_DIAL_SCOPE" in text, text
    assert opened == []  # nothing was dialled


async def test_the_unspecified_address_reaches_no_listener_on_this_machine(
        tmp_path: Path, listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(server_settings(tmp_path))) as client:
            for address in (f"/ip4/0.0.0.0/tcp/{port}", f"/ip6/::ffff:0.0.0.0/tcp/{port}"):
                text = await call_error(client, "connect_peer",
                                        {"multiaddr": f"{address}/p2p/{PEER}"})
                assert "refused to dial" in text and "unspecified" in text, text
    assert waiting_connections(listener) == 0


@pytest.mark.parametrize("scope", ["lan", "public"])
async def test_wider_scopes_still_refuse_metadata_and_link_local(
        tmp_path: Path, opened: list[tuple[str, int]], scope: str) -> None:
    settings = server_settings(tmp_path, env={"IPFS_MCP_DIAL_SCOPE": scope})
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(settings)) as client:
            for address in NEVER:
                text = await call_error(client, "connect_peer",
                                        {"multiaddr": f"{address}/p2p/{PEER}"})
                assert "no dial scope allows" in text and f"dial scope {scope!r}" in text, text
    assert opened == []


async def test_a_closed_port_and_an_open_port_of_another_service_look_the_same(
        tmp_path: Path, not_libp2p: int) -> None:
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(server_settings(tmp_path))) as client:
            texts = [await call_error(client, "connect_peer", {
                "multiaddr": f"/ip4/127.0.0.1/tcp/{port}/p2p/{PEER}"})
                for port in (closed_port(), not_libp2p)]
    assert texts[0] == texts[1], texts
    assert f"could not connect to {PEER}" in texts[0]
    for detail in ("refused", "reset", "timed out", "tcp", str(not_libp2p)):
        assert detail not in texts[0].lower(), texts[0]


async def test_a_real_peer_on_loopback_still_connects_by_address_and_by_name(
        tmp_path: Path) -> None:
    with anyio.fail_after(TIMEOUT):
        async with node_at(tmp_path / "peer") as peer, \
                Client(build_server(server_settings(tmp_path))) as client:
            address = peer.addrs[0]
            connected = await call(client, "connect_peer", {"multiaddr": address})
            assert connected["peer_id"] == peer.peer_id
            # A name is resolved, and the address it resolves to is what is checked and
            # dialled: localhost is 127.0.0.1, inside the loopback scope.
            port = Multiaddr(address).value_for_protocol("tcp")
            by_name = await call(client, "connect_peer", {
                "multiaddr": f"/dns4/localhost/tcp/{port}/p2p/{peer.peer_id}"})
            assert by_name["peer_id"] == peer.peer_id


async def test_addresses_the_node_learnt_are_dialled_only_inside_its_scope(
        tmp_path: Path, listener: socket.socket) -> None:
    """What the DHT, provider records and identify teach the node lands in its peerstore,
    and the swarm dials from there (bitswap and DHT streams to a peer not connected): an
    address outside the scope is passed over for the peer's next one, and a peer with
    nothing else is not dialled."""
    port = listener.getsockname()[1]
    with anyio.fail_after(TIMEOUT):
        async with node_at(tmp_path / "a") as node, node_at(tmp_path / "b") as peer:
            store = node.host.get_peerstore()
            lan_first = ID.from_base58(peer.peer_id)
            store.add_addrs(lan_first, [Multiaddr("/ip4/10.1.2.3/tcp/4001"),
                                        Multiaddr(peer.addrs[0].split("/p2p/")[0])], 3600)
            conns = await node.host.get_network().dial_peer(lan_first)
            assert conns and lan_first in node.host.get_connected_peers()
            only_unspecified = ID.from_base58(PEER)
            store.add_addrs(only_unspecified, [Multiaddr(f"/ip4/0.0.0.0/tcp/{port}")], 3600)
            with pytest.raises(SwarmException, match="blocked by connection gate"):
                await node.host.get_network().dial_peer(only_unspecified)
    assert waiting_connections(listener) == 0


@pytest.mark.parametrize(("ip", "scope", "never"), [
    ("127.0.0.1", Scope.LOOPBACK, False), ("::1", Scope.LOOPBACK, False),
    ("10.1.2.3", Scope.PRIVATE, False), ("fd00::1", Scope.PRIVATE, False),
    ("100.64.0.1", Scope.PRIVATE, False), ("8.8.8.8", Scope.PUBLIC, False),
    ("169.254.169.254", Scope.PRIVATE, True), ("fe80::1%eth0", Scope.PRIVATE, True),
    ("fd00:ec2::254", Scope.PRIVATE, True), ("100.100.100.200", Scope.PRIVATE, True),
    ("168.63.129.16", Scope.PUBLIC, True), ("::ffff:169.254.169.254", Scope.PRIVATE, True),
    ("2002:a9fe:a9fe::1", Scope.PRIVATE, True), ("64:ff9b::a9fe:a9fe", Scope.PRIVATE, True),
    ("0.0.0.0", Scope.LOOPBACK, True), ("::", Scope.LOOPBACK, True),
    ("224.0.0.1", Scope.PRIVATE, True), ("ff02::1", Scope.PRIVATE, True),
    ("255.255.255.255", Scope.PRIVATE, True),
])
def test_the_classification_table(ip: str, scope: Scope, never: bool) -> None:
    assert scope_of_ip(ip) == scope
    assert (never_dialled(ip) is not None) == never
    for dial_scope in DialScope:
        allowed = not never and scope <= dial_scope.reach
        assert (DialPolicy(dial_scope).refusal(ip) is None) == allowed, (ip, dial_scope)


@pytest.mark.parametrize(("listen", "bootstrap", "scope"), [
    (["/ip4/127.0.0.1/tcp/0"], [], DialScope.LOOPBACK),
    (["/ip6/::1/tcp/0"], [], DialScope.LOOPBACK),
    (["/ip4/192.168.1.5/tcp/4001"], [], DialScope.LAN),
    (["/ip4/127.0.0.1/tcp/0", "/ip4/10.0.0.2/tcp/4001"], [], DialScope.LAN),
    (["/ip4/0.0.0.0/tcp/4001"], [], DialScope.PUBLIC),
    (["/ip4/127.0.0.1/tcp/0"], [f"/dnsaddr/bootstrap.libp2p.io/p2p/{PEER}"], DialScope.PUBLIC),
    (["/ip4/127.0.0.1/tcp/0"], [f"/ip4/10.0.0.9/tcp/4001/p2p/{PEER}"], DialScope.LAN),
])
def test_the_default_scope_is_the_one_the_node_listens_on(
        listen: list[str], bootstrap: list[str], scope: DialScope) -> None:
    assert DialPolicy.derive(None, listen, bootstrap).scope == scope
    assert DialPolicy.derive("lan", listen, bootstrap).scope == DialScope.LAN
    with pytest.raises(InvalidInput):
        DialPolicy.derive("everywhere", listen, bootstrap)


async def test_a_name_is_judged_by_every_address_it_resolves_to() -> None:
    answers = {"rebind.example": ["169.254.169.254"], "mixed.example": ["10.0.0.1", "127.0.0.1"]}

    async def resolver(name: str, family: int) -> list[str]:
        return answers.get(name, [])

    policy = DialPolicy(DialScope.LOOPBACK, resolver=resolver)
    with pytest.raises(InvalidInput, match="169.254.169.254"):
        await policy.resolved("/dns4/rebind.example/tcp/80")
    assert [str(a) for a in await policy.resolved(f"/dns/mixed.example/tcp/1/p2p/{PEER}")] == [
        f"/ip4/127.0.0.1/tcp/1/p2p/{PEER}"]
    with pytest.raises(InvalidInput, match="dnsaddr"):
        await policy.resolved(f"/dnsaddr/bootstrap.libp2p.io/p2p/{PEER}")


def test_peers_a_person_names_to_get_widen_the_default_scope_as_far_as_they_are() -> None:
    """``ipfs-mcp get --peer <a LAN peer>`` on a node listening on 127.0.0.1: the person
    named that address, so the node may dial the LAN (and no further); a set scope wins."""
    from ipfs_mcp.server.cli import build_parser
    from ipfs_mcp.server.cli_fetch import _settings
    from ipfs_mcp.server.state import _node_config

    lan_peer = f"/ip4/10.0.0.9/tcp/4001/p2p/{PEER}"
    args = build_parser().parse_args(["get", "bafkqaaa", "--peer", lan_peer])
    assert _node_config(_settings(args)).dial_policy().scope == DialScope.LAN
    here = f"/ip4/127.0.0.1/tcp/4001/p2p/{PEER}"
    args = build_parser().parse_args(["get", "bafkqaaa", "--peer", here])
    assert _node_config(_settings(args)).dial_policy().scope == DialScope.LOOPBACK
