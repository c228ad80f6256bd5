"""Attack 6: a gateway that sends one byte at a time stalls nothing.

A deliberately slow gateway answers every block with the right status and length and then
dribbles the real bytes one at a time: each read returns in time, so a per-read timeout
never fires. Configured before an honest gateway, it must lose each block to the honest
one (asked in parallel once the slow one has had its head start) and be recorded as slow
in its reputation; alone, it must hit the total deadline with a clear time-out.

The fetches go through the MCP client, as an agent's would. The honest gateway is our own
over another repo; the slow one is a socket server of this test's own on 127.0.0.1 whose
pace the test sets (one byte per ``DRIBBLE_EVERY`` until the test ends or the reader goes).
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest
from mcp import Client

from ipfs_mcp.backends.core.cids import parse_cid
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.server.app import build_server
from ipfs_mcp.server.config import ServerSettings
from ipfs_mcp.tools import models
from tests.server.test_health_http import honest_gateway, read_health, settings

pytestmark = pytest.mark.anyio
TIMEOUT = 30  # the bound on each whole scenario; a stalled fetch is what it catches
DRIBBLE_EVERY = 0.2  # seconds between two bytes of the slow gateway


@pytest.fixture
def elsewhere(tmp_path: Path) -> HFCacheBackend:
    """Another node's repo: what only the remote gateways hold."""
    return HFCacheBackend(Repo(tmp_path / "elsewhere", fsync=False))


@pytest.fixture
def dribbling_gateway() -> Iterator[Callable[[HFCacheBackend], tuple[str, list[str]]]]:
    """``start(backend)``: a deliberately slow gateway over ``backend``'s blocks. It
    answers ``200`` with the block's true length at once, then sends the block one byte
    per :data:`DRIBBLE_EVERY` seconds; returns its URL and the CIDs it was asked for."""
    done = threading.Event()
    listeners: list[socket.socket] = []

    def serve(conn: socket.socket, backend: HFCacheBackend, asked: list[str]) -> None:
        with conn:
            request = conn.recv(65536).decode("latin-1")
            target = request.split(" ", 2)[1] if request.count(" ") >= 2 else "/"
            cid = target.split("?")[0].removeprefix("/ipfs/")
            asked.append(cid)
            block = backend.repo.blocks.get(parse_cid(cid))
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.ipld.raw\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(block))
            for byte in block:  # bounded by the block; in practice by the reader leaving
                if done.wait(DRIBBLE_EVERY):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return  # the reader gave up on us

    def accept(listener: socket.socket, backend: HFCacheBackend, asked: list[str]) -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn, backend, asked), daemon=True).start()

    def start(backend: HFCacheBackend) -> tuple[str, list[str]]:
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)
        asked: list[str] = []
        threading.Thread(target=accept, args=(listener, backend, asked), daemon=True).start()
        return f"http://127.0.0.1:{listener.getsockname()[1]}", asked

    yield start
    done.set()
    for listener in listeners:
        listener.close()


async def test_slow_gateway_loses_to_an_honest_one_configured_after_it(
        tmp_path: Path, elsewhere: HFCacheBackend, dribbling_gateway) -> None:
    data = os.urandom(600_000)  # three leaves and a root
    cid = elsewhere.add_bytes(data)
    slow, asked_slow = dribbling_gateway(elsewhere)
    out = tmp_path / "work" / "model.bin"
    with anyio.fail_after(TIMEOUT):
        async with honest_gateway(elsewhere) as honest:
            config = settings(tmp_path, trustless_gateways=[slow, honest])
            async with Client(build_server(config), mode="auto") as client:
                got = await client.call_tool("fetch_cid", {"cid": cid,
                                                           "output_path": str(out)})
                after = await read_health(client)
    assert not got.is_error, got.content
    result = models.FetchResult.model_validate(got.structured_content)
    assert result.resolved_cid == cid and result.size == len(data)
    assert out.read_bytes() == data  # every byte, verified, from the honest gateway
    assert asked_slow and asked_slow[0] == cid  # it was asked first, and lost
    dribbler, served = after.gateways
    assert dribbler.url == slow and dribbler.successes == 0 and dribbler.failures >= 1
    assert not dribbler.dropped and dribbler.bad_blocks == 0  # slow, not a liar
    assert served.url == honest and served.successes >= 1 and served.failures == 0
    assert served.score > dribbler.score


async def test_a_lone_slow_gateway_hits_the_total_deadline(
        tmp_path: Path, elsewhere: HFCacheBackend, dribbling_gateway) -> None:
    data = os.urandom(1000)  # one block, which alone takes 1000 * DRIBBLE_EVERY to send
    cid = elsewhere.add_bytes(data)
    slow, asked = dribbling_gateway(elsewhere)
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPFS_")}
    env |= {"HF_HOME": str(tmp_path / "home"),
            "IPFS_API_TIMEOUT": "1"}  # the total time one block may take
    config = ServerSettings.load(env, p2p=False, trustless_gateways=[slow])
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(config), mode="auto") as client:
            got = await client.call_tool("fetch_cid", {"cid": cid, "length": 100})
            after = await read_health(client)
    assert got.is_error
    text = " ".join(getattr(c, "text", "") for c in got.content)
    assert "timed out" in text and slow in text and "Traceback" not in text, text
    assert asked == [cid]
    (dribbler,) = after.gateways
    assert dribbler.failures >= 1 and dribbler.successes == 0
