"""Attacks 8 and 9: what HTTP clients may hold of the server.

- Attack 8: connections that ask the gateway for a large file and then read nothing held
  its slots, so everyone else got 429 for as long as they stayed. A response whose client
  takes nothing for ``send_idle`` seconds is now dropped and its slot freed; and one client
  address holds at most ``gateway_per_client`` slots, so others are served meanwhile.
- Attack 9: every MCP HTTP session cost memory that was never freed. Sessions are now
  capped (one more is answered 503, saying why) and end when the client deletes them or
  leaves them idle.

Each runs over real sockets on loopback. A client's address is chosen by binding its
socket to another loopback address (127.0.0.2...); the server is always at 127.0.0.1.
"""

from __future__ import annotations

import os
import random
import socket
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import anyio
import httpx
import pytest
from anyio.abc import SocketStream
from multiformats import CID

from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.server.app import build_server
from ipfs_mcp.server.config import ServerSettings, ServingLimits
from ipfs_mcp.server.gateway import BlockstoreSource, Gateway, GatewayLimits, serve_gateway
from ipfs_mcp.server.gateway.slots import client_key
from ipfs_mcp.server.gateway.wiring import start_gateway
from ipfs_mcp.server.http import serve_http
from ipfs_mcp.server.state import NodeSlot, lifespan_state

pytestmark = pytest.mark.anyio

TIMEOUT = 60  # generous: each wait here ends in a few seconds when the bound holds
# The send deadline where an honest client shares the test's loop with the server: long
# enough that a loaded machine cannot starve the honest reader past it.
STALLED_FOR = 3.0
# Bigger than what the kernel buffers for a client that reads nothing (the server's send
# buffer grows to 4 MiB on Linux; the stalled client's receive buffer is set small), so the
# server's writes block and only the send deadline can free the slot.
LARGE = 16 * 1024 * 1024
STALLED_RCVBUF = 64 * 1024
RETRY_PAUSE = 0.05
PROTOCOL = "2025-11-25"
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": PROTOCOL, "capabilities": {},
                   "clientInfo": {"name": "raw", "version": "0"}}}
MCP_HEADERS = {"accept": "application/json, text/event-stream",
               "content-type": "application/json"}


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def _server_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPFS_")}
    env["HF_HOME"] = str(tmp_path / "home")
    return env


async def stalled_request(held: AsyncExitStack, source: str, port: int,
                          path: str) -> SocketStream:
    """A client at ``source`` that asks for ``path``, reads the status line (so the
    gateway's handler is running and holds its slot) and then nothing more. ``held``
    closes it, before the server stops: a server's shielded write to it would otherwise
    hold up the server's end (by up to its send deadline) whenever a test fails."""
    stream = await held.enter_async_context(
        await anyio.connect_tcp("127.0.0.1", port, local_host=source))
    raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STALLED_RCVBUF)
    await stream.send(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    head = await stream.receive(16)
    assert head.startswith(b"HTTP/1.1 200"), head
    return stream


async def drained_until_dropped(stream: SocketStream) -> int:
    """Read what the kernel buffered for a stalled client until the server's close shows
    (end of stream or a reset); the number of bytes read. Bounded in count (the buffers
    hold a few MiB) and by the caller's deadline."""
    received = 0
    async with stream:
        for _ in range(LARGE // 1024 + 1):
            try:
                received += len(await stream.receive(1024 * 1024))
            except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionResetError):
                return received
    raise AssertionError(f"the whole {LARGE}-byte response arrived: it was never dropped")


async def served_once_free(http: httpx.AsyncClient, url: str) -> httpx.Response:
    """GET ``url`` until it is not 429 (each 429 says to retry in a second; bounded by the
    caller's deadline and in count)."""
    for _ in range(int(TIMEOUT / RETRY_PAUSE)):
        answer = await http.get(url)
        if answer.status_code != 429:
            return answer
        assert answer.headers["retry-after"] == "1"
        await anyio.sleep(RETRY_PAUSE)
    raise AssertionError(f"{url} stayed 429")


def client_at(source: str) -> httpx.AsyncClient:
    """An HTTP client whose connections come from ``source`` (a loopback address)."""
    return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(local_address=source),
                             timeout=TIMEOUT)


@asynccontextmanager
async def configured_gateway(tmp_path: Path, serving: ServingLimits,
                             data: bytes) -> AsyncIterator[tuple[str, str]]:
    """The gateway as ``ipfs-mcp serve --gateway 127.0.0.1:0`` runs it with these serving
    bounds, over the server's Router holding ``data``; its URL and the data's CID."""
    settings = ServerSettings.load(_server_env(tmp_path), p2p=False, gateway="127.0.0.1:0",
                                   serving=serving)
    slot = NodeSlot()
    async with lifespan_state(settings, slot=slot) as state:
        cid = await anyio.to_thread.run_sync(lambda: state.router.add_bytes(data))
        async with anyio.create_task_group() as tg:
            urls = await start_gateway(tg, settings, slot)
            yield urls[0], str(cid)
            tg.cancel_scope.cancel()


