"""``/routing/v1`` from our real node, wired as ``ipfs-mcp serve --gateway`` wires it: the
gateway and the MCP lifespan share one node slot. Content we hold gets our own record (the
gateway's ``/http`` address and our libp2p addresses); another peer's content is found
through the DHT; peers are answered from the peerstore and DHT. Answers are filtered as
IPIP-484's ``filter-protocols`` and ``filter-addrs`` ask."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import Client
from multiformats import CID

from ipfs_mcp.backends.core.cids import parse_cid
from ipfs_mcp.p2p import Role
from ipfs_mcp.server.app import build_server
from ipfs_mcp.server.config import ServerSettings
from ipfs_mcp.server.gateway import BlockstoreSource, Gateway, InMemoryProviders, ProviderRecord
from ipfs_mcp.server.gateway.node_routing import (
    BITSWAP,
    GATEWAY_HTTP,
    http_multiaddr,
    http_multiaddrs,
)
from ipfs_mcp.server.gateway.wiring import start_gateway
from ipfs_mcp.server.state import NodeSlot
from tests.p2p.nodes import add_bytes, config, node_at, repo_at

from .conftest import serving

pytestmark = pytest.mark.anyio
TIMEOUT = 90


def test_gateway_urls_as_multiaddrs() -> None:
    assert http_multiaddr("http://127.0.0.1:8080") == "/ip4/127.0.0.1/tcp/8080/http"
    assert http_multiaddr("https://127.0.0.1:8443") == "/ip4/127.0.0.1/tcp/8443/tls/http"
    assert http_multiaddr("http://[::1]:8080") == "/ip6/::1/tcp/8080/http"
    assert http_multiaddr("https://gw.example:443") == "/dns/gw.example/tcp/443/tls/http"
    assert http_multiaddr("http://0.0.0.0:8080") is None  # a wildcard names no address...
    # ...but stands for each of this machine's addresses (loopback is on every machine).
    everywhere = http_multiaddrs(["http://0.0.0.0:8080"])
    assert "/ip4/127.0.0.1/tcp/8080/http" in everywhere
    assert all(a.startswith("/ip4/") for a in everywhere)
    dual = http_multiaddrs(["https://[::]:8443"])  # IPv6 and (dual stack) IPv4
    assert "/ip4/127.0.0.1/tcp/8443/tls/http" in dual
    assert not any(a.startswith("/ip6/fe80") for a in dual)  # link-local needs a zone


def _bare(addrs: list[str]) -> list[str]:
    return [a.split("/p2p/")[0] for a in addrs]


async def test_routing_v1_answers_from_our_node(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPFS_")}
    env["HF_HOME"] = str(tmp_path / "home")
    (tmp_path / "work").mkdir()
    settings = ServerSettings.load(env, allow_roots=[str(tmp_path / "work")],
                                   gateway="127.0.0.1:0")
    other_cid = add_bytes(repo_at(tmp_path / "other"), os.urandom(3000))
    unknown = CID.decode("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")
    slot = NodeSlot()
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            urls = await start_gateway(tg, settings, slot)
            async with Client(build_server(settings, gateway_url=urls[0], slot=slot),
                              mode="auto") as client, \
                    node_at(tmp_path / "other", config(role=Role.MASTER)) as other:
                ours = await slot.wait()
                assert ours is not None, slot.status
                added = await client.call_tool("add_content", {"text": "held here\n"})
                cid = added.structured_content["cid"]
                # The other peer joins our DHT and announces its content into it.
                await other.connect_peer(ours.addrs[0])
                await ours.wait_for_peer(other.peer_id)
                assert await other.announce_content(other_cid) == 1
                async with httpx.AsyncClient(base_url=urls[0], timeout=TIMEOUT) as http:
                    held = await http.get(f"/routing/v1/providers/{cid}")
                    theirs = await http.get(f"/routing/v1/providers/{other_cid}",
                                            headers={"accept": "application/x-ndjson"})
                    nobody = await http.get(f"/routing/v1/providers/{unknown}")
                    me = await http.get(f"/routing/v1/peers/{ours.peer_id}")
                    them = await http.get(f"/routing/v1/peers/{other.peer_id}")
                our_addrs = _bare(ours.addrs)
                our_http = list(ours.http_addrs)  # the node's own retrieval gateway
                other_addrs = _bare(other.addrs)
            tg.cancel_scope.cancel()
    port = urls[0].rsplit(":", 1)[1]
    own = {"Schema": "peer", "ID": ours.peer_id,
           "Addrs": [f"/ip4/127.0.0.1/tcp/{port}/http", *our_http, *our_addrs],
           "Protocols": [GATEWAY_HTTP, BITSWAP]}
    assert len(our_http) == 1 and our_http[0].endswith("/http")
    assert held.status_code == 200 and held.json() == {"Providers": [own]}
    assert theirs.status_code == 200
    assert theirs.headers["content-type"] == "application/x-ndjson"
    records = [httpx.Response(200, content=line).json() for line in theirs.text.splitlines()]
    assert [r["ID"] for r in records] == [other.peer_id]  # found in the DHT; not us
    assert set(other_addrs) <= set(records[0]["Addrs"])
    assert records[0]["Protocols"] == [BITSWAP]  # it said so when identified
    assert nobody.status_code == 200 and nobody.json() == {"Providers": []}
    assert me.json() == {"Peers": [own]}
    peer = them.json()["Peers"]
    assert [p["ID"] for p in peer] == [other.peer_id]
    assert set(other_addrs) <= set(peer[0]["Addrs"])


async def test_routing_v1_filters_as_ipip_484_says(tmp_path: Path) -> None:
    """``filter-protocols`` keeps records naming one (``unknown``: naming none);
    ``filter-addrs`` keeps matching addresses and drops a record left with none."""
    repo = repo_at(tmp_path / "repo")
    cid = parse_cid(str(add_bytes(repo, b"filtered\n")))
    both = ProviderRecord("12D3KooWBoth", ("/ip4/127.0.0.1/tcp/8080/tls/http",
                                           "/ip4/127.0.0.1/tcp/4001",
                                           "/ip4/127.0.0.1/udp/4001/quic-v1"),
                          (GATEWAY_HTTP, BITSWAP))
    bare = ProviderRecord("12D3KooWBare", ("/ip4/127.0.0.1/tcp/4002",))
    lookup = InMemoryProviders()
    lookup.add_provider(cid, both)
    lookup.add_provider(cid, bare)
    gateway = Gateway(BlockstoreSource(repo.blocks), providers=lookup)

    async with serving(gateway) as http:
        async def ask(query: str) -> list[tuple[str, list[str]]]:
            got = await http.get(f"/routing/v1/providers/{cid}?{query}")
            assert got.status_code == 200
            return [(p["ID"], p["Addrs"]) for p in got.json()["Providers"]]

        assert [i for i, _ in await ask("")] == ["12D3KooWBoth", "12D3KooWBare"]
        assert [i for i, _ in await ask("filter-protocols=transport-bitswap")] == [
            "12D3KooWBoth"]
        assert [i for i, _ in await ask(
            "filter-protocols=transport-bitswap,transport-ipfs-gateway-http,unknown")] == [
            "12D3KooWBoth", "12D3KooWBare"]
        assert await ask("filter-addrs=http") == [
            ("12D3KooWBoth", ["/ip4/127.0.0.1/tcp/8080/tls/http"])]
        assert await ask("filter-addrs=!tls,!quic-v1") == [
            ("12D3KooWBoth", ["/ip4/127.0.0.1/tcp/4001"]),
            ("12D3KooWBare", ["/ip4/127.0.0.1/tcp/4002"])]
        assert await ask("filter-addrs=webrtc") == []
