"""The health resource, read through a real MCP client, shows our own gateway and the HTTP
sources we fetch through (trustless gateways, delegated routers), each with its reputation
as it moves: a lying gateway's drops and it is dropped, an honest one's rises, a dead
router's falls below a stranger's while a working one's rises.

The honest gateway and router is our own gateway (with ``/routing/v1``) over another repo,
served on this test's loop; the liar is a tiny HTTP server of the test's own that flips a
byte of every real block (the one allowed fake).
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from ipfs_mcp.backends.core.cids import parse_cid
from ipfs_mcp.backends.core.dag import walk
from ipfs_mcp.backends.core.reputation import NO_HISTORY_SCORE
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.server.app import build_server
from ipfs_mcp.server.config import ServerSettings
from ipfs_mcp.server.gateway import (
    BlockstoreSource,
    Gateway,
    InMemoryProviders,
    ProviderRecord,
    serve_gateway,
)
from ipfs_mcp.server.gateway.wiring import gateway_from_settings
from ipfs_mcp.server.state import NodeSlot
from ipfs_mcp.tools import models

pytestmark = pytest.mark.anyio
TIMEOUT = 60
# One bad block: 3 failures, no success -> (0 + 1) / (3 + 2) * 0.8 * 0.25 (reputation.py).
LIAR_SCORE = 0.04
PEER = "12D3KooWGRUVh7cFyJxsdDuAqwsKL7hbjb3ozGzs3PWTb5cYigd5"


def settings(tmp_path: Path, **options: Any) -> ServerSettings:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPFS_")}
    env["HF_HOME"] = str(tmp_path / "home")
    (tmp_path / "work").mkdir(parents=True, exist_ok=True)
    return ServerSettings.load(env, allow_roots=[str(tmp_path / "work")], p2p=False, **options)


async def read_health(client: Client) -> models.Health:
    contents = (await client.read_resource("ipfs-mcp://health")).contents
    return models.Health.model_validate_json(contents[0].text)  # type: ignore[union-attr]


async def fetch(client: Client, cid: str) -> Any:
    return await client.call_tool("fetch_cid", {"cid": cid, "length": 100})


@pytest.fixture
def elsewhere(tmp_path: Path) -> HFCacheBackend:
    """Another node's repo: what only the remote gateways hold."""
    return HFCacheBackend(Repo(tmp_path / "elsewhere", fsync=False))


@asynccontextmanager
async def honest_gateway(backend: HFCacheBackend, lookup: InMemoryProviders | None = None
                         ) -> AsyncIterator[str]:
    """Our gateway over ``backend`` on 127.0.0.1:0, with ``/routing/v1`` from ``lookup``."""
    async with anyio.create_task_group() as tg:
        urls: list[str] = await tg.start(serve_gateway, Gateway(
            BlockstoreSource(backend.repo.blocks), providers=lookup), "127.0.0.1", 0)
        yield urls[0]
        tg.cancel_scope.cancel()


def lying_gateway(http_server_of_own: Callable[..., str], backend: HFCacheBackend) -> str:
    """Answers every raw-block request with the real block, one byte flipped."""
    def answer(path: str) -> tuple[int, dict[str, str], bytes]:
        cid = path.split("?")[0].removeprefix("/ipfs/")
        real = backend.repo.blocks.get(parse_cid(cid))
        return 200, {"Content-Type": "application/vnd.ipld.raw"}, \
            bytes([real[0] ^ 0xFF]) + real[1:]
    return http_server_of_own(answer)


