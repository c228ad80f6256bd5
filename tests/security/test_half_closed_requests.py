"""Attack 12: requests that promise a body, send none and half-close the socket
(``shutdown(SHUT_WR)``) once stopped the gateway listening while the process kept running.
Each is now answered or dropped on its own, and the listener stays up: after every such
request the gateway (and the MCP HTTP server) still answers a normal one."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest

from ipfs_mcp.server.app import build_server
from ipfs_mcp.server.config import ServerSettings
from ipfs_mcp.server.gateway import BlockstoreSource, Gateway
from ipfs_mcp.server.http import serve_http
from tests.gateway.conftest import serving

TIMEOUT = 60
TRIES = 20  # the issue saw the listener go within one to ten of these
HALF_CLOSED = (b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n"
               b"Content-Type: application/json\r\nAccept: application/json, text/event-stream"
               b"\r\n\r\n")
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "raw", "version": "0"}}}

pytestmark = pytest.mark.anyio


async def half_closed_request(host: str, port: int, path: bytes) -> bytes:
    """Send a request whose promised body never comes, half-close, and read whatever the
    server says until it closes (bounded)."""
    stream = await anyio.connect_tcp(host, port)
    async with stream:
        await stream.send(HALF_CLOSED % path)
        await stream.send_eof()
        answer = bytearray()
        for _ in range(1000):  # bounded: the answer is a few hundred bytes
            try:
                chunk = await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                break
            answer.extend(chunk)
        return bytes(answer)


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


async def test_half_closed_posts_leave_the_gateway_listening(tmp_path: Path) -> None:
    from ipfs_mcp.backends.hf_cache import HFCacheBackend
    from ipfs_mcp.backends.repo.repository import Repo

    backend = HFCacheBackend(Repo(tmp_path / "repo", fsync=False))
    cid = backend.add_bytes(b"still here\n")
    gateway = Gateway(BlockstoreSource(backend.repo.blocks))
    with anyio.fail_after(TIMEOUT):
        async with serving(gateway) as http:
            port = _port(str(http.base_url))
            for path in (f"/ipfs/{cid}".encode(), b"/routing/v1/providers/" + cid.encode(),
                         b"/"):
                for _ in range(TRIES):
                    await half_closed_request("127.0.0.1", port, path)
                    answer = await http.get(f"/ipfs/{cid}")
                    assert answer.status_code == 200 and answer.content == b"still here\n"


async def test_half_closed_posts_leave_mcp_http_listening(work: Path) -> None:
    settings = ServerSettings.load({}, http="127.0.0.1:0", allow_roots=[str(work)],
                                   p2p=False)
    headers = {"accept": "application/json, text/event-stream",
               "content-type": "application/json"}
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            binds = await tg.start(serve_http, build_server(settings), settings)
            port = _port(binds[0])
            async with httpx.AsyncClient(base_url=binds[0], timeout=TIMEOUT) as http:
                for path in (b"/mcp", b"/elsewhere"):
                    for _ in range(TRIES):
                        await half_closed_request("127.0.0.1", port, path)
                        answer = await http.post("/mcp", json=INIT, headers=headers)
                        assert answer.status_code == 200
            tg.cancel_scope.cancel()

