"""A delegated router may not steer us nearer than itself: a public router's record naming
a loopback or LAN host is refused before any dial or GET.

The routers and gateways here are tiny HTTP servers of the test's own on 127.0.0.1. Since
every one of them really is on loopback, the "public router" case tells the client how
far the router is (``router_scopes``) rather than putting a router on the internet.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from multiformats import CID, multihash

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.errors import BlockNotFound
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.backends.retrieval.address_scope import (
    Scope,
    SteeringPolicy,
    host_of_multiaddr,
    scope_of_host,
    scope_of_ip,
)
from ipfs_mcp.backends.retrieval.delegated_routing import DelegatedRouting, DelegatedSource

PEER = "12D3KooWGRUVh7cFyJxsdDuAqwsKL7hbjb3ozGzs3PWTb5cYigd5"


@pytest.mark.parametrize(("ip", "scope"), [
    ("127.0.0.1", Scope.LOOPBACK), ("127.8.9.10", Scope.LOOPBACK), ("::1", Scope.LOOPBACK),
    ("0.0.0.0", Scope.LOOPBACK), ("::ffff:127.0.0.1", Scope.LOOPBACK),
    ("10.1.2.3", Scope.PRIVATE), ("192.168.0.7", Scope.PRIVATE), ("172.16.5.5", Scope.PRIVATE),
    ("169.254.169.254", Scope.PRIVATE), ("100.64.0.1", Scope.PRIVATE),
    ("fd00::1", Scope.PRIVATE), ("fe80::1%eth0", Scope.PRIVATE), ("::ffff:10.0.0.1", Scope.PRIVATE),
    ("8.8.8.8", Scope.PUBLIC), ("2606:4700::1111", Scope.PUBLIC),
])
def test_addresses_are_classified_by_how_far_they_reach(ip: str, scope: Scope) -> None:
    assert scope_of_ip(ip) == scope


def test_names_take_the_nearest_address_they_resolve_to() -> None:
    answers = {"mixed.example": ["8.8.8.8", "10.0.0.1"], "far.example": ["8.8.8.8"]}

    def resolver(host: str) -> list[str]:
        return answers.get(host, [])

    assert scope_of_host("mixed.example", resolver) == Scope.PRIVATE
    assert scope_of_host("far.example", resolver) == Scope.PUBLIC
    assert scope_of_host("nowhere.example", resolver) is None
    assert scope_of_host("[::1]", resolver) == Scope.LOOPBACK
    assert scope_of_host("localhost") == Scope.LOOPBACK  # the real resolver


def test_hosts_are_read_from_multiaddrs() -> None:
    assert host_of_multiaddr("/ip4/10.0.0.1/tcp/4001") == "10.0.0.1"
    assert host_of_multiaddr("/dns4/gw.example/tcp/443/tls/http") == "gw.example"
    assert host_of_multiaddr(f"/p2p/{PEER}/p2p-circuit") is None


def test_a_public_router_may_only_send_us_to_public_hosts() -> None:
    public = SteeringPolicy("https://router.example", router_scope=Scope.PUBLIC)
    assert public.refusal(multiaddr="/ip4/8.8.8.8/tcp/4001") is None
    for near in ("/ip4/127.0.0.1/tcp/5001", "/ip4/192.168.1.1/tcp/80/http",
                 "/ip6/::1/tcp/4001", "/ip4/169.254.169.254/tcp/80/http"):
        why = public.refusal(multiaddr=near)
        assert why is not None and near in why, near
    assert public.refusal(url="http://10.0.0.5:8080") is not None
    assert public.refusal(multiaddr=f"/p2p/{PEER}") is not None  # no host: no say


def test_a_lan_router_reaches_the_lan_and_a_local_one_reaches_anything() -> None:
    lan = SteeringPolicy("http://10.0.0.2:8080")
    assert lan.router_scope == Scope.PRIVATE
    assert lan.refusal(multiaddr="/ip4/10.9.9.9/tcp/4001") is None
    assert lan.refusal(multiaddr="/ip4/127.0.0.1/tcp/4001") is not None
    local = SteeringPolicy("http://127.0.0.1:8080")
    assert local.refusal(multiaddr="/ip4/127.0.0.1/tcp/5001") is None
    assert local.refusal(multiaddr=f"/p2p/{PEER}") is None


@pytest.fixture
def block_and_gateway(http_server_of_own
                      ) -> tuple[CID, bytes, str, list[str]]:
    """One raw block, a gateway on 127.0.0.1 serving it, and the paths it was asked for."""
    data = b"the router must not send us here\n" * 50
    cid = CID("base32", 1, "raw", multihash.wrap(hashlib.sha256(data).digest(), "sha2-256"))
    asked: list[str] = []

    def respond(path: str) -> tuple[int, dict[str, str], bytes]:
        asked.append(path)
        return 200, {"Content-Type": "application/vnd.ipld.raw"}, data

    return cid, data, http_server_of_own(respond), asked


def _router(http_server_of_own: Callable[..., str], gateway: str) -> str:
    port = gateway.rsplit(":", 1)[1]
    record = {"Schema": "peer", "ID": PEER, "Protocols": ["transport-ipfs-gateway-http"],
              "Addrs": [f"/ip4/127.0.0.1/tcp/{port}/http"]}
    return http_server_of_own(lambda path: (200, {"Content-Type": "application/x-ndjson"},
                                            (json.dumps(record) + "\n").encode()))


def test_a_public_router_naming_a_loopback_gateway_gets_no_request_sent_there(
        tmp_path: Path, http_server_of_own, block_and_gateway) -> None:
    cid, _, gateway, asked = block_and_gateway
    router = _router(http_server_of_own, gateway)
    repo = Repo(tmp_path / "repo", fsync=False)
    routing = DelegatedRouting([router], router_scopes={router: Scope.PUBLIC})
    source = DelegatedSource(routing, repo.blocks, timeout=10)
    try:
        with pytest.raises(BlockNotFound, match="refused.*loopback address"):
            source.fetch_block(cid)
    finally:
        source.close()
        routing.close()
    assert asked == []  # not one GET reached the loopback host
    assert not repo.blocks.has(cid)


def test_a_router_on_this_machine_may_name_a_gateway_on_it(
        tmp_path: Path, http_server_of_own, block_and_gateway) -> None:
    cid, data, gateway, asked = block_and_gateway
    router = _router(http_server_of_own, gateway)
    repo = Repo(tmp_path / "repo", fsync=False)
    routing = DelegatedRouting([router])  # its own scope: loopback
    source = DelegatedSource(routing, repo.blocks, timeout=10)
    try:
        assert source.fetch_block(cid) == data
    finally:
        source.close()
        routing.close()
    assert asked == [f"/ipfs/{cid_str(cid)}?format=raw"]
    assert repo.blocks.get(cid) == data


def test_a_routers_own_name_is_resolved_on_first_use_not_at_start() -> None:
    asked: list[str] = []

    def resolver(host: str) -> list[str]:
        asked.append(host)
        return ["8.8.8.8"]

    policy = SteeringPolicy("https://router.example", resolver=resolver)
    assert asked == []  # building the client (server start-up) looks nothing up
    assert policy.refusal(multiaddr="/ip4/10.0.0.1/tcp/4001") is not None
    assert asked == ["router.example"]
    assert policy.router_scope == Scope.PUBLIC and asked == ["router.example"]  # once