def closed_port_url() -> str:
    """A loopback URL nothing listens on (the port was bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def test_by_default_no_gateway_and_no_http_sources(tmp_path: Path) -> None:
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(settings(tmp_path)), mode="auto") as client:
            health = await read_health(client)
    assert health.gateway == models.ServedGateway(enabled=False, url=None, recursive=False)
    assert health.gateways == [] and health.delegated_routers == []
    assert health.retrieval_sources == []


async def test_our_served_gateway_is_shown_with_its_url_and_mode(
        tmp_path: Path, elsewhere: HFCacheBackend) -> None:
    """As ``serve --gateway`` wires it: the gateway bound first, then the MCP server told
    its URL; recursive only when asked, and then with a source to fetch from."""
    with anyio.fail_after(TIMEOUT):
        async with honest_gateway(elsewhere) as upstream:
            for recursive in (False, True):
                options: dict[str, Any] = {"gateway": "127.0.0.1:0"}
                if recursive:
                    options |= {"gateway_recursive": True, "trustless_gateways": [upstream]}
                config = settings(tmp_path / str(recursive), **options)
                slot = NodeSlot()  # the gateway reads through the server's Router
                async with anyio.create_task_group() as tg:
                    urls = await tg.start(serve_gateway, gateway_from_settings(config, slot),
                                          "127.0.0.1", 0)
                    async with Client(build_server(config, gateway_url=urls[0], slot=slot),
                                      mode="auto") as client:
                        health = await read_health(client)
                    tg.cancel_scope.cancel()
                assert health.gateway == models.ServedGateway(
                    enabled=True, url=urls[0], recursive=recursive)


async def test_lying_gateway_reputation_drops_and_the_honest_one_rises(
        tmp_path: Path, elsewhere: HFCacheBackend,
        http_server_of_own: Callable[..., str]) -> None:
    data = os.urandom(700_000)  # three leaves and a root
    cid = elsewhere.add_bytes(data)
    liar = lying_gateway(http_server_of_own, elsewhere)
    with anyio.fail_after(TIMEOUT):
        async with honest_gateway(elsewhere) as honest:
            config = settings(tmp_path, trustless_gateways=[liar, honest])
            async with Client(build_server(config), mode="auto") as client:
                before = await read_health(client)
                got = await fetch(client, cid)
                after = await read_health(client)
    assert before.gateways == [
        models.GatewayStatus(url=liar, score=NO_HISTORY_SCORE, successes=0, failures=0,
                             bad_blocks=0, dropped=False, found_via="configured"),
        models.GatewayStatus(url=honest, score=NO_HISTORY_SCORE, successes=0, failures=0,
                             bad_blocks=0, dropped=False, found_via="configured")]
    assert not got.is_error, got.content  # the honest gateway answered what the liar faked
    result = models.FetchResult.model_validate(got.structured_content)
    assert result.resolved_cid == cid and result.size == len(data)
    lied, served = after.gateways
    # Asked first (same score, configured first), caught on its first block, never again.
    assert (lied.url, lied.bad_blocks, lied.failures, lied.successes, lied.dropped) == \
        (liar, 1, 3, 0, True)
    assert lied.score == LIAR_SCORE
    assert served.url == honest and not served.dropped and served.bad_blocks == 0
    assert served.successes >= 1 and served.failures == 0
    assert served.score > NO_HISTORY_SCORE > lied.score
    assert after.retrieval_sources == ["trustless-gateway"]


async def test_router_reputations_and_the_gateway_a_router_named(
        tmp_path: Path, elsewhere: HFCacheBackend) -> None:
    data = os.urandom(600_000)
    cid = elsewhere.add_bytes(data)
    dead = closed_port_url()
    lookup = InMemoryProviders()
    with anyio.fail_after(TIMEOUT):
        async with honest_gateway(elsewhere, lookup) as router:
            # Our router names its own gateway as the provider of every block, over HTTP
            # (a read at an offset asks the routers for the blocks it needs, one by one).
            port = router.rsplit(":", 1)[1]
            record = ProviderRecord(PEER, (f"/ip4/127.0.0.1/tcp/{port}/http",),
                                    ("transport-ipfs-gateway-http",))
            for block, _ in walk(parse_cid(cid), elsewhere.repo.blocks.get):
                lookup.add_provider(block, record)
            config = settings(tmp_path, delegated_routers=[dead, router])
            async with Client(build_server(config), mode="auto") as client:
                before = await read_health(client)
                got = await fetch(client, cid)
                after = await read_health(client)
    assert [(r.url, r.score, r.successes, r.failures) for r in before.delegated_routers] == \
        [(dead, NO_HISTORY_SCORE, 0, 0), (router, NO_HISTORY_SCORE, 0, 0)]
    assert not got.is_error, got.content
    assert models.FetchResult.model_validate(got.structured_content).size == len(data)
    failing, working = after.delegated_routers
    asked = working.successes
    assert asked >= 1  # both routers are asked every time
    assert (failing.url, failing.successes, failing.failures) == (dead, 0, asked)
    assert failing.consecutive_failures == asked
    assert failing.last_error is not None and dead in failing.last_error
    assert (working.url, working.failures, working.last_error) == (router, 0, None)
    assert working.score > NO_HISTORY_SCORE > failing.score
    (named,) = after.gateways
    assert (named.url, named.found_via, named.dropped) == (router, "delegated-routing", False)
    assert named.successes >= 1 and named.score > NO_HISTORY_SCORE
    assert after.retrieval_sources == ["delegated-routing"]