async def test_clients_that_never_read_are_dropped_and_an_honest_client_is_served(
        tmp_path: Path) -> None:
    """Attack 8: every slot held, from several addresses, by a client reading nothing."""
    data = random.Random(8).randbytes(LARGE)
    backend = HFCacheBackend(Repo(tmp_path / "repo", fsync=False))
    cid = backend.add_bytes(data)
    slots = 4
    gateway = Gateway(BlockstoreSource(backend.repo.blocks),
                      limits=GatewayLimits(max_in_flight=slots, max_per_client=1))
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            urls = await tg.start(lambda task_status: serve_gateway(
                gateway, "127.0.0.1", 0, write_timeout=STALLED_FOR,
                task_status=task_status))
            port = _port(urls[0])
            async with AsyncExitStack() as held:
                stalled = [await stalled_request(held, f"127.0.0.{2 + i}", port,
                                                 f"/ipfs/{cid}") for i in range(slots)]
                async with httpx.AsyncClient(base_url=urls[0], timeout=TIMEOUT) as honest:
                    answer = await served_once_free(honest, f"/ipfs/{cid}")
                assert answer.status_code == 200 and answer.content == data
                for stream in stalled:
                    assert await drained_until_dropped(stream) < LARGE
            tg.cancel_scope.cancel()


class SlowSource:
    """A deliberately slow source (a recursive gateway's remote): each block after a pause,
    counted, so the test can tell how much a request fetched."""

    def __init__(self, blocks: BlockstoreSource, pause: float) -> None:
        self._blocks = blocks
        self._pause = pause
        self.served = 0

    def get_block(self, cid: CID) -> bytes:
        time.sleep(self._pause)  # a worker thread's, as every BlockSource call is
        self.served += 1
        return self._blocks.get_block(cid)


async def test_a_dropped_client_stops_its_request_fetching_through_a_slow_source(
        tmp_path: Path) -> None:
    """Attack 8 on a recursive gateway: once a client that reads nothing is dropped, its
    request stops fetching (and frees its slot) instead of fetching the rest for no one."""
    data = random.Random(83).randbytes(LARGE)
    elsewhere = HFCacheBackend(Repo(tmp_path / "elsewhere", fsync=False))
    cid = elsewhere.add_bytes(data)
    blocks = sum(1 for _ in elsewhere.repo.blocks.iter_multihashes())
    here = HFCacheBackend(Repo(tmp_path / "here", fsync=False))
    small = here.add_bytes(b"held here\n")
    slow = SlowSource(BlockstoreSource(elsewhere.repo.blocks), pause=0.1)
    gateway = Gateway(BlockstoreSource(here.repo.blocks), remote=slow,
                      limits=GatewayLimits(max_in_flight=1))
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            urls = await tg.start(lambda task_status: serve_gateway(
                gateway, "127.0.0.1", 0, write_timeout=1.0, task_status=task_status))
            async with AsyncExitStack() as held:
                stalled = await stalled_request(held, "127.0.0.2", _port(urls[0]),
                                                f"/ipfs/{cid}")
                async with httpx.AsyncClient(base_url=urls[0], timeout=TIMEOUT) as honest:
                    answer = await served_once_free(honest, f"/ipfs/{small}")
                assert answer.status_code == 200 and answer.content == b"held here\n"
                assert await drained_until_dropped(stalled) < LARGE
            tg.cancel_scope.cancel()
    assert slow.served < blocks, "the dropped request fetched the whole file for no one"


async def test_one_address_holds_at_most_its_slots_and_others_are_served(
        tmp_path: Path) -> None:
    """Attack 8 from one address: ``--gateway-max-per-client`` requests in flight; one more
    is 429 with Retry-After while another address is served in full."""
    data = random.Random(81).randbytes(LARGE)
    per_client = 2
    with anyio.fail_after(TIMEOUT):
        async with configured_gateway(tmp_path, ServingLimits(gateway_per_client=per_client),
                                      data) as (url, cid), AsyncExitStack() as held:
            port = _port(url)
            hogs = [await stalled_request(held, "127.0.0.2", port, f"/ipfs/{cid}")
                    for _ in range(per_client)]
            async with client_at("127.0.0.2") as same, client_at("127.0.0.1") as other:
                refused = await same.get(f"{url}/ipfs/{cid}?format=raw")
                assert refused.status_code == 429, refused.text
                assert refused.headers["retry-after"] == "1"
                assert "from your address" in refused.text
                served = await other.get(f"{url}/ipfs/{cid}")
                assert served.status_code == 200 and served.content == data
                for hog in hogs:
                    await hog.aclose()
                again = await served_once_free(same, f"{url}/ipfs/{cid}")
                assert again.status_code == 200 and again.content == data


