"""Gateway tests: a real embedded repo, our gateway served by hypercorn on the test's trio
loop (127.0.0.1, port 0), and httpx as the client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import pytest

from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.server.gateway import BlockstoreSource, Gateway, serve_gateway

TIMEOUT = 60


@pytest.fixture
def backend(tmp_path: Path) -> HFCacheBackend:
    """A real embedded repo (its blockstore verifies every read) to add content to."""
    return HFCacheBackend(Repo(tmp_path / "repo", fsync=False))


@pytest.fixture
def gateway(backend: HFCacheBackend) -> Gateway:
    return Gateway(BlockstoreSource(backend.repo.blocks))


@asynccontextmanager
async def serving(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway on 127.0.0.1:0 and a client whose base URL is it, all bounded in time."""
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            urls = await tg.start(serve_gateway, gateway, "127.0.0.1", 0)
            async with httpx.AsyncClient(base_url=urls[0], timeout=TIMEOUT) as client:
                yield client
            tg.cancel_scope.cancel()


async def cut_short(http: httpx.AsyncClient, url: str) -> bytes:
    """The bytes of a 200 answer whose body the gateway cut (it stops without finishing
    the message, so the client sees a truncated response, never a short complete one)."""
    received = bytearray()
    async with http.stream("GET", url) as response:
        assert response.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            async for chunk in response.aiter_raw():
                received.extend(chunk)
    return bytes(received)
