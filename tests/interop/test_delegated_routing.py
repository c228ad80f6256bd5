"""Delegated routing (``/routing/v1``) as a client: Kubo 0.43 with
``Gateway.ExposeRoutingAPI`` is the router; our server finds providers through it with no
DHT connection to anyone, and fetches from them: a bitswap provider by dialling it, an HTTP
provider as a trustless gateway."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import pytest
from mcp import Client

from ipfs_mcp.backends.retrieval.delegated_routing import http_url
from ipfs_mcp.server.app import build_server
from ipfs_mcp.server.config import ServerSettings
from ipfs_mcp.tools import models

from .kubo_daemon import KuboDaemon

pytestmark = [pytest.mark.anyio, pytest.mark.interop]
TIMEOUT = 60


def settings(home: Path, root: Path, routers: list[str], *, p2p: bool) -> ServerSettings:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPFS_")}
    env["HF_HOME"] = str(home)
    return ServerSettings.load(env, allow_roots=[str(root)], p2p=p2p,
                               delegated_routers=routers)


@pytest.fixture
def router_of_own(http_server_of_own):
    """A /routing/v1 server of the test's own, answering NDJSON with the records given
    (plus one of an unknown schema, which clients must skip)."""

    def start(records: list[dict[str, object]]) -> str:
        lines = [{"Schema": "unknown-future", "Whatever": 1}, *records]
        body = "".join(json.dumps(r) + "\n" for r in lines).encode()

        def respond(path: str) -> tuple[int, dict[str, str], bytes]:
            status = 200 if path.startswith("/routing/v1/providers/") else 404
            return status, {"Content-Type": "application/x-ndjson"}, body

        return http_server_of_own(respond)

    return start


def test_http_multiaddrs_become_gateway_urls() -> None:
    assert http_url("/ip4/127.0.0.1/tcp/8080/http") == "http://127.0.0.1:8080"
    assert http_url("/dns4/example.com/tcp/443/tls/http") == "https://example.com:443"
    assert http_url("/ip6/::1/tcp/8080/https") == "https://[::1]:8080"
    assert http_url("/ip4/127.0.0.1/tcp/4001") is None
    assert http_url("/ip4/127.0.0.1/udp/4001/quic-v1") is None


async def test_find_and_fetch_a_bitswap_provider_through_kubos_routing_api(
        tmp_path: Path, kubo043_factory: Callable[..., KuboDaemon]) -> None:
    kubo = kubo043_factory(config={"Gateway.ExposeRoutingAPI": True})
    data = os.urandom(600_000)
    (tmp_path / "data.bin").write_bytes(data)
    cid = kubo.add_path(tmp_path / "data.bin")
    kubo_id = kubo.rpc("id")["ID"]
    root = tmp_path / "work"
    root.mkdir()
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(settings(tmp_path / "home", root, [kubo.gateway_url],
                                                p2p=True)), mode="auto") as client:
            found = await client.call_tool("find_providers", {"cid": cid})
            assert not found.is_error, found.content
            providers = models.ProvidersResult.model_validate(found.structured_content)
            assert kubo_id in [p.peer_id for p in providers.providers]
            got = await client.call_tool("fetch_cid", {"cid": cid,
                                                       "output_path": str(root / "data.bin")})
            assert not got.is_error, got.content
            assert (root / "data.bin").read_bytes() == data
            stats = models.PeerStatsResult.model_validate(
                (await client.call_tool("peer_stats", {})).structured_content)
            assert stats.network is not None
            kubo_peer = [p for p in stats.network.peers if p.peer_id == kubo_id]
            assert kubo_peer and kubo_peer[0].blocks_received  # it came over bitswap


async def test_an_http_provider_goes_to_http_retrieval(
        tmp_path: Path, kubo043: KuboDaemon,
        router_of_own: Callable[[list[dict[str, object]]], str]) -> None:
    data = os.urandom(300_000)
    (tmp_path / "data.bin").write_bytes(data)
    cid = kubo043.add_path(tmp_path / "data.bin")
    gateway = urlsplit(kubo043.gateway_url)
    router = router_of_own([{
        "Schema": "peer", "ID": "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN",
        "Addrs": [f"/ip4/{gateway.hostname}/tcp/{gateway.port}/http"],
        "Protocols": ["transport-ipfs-gateway-http"]}])
    root = tmp_path / "work"
    root.mkdir()
    with anyio.fail_after(TIMEOUT):
        # No P2P node at all: only HTTP can bring the bytes.
        async with Client(build_server(settings(tmp_path / "home", root, [router],
                                                p2p=False)), mode="auto") as client:
            got = await client.call_tool("fetch_cid", {"cid": cid,
                                                       "output_path": str(root / "data.bin")})
            assert not got.is_error, got.content
            assert (root / "data.bin").read_bytes() == data
            health = json.loads((await client.read_resource("ipfs-mcp://health"))
                                .contents[0].text)  # type: ignore[union-attr]
            assert health["retrieval_sources"] == ["delegated-routing"]
