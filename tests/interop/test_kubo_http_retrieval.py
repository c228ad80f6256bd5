"""End to end: a real Kubo 0.43 fetches a file from our gateway by HTTP retrieval, having found
us through our ``/routing/v1``, as Kubo's own ``test/cli/http_retrieval_client_test.go`` sets
it up (``HTTPRetrieval.Enabled``, ``Routing.DelegatedRouters``, a TLS provider speaking
HTTP/2).

Our side runs without a P2P node, so our provider record names only the gateway's
address (``/tls/http``, or ``/http``): the bytes can reach Kubo over HTTP only. The gateway runs in this
process behind a recorder (a plain ASGI wrapper that notes each request, then hands it on
untouched), so the test sees every block Kubo asked for and the HTTP version it used.
Kubo trusts our self-signed certificate through ``SSL_CERT_FILE`` for the router, and
``HTTPRetrieval.TLSInsecureSkipVerify`` for retrieval, as its own test does.

Kubo's documentation says HTTP retrieval needs TLS and HTTP/2; its code (boxo's httpnet)
also takes a plain ``/http`` address on a private or loopback network, over HTTP/1.1. Both
are tested: ``--gateway-tls`` (HTTP/2) and a plain gateway on 127.0.0.1.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from ipfs_mcp.backends.core.cids import cid_str, parse_cid
from ipfs_mcp.backends.core.dag import walk
from ipfs_mcp.backends.core.importer import Importer, ImportOptions
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.server.config import ServerSettings
from ipfs_mcp.server.gateway.asgi import App, Receive, Scope, Send
from ipfs_mcp.server.gateway.node_routing import NodeProviders, repo_peer_id
from ipfs_mcp.server.gateway.serve import serve_gateway
from ipfs_mcp.server.gateway.wiring import gateway_from_settings
from ipfs_mcp.server.state import NodeSlot, lifespan_state
from tests.gateway.tls import self_signed

from .kubo_daemon import KuboDaemon

pytestmark = [pytest.mark.anyio, pytest.mark.interop]
TIMEOUT = 120


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: str
    http_version: str


class Recorder:
    """Notes every request, then passes it to the gateway unchanged."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.seen: list[Seen] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.append(Seen(scope["method"], scope["path"],
                                  scope.get("query_string", b"").decode(),
                                  scope.get("http_version", "")))
        await self.app(scope, receive, send)


def kubo_http_client_config(router_url: str) -> dict[str, object]:
    """Kubo as an HTTP-retrieval client whose only router is ours (``auto`` routing: its
    DHT, empty here, and the delegated routers)."""
    return {
        "HTTPRetrieval.Enabled": True,
        "HTTPRetrieval.TLSInsecureSkipVerify": True,
        "Routing.Type": "auto",
        "Routing.DelegatedRouters": [router_url],
    }


@pytest.mark.parametrize("tls", [True, False], ids=["tls-http2", "plain-loopback"])
async def test_kubo_fetches_from_our_gateway_over_http_found_by_our_routing(
        tmp_path: Path, kubo043_factory: Callable[..., KuboDaemon], tls: bool) -> None:
    cert, key = self_signed(tmp_path / "tls")
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPFS_")}
    env["HF_HOME"] = str(tmp_path / "home")
    settings = ServerSettings.load(env, p2p=False, gateway="127.0.0.1:0",
                                   gateway_tls=[str(cert), str(key)] if tls else None)
    version = "2" if tls else "1.1"
    repo = Repo(settings.backend.repo_path)
    data = os.urandom(700_000)  # three 256 KiB leaves under a root
    root = Importer(sink=repo.blocks, options=ImportOptions(cid_version=1)
                    ).add_bytes(data).cid_obj
    blocks = {bytes(c.digest) for c, _ in walk(root, repo.blocks.get)}
    assert len(blocks) == 4
    slot = NodeSlot()  # the lifespan publishes its Router (and no node: --no-p2p) here
    peer_id = repo_peer_id(repo.path)
    providers = NodeProviders(slot, repo.blocks, peer_id)
    recorder = Recorder(gateway_from_settings(settings, slot, providers=providers))
    with anyio.fail_after(TIMEOUT):
        async with lifespan_state(settings, slot=slot), anyio.create_task_group() as tg:
            urls: list[str] = await tg.start(
                lambda task_status: serve_gateway(recorder, "127.0.0.1", 0,
                                                  tls=settings.gateway_tls,
                                                  task_status=task_status))
            providers.serve_at(urls)
            # Kubo's calls block: they run in worker threads while the loop serves it.
            kubo = await anyio.to_thread.run_sync(lambda: kubo043_factory(
                config=kubo_http_client_config(urls[0]), env={"SSL_CERT_FILE": str(cert)}))
            found = await anyio.to_thread.run_sync(
                lambda: kubo.find_providers(cid_str(root), seconds=20))
            got = await anyio.to_thread.run_sync(
                lambda: kubo.cli("cat", "--", cid_str(root), timeout=60))
            tg.cancel_scope.cancel()
    assert found == [peer_id]
    assert got == data
    routing = [s for s in recorder.seen if s.path.startswith("/routing/v1/providers/")]
    assert routing, recorder.seen
    probes = [s for s in recorder.seen if s.path == "/ipfs/bafkqaaa"]
    assert probes and all(s.http_version == version for s in probes)
    fetched = {bytes(parse_cid(s.path.removeprefix("/ipfs/")).digest)
               for s in recorder.seen
               if s.method == "GET" and s.path.startswith("/ipfs/") and s.path != "/ipfs/bafkqaaa"}
    assert fetched == blocks  # every block came from us, over HTTP
    block_gets = [s for s in recorder.seen if s.method == "GET" and s.path.startswith("/ipfs/")]
    assert all(s.http_version == version and "format=raw" in s.query for s in block_gets)