async def test_send_idle_from_the_settings_drops_a_stalled_gateway_client(
        tmp_path: Path) -> None:
    """``--send-idle`` reaches the gateway ``serve --gateway`` runs: the address whose
    clients read nothing is served again once they are dropped."""
    data = random.Random(82).randbytes(LARGE)
    per_client = 2
    serving = ServingLimits(send_idle=1.0, gateway_per_client=per_client)
    with anyio.fail_after(TIMEOUT):
        async with configured_gateway(tmp_path, serving, data) as (url, cid), \
                AsyncExitStack() as held:
            port = _port(url)
            stalled = [await stalled_request(held, "127.0.0.2", port, f"/ipfs/{cid}")
                       for _ in range(per_client)]
            async with client_at("127.0.0.2") as same:
                answer = await served_once_free(same, f"{url}/ipfs/{cid}")
            assert answer.status_code == 200 and answer.content == data
            for stream in stalled:
                assert await drained_until_dropped(stream) < LARGE


@asynccontextmanager
async def mcp_over_http(work: Path, serving: ServingLimits) -> AsyncIterator[httpx.AsyncClient]:
    settings = ServerSettings.load({}, http="127.0.0.1:0", allow_roots=[str(work)],
                                   p2p=False, serving=serving)
    async with anyio.create_task_group() as tg:
        binds = await tg.start(serve_http, build_server(settings), settings)
        async with httpx.AsyncClient(base_url=binds[0], timeout=TIMEOUT) as http:
            yield http
        tg.cancel_scope.cancel()


async def open_session(http: httpx.AsyncClient) -> httpx.Response:
    return await http.post("/mcp", json=INIT, headers=MCP_HEADERS)


async def test_mcp_sessions_are_capped_and_a_deleted_one_frees_its_place(work: Path) -> None:
    """Attack 9: sessions opened and never closed. The one beyond ``--http-max-sessions`` is
    503 with the reason; once a client ends its session (DELETE) a new one is accepted."""
    cap = 3
    with anyio.fail_after(TIMEOUT):
        async with mcp_over_http(work, ServingLimits(max_sessions=cap)) as http:
            ids = []
            for _ in range(cap):
                opened = await open_session(http)
                assert opened.status_code == 200
                ids.append(opened.headers["mcp-session-id"])
            refused = await open_session(http)
            assert refused.status_code == 503
            assert "Too many open sessions" in refused.json()["error"]["message"]
            assert "mcp-session-id" not in refused.headers
            ended = await http.delete("/mcp", headers={
                **MCP_HEADERS, "mcp-session-id": ids[0], "mcp-protocol-version": PROTOCOL})
            assert ended.status_code == 200
            accepted = await open_session(http)
            assert accepted.status_code == 200 and accepted.headers["mcp-session-id"]
            # The ended session is gone; the others still answer.
            gone = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "ping"},
                                   headers={**MCP_HEADERS, "mcp-session-id": ids[0],
                                            "mcp-protocol-version": PROTOCOL})
            assert gone.status_code == 404
            alive = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "ping"},
                                    headers={**MCP_HEADERS, "mcp-session-id": ids[1],
                                             "mcp-protocol-version": PROTOCOL})
            assert alive.status_code == 200


async def test_idle_mcp_sessions_end_and_free_their_places(work: Path) -> None:
    """Attack 9, the client that never says goodbye: sessions left idle for
    ``--http-session-idle`` end, and new sessions are accepted again."""
    cap = 3
    with anyio.fail_after(TIMEOUT):
        async with mcp_over_http(work, ServingLimits(max_sessions=cap,
                                                     session_idle=1.0)) as http:
            ids = [(await open_session(http)).headers["mcp-session-id"] for _ in range(cap)]
            accepted = None
            for _ in range(int(TIMEOUT / RETRY_PAUSE)):  # 503 until the idle ones end
                accepted = await open_session(http)
                if accepted.status_code != 503:
                    break
                await anyio.sleep(RETRY_PAUSE)
            assert accepted is not None and accepted.status_code == 200
            expired = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 2,
                                                    "method": "ping"},
                                      headers={**MCP_HEADERS, "mcp-session-id": ids[0],
                                               "mcp-protocol-version": PROTOCOL})
            assert expired.status_code == 404


def test_a_client_is_its_address_and_an_ipv6_client_its_64() -> None:
    """The slots count an IPv6 client by its /64 (a subscriber's usual block: its 2**64
    addresses apart would bound nothing), an IPv4-mapped one by its IPv4 address."""
    def key(host: str) -> str:
        return client_key({"client": (host, 1234)})

    assert key("127.0.0.2") == "127.0.0.2" != key("127.0.0.3")
    assert key("2001:db8:1:2::1") == key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert key("2001:db8:1:3::1") != key("2001:db8:1:2::1")
    assert key("::ffff:10.0.0.1") == "10.0.0.1"
    assert client_key({"client": None}) == client_key({}) == ""
