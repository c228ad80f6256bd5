"""A whole-DAG CAR is read many blocks to a worker-thread hop, and each block once: counted
through the components the gateway is given (its threads and its block source), both real.
Through the Router's seam, each block is asked for by its canonical text."""

from __future__ import annotations

import random
from collections.abc import Callable, Collection
from typing import TypeVar

import anyio
import httpx
import pytest
from multiformats import CID

from ipfs_mcp.backends.core.cids import cid_str, parse_cid
from ipfs_mcp.backends.core.dag import walk
from ipfs_mcp.backends.core.importer import ImportOptions
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.server.gateway import BlockstoreSource, Gateway, GatewayLimits, serve_gateway
from ipfs_mcp.server.gateway.asgi import Receive, Scope, Send
from ipfs_mcp.server.gateway.loader import AnyioThreads
from ipfs_mcp.server.gateway.source import RouterSource

from .conftest import TIMEOUT, serving
from .test_trustless import car_of

pytestmark = pytest.mark.anyio

T = TypeVar("T")


class CountingThreads(AnyioThreads):
    """anyio's worker threads, counting the hops."""

    def __init__(self) -> None:
        self.hops = 0

    async def run_sync(self, func: Callable[[], T]) -> T:
        self.hops += 1
        return await super().run_sync(func)


class CountingSource(BlockstoreSource):
    """The repo's verifying blockstore (one hash per read), counting reads per block."""

    def __init__(self, backend: HFCacheBackend) -> None:
        super().__init__(backend.repo.blocks)
        self.reads: dict[CID, int] = {}

    def get_block(self, cid: CID) -> bytes:
        self.reads[cid] = self.reads.get(cid, 0) + 1
        return super().get_block(cid)


async def test_a_many_block_car_takes_fewer_hops_than_blocks(backend: HFCacheBackend) -> None:
    # 400 leaves of 1 KiB under a root; 64 KiB a chunk, so the body takes several chunks.
    data = random.Random(7).randbytes(400 * 1024)
    root = parse_cid(backend.add_bytes(data, options=ImportOptions(cid_version=1,
                                                                   chunk_size=1024)))
    expected = [cid for cid, _ in walk(root, backend.repo.blocks.get)]
    threads, source = CountingThreads(), CountingSource(backend)
    gateway = Gateway(source, limits=GatewayLimits(chunk_bytes=64 * 1024), threads=threads)
    async with serving(gateway) as http:
        response = await http.get(f"/ipfs/{root}?format=car&dag-scope=all&car-dups=n")
    assert response.status_code == 200
    assert [cid for cid, _ in car_of(response.content)[1]] == expected  # DFS, each once
    assert len(expected) > 400
    # The resolve, then a hop per 64 KiB: several, but far fewer than blocks.
    assert 3 <= threads.hops < len(expected) // 10
    # Each block read (and so hashed by the blockstore) once for the request.
    assert set(source.reads) == set(expected)
    assert set(source.reads.values()) == {1}


class RecordingReads:
    """The Router's side of :class:`RouterSource`: the repo's blocks by CID text, recording
    the text each read was asked with."""

    def __init__(self, backend: HFCacheBackend) -> None:
        self.backend = backend
        self.asked: list[str] = []

    def block_get_from(self, cid: str, *, sources: Collection[str] = ()) -> bytes:
        self.asked.append(cid)
        return self.backend.block_get(cid)


@pytest.mark.parametrize("version", [0, 1])
async def test_the_router_is_asked_by_the_canonical_text(backend: HFCacheBackend,
                                                         version: int) -> None:
    data = random.Random(version).randbytes(8 * 1024)
    root = parse_cid(backend.add_bytes(data, options=ImportOptions(cid_version=version,
                                                                   chunk_size=1024)))
    expected = [cid for cid, _ in walk(root, backend.repo.blocks.get)]
    reads = RecordingReads(backend)
    async with serving(Gateway(RouterSource(reads))) as http:
        response = await http.get(f"/ipfs/{root}?format=car&dag-scope=all")
    assert [cid for cid, _ in car_of(response.content)[1]] == expected
    assert reads.asked == [cid_str(cid) for cid in expected]


class Finished:
    """The gateway as served, with an event set once each HTTP request's handler returns."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.done = anyio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.gateway(scope, receive, send)
        finally:
            if scope["type"] == "http":
                self.done.set()


async def test_a_client_that_hangs_up_stops_the_read_ahead(backend: HFCacheBackend) -> None:
    # 32 MiB in 128 leaves of 256 KiB, more than loopback's socket buffers hold: a client
    # that reads a MiB and hangs up must stop the walk before its end.
    data = random.Random(3).randbytes(32 * 1024 * 1024)
    root = parse_cid(backend.add_bytes(data, options=ImportOptions(cid_version=1)))
    total = len(list(walk(root, backend.repo.blocks.get)))
    source = CountingSource(backend)
    served = Finished(Gateway(source, limits=GatewayLimits(chunk_bytes=256 * 1024)))
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            urls = await tg.start(serve_gateway, served, "127.0.0.1", 0)
            async with httpx.AsyncClient(base_url=urls[0], timeout=TIMEOUT) as http:
                port = int(urls[0].rsplit(":", 1)[1])
                async with await anyio.connect_tcp("127.0.0.1", port) as client:
                    await client.send(f"GET /ipfs/{root}?format=car HTTP/1.1\r\n"
                                      "Host: 127.0.0.1\r\n\r\n".encode())
                    received = await client.receive()
                    assert received.startswith(b"HTTP/1.1 200")
                    for _ in range(1000):  # a MiB of the body, then hang up
                        if len(received) >= 1024 * 1024:
                            break
                        received += await client.receive()
                await served.done.wait()
                assert len(source.reads) < total, (len(source.reads), total)
                again = await http.get(f"/ipfs/{root}?format=car&dag-scope=block")
                assert again.status_code == 200  # its slot was given back
            tg.cancel_scope.cancel()
