"""Node to node over HTTP: a node serves its blocks as a read-only trustless gateway where it
listens and advertises it as an ``/http`` address; another node fetches whole DAGs from it
as verified CAR streams before bitswap, and refuses a provider whose HTTP endpoint lies."""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import trio

from ipfs_mcp.backends.core.car import read_car, write_car
from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.core.dag import walk
from ipfs_mcp.backends.core.exporter import Exporter
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.p2p import P2PNode, open_node
from ipfs_mcp.server.config import ServerSettings
from ipfs_mcp.server.gateway.asgi import lifespan
from ipfs_mcp.server.gateway.node_routing import http_multiaddrs
from ipfs_mcp.server.gateway.wiring import retrieval_gateway, serve_http_retrieval
from ipfs_mcp.server.state import NodeSlot, PeerCarStreams, run_node

from .nodes import add_bytes, config, node_at, repo_at

pytestmark = pytest.mark.anyio

SIZE = 6 * 1024 * 1024 + 12345  # 25 leaves and a root (several MiB, multi-block)


def settings(**overrides: Any) -> ServerSettings:
    return ServerSettings.load({}, **overrides)


class Recording:
    """The provider's gateway, with every request it saw."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.requests.append(f"{scope['path']}?{scope['query_string'].decode()}")
        await self.app(scope, receive, send)


class LyingHttpProvider:
    """A deliberately lying HTTP endpoint: every CAR it sends names the root asked for,
    and carries that root block with one byte flipped."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self.requests: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        from ipfs_mcp.backends.core.cids import parse_cid

        self.requests.append(scope["path"])
        root = parse_cid(scope["path"].split("/")[2])
        block = bytearray(self.repo.blocks.get(root))
        block[len(block) // 2] ^= 0xFF
        out = io.BytesIO()
        write_car(out, [root], iter([(root, bytes(block))]))
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/vnd.ipld.car; version=1; order=dfs; dups=n")]})
        await send({"type": "http.response.body", "body": out.getvalue()})


@asynccontextmanager
async def http_provider(path: Path, app: Any | None = None
                        ) -> AsyncIterator[tuple[P2PNode, Recording]]:
    """One of our nodes serving its repo over HTTP retrieval (recorded), advertised."""
    served = Recording(app or retrieval_gateway(settings(), repo_at(path).blocks))
    listen = ("/ip4/127.0.0.1/tcp/0",)
    async with anyio.create_task_group() as tg:
        urls = await serve_http_retrieval(tg, settings(), served, listen)
        cfg = config(listen_addrs=listen, http_addrs=http_multiaddrs(urls))
        async with node_at(path, cfg) as node:
            yield node, served
        tg.cancel_scope.cancel()


@asynccontextmanager
async def http_fetcher(path: Path) -> AsyncIterator[tuple[P2PNode, PeerCarStreams]]:
    streams = PeerCarStreams(repo_at(path).blocks)
    try:
        async with open_node(repo_at(path), config(), http=streams) as node:
            yield node, streams
    finally:
        streams.close()


def same_dag(src: Repo, dst: Repo, root: Any) -> int:
    n = 0
    for cid, block in walk(root, src.blocks.get):
        assert dst.blocks.get(cid) == block  # the fetcher's store verifies on read
        n += 1
    return n


@pytest.mark.parametrize("cid_version", [0, 1])
async def test_fetch_between_our_nodes_goes_over_http_car(tmp_path: Path,
                                                          cid_version: int) -> None:
    data = os.urandom(SIZE)
    root = add_bytes(repo_at(tmp_path / "a"), data, cid_version=cid_version)
    with trio.fail_after(60):
        async with http_provider(tmp_path / "a") as (a, served), \
                http_fetcher(tmp_path / "b") as (b, _):
            assert a.http_addrs and all(x.endswith("/http") for x in a.http_addrs)
            assert not any("/http" in x for x in a.addrs)  # libp2p addresses only
            await b.connect_peer(a.addrs[0])
            # Identify told b where a serves HTTP.
            known = [str(m) for m in b.host.get_peerstore().addrs(a.host.get_id())]
            assert any(x.startswith(a.http_addrs[0]) for x in known)
            report = await b.fetch_dag(root)
            cars = [r for r in served.requests if "format=car" in r]
            assert cars and cars[0].startswith(f"/ipfs/{cid_str(root)}?")
            assert all("dag-scope=all" in r for r in cars)
            # No bitswap want for the DAG reached the provider.
            assert a.bitswap.ledger(b.host.get_id()).wants_received == 0
            assert b.bitswap.ledger(a.host.get_id()).blocks_received == 0
            n = same_dag(repo_at(tmp_path / "a"), repo_at(tmp_path / "b"), root)
            assert report.blocks == report.fetched == n > 20
            assert report.bytes_fetched >= SIZE
            assert b.stats().handled == 1
    assert Exporter(repo_at(tmp_path / "b").blocks.get).read(root) == data


@pytest.mark.parametrize("cid_version", [0, 1])
async def test_a_dag_whose_root_a_reader_took_first_still_comes_over_http_car(
        tmp_path: Path, cid_version: int) -> None:
    """``fetch_cid`` reads the root first (one block, over bitswap), then fetches the DAG
    under it: the rest comes as one CAR, not as bitswap wants, and without a DHT lookup."""
    data = os.urandom(SIZE)
    root = add_bytes(repo_at(tmp_path / "a"), data, cid_version=cid_version)
    with trio.fail_after(60):
        async with http_provider(tmp_path / "a") as (a, served), \
                http_fetcher(tmp_path / "b") as (b, _):
            await b.connect_peer(a.addrs[0])
            await b.fetch_block(root)
            assert b.bitswap.ledger(a.host.get_id()).blocks_received == 1
            report = await b.fetch_dag(root)
            cars = [r for r in served.requests if "format=car" in r]
            assert cars == [f"/ipfs/{cid_str(root)}?format=car&dag-scope=all&car-dups=n"]
            assert b.bitswap.ledger(a.host.get_id()).blocks_received == 1  # the root only
            n = same_dag(repo_at(tmp_path / "a"), repo_at(tmp_path / "b"), root)
            assert report.blocks == n > 20
    assert Exporter(repo_at(tmp_path / "b").blocks.get).read(root) == data


async def test_lying_http_provider_is_refused_and_fetch_completes_over_bitswap(
        tmp_path: Path) -> None:
    data = os.urandom(SIZE)
    root = add_bytes(repo_at(tmp_path / "a"), data)
    liar = LyingHttpProvider(repo_at(tmp_path / "a"))
    with trio.fail_after(60):
        async with http_provider(tmp_path / "a", liar) as (a, _), \
                http_fetcher(tmp_path / "b") as (b, streams):
            await b.connect_peer(a.addrs[0])
            report = await b.fetch_dag(root)
            assert liar.requests == [f"/ipfs/{cid_str(root)}"]  # asked once, then dropped
            assert list(streams.dropped) == [a.http_addrs[0].replace(
                "/ip4/", "http://").replace("/tcp/", ":").removesuffix("/http")]
            # Every block came over bitswap from the same (honest) node.
            assert a.bitswap.ledger(b.host.get_id()).wants_received >= report.blocks
            n = same_dag(repo_at(tmp_path / "a"), repo_at(tmp_path / "b"), root)
            assert report.fetched == report.blocks == n
            assert report.by_peer == {a.peer_id: n}
            # A second fetch does not ask the liar again.
            more = add_bytes(repo_at(tmp_path / "a"), os.urandom(SIZE // 4))
            await b.fetch_dag(more)
            assert len(liar.requests) == 1
    assert Exporter(repo_at(tmp_path / "b").blocks.get).read(root) == data


async def test_node_serves_what_it_holds_over_http_and_advertises_it(tmp_path: Path) -> None:
    """As the server runs it: the retrieval gateway where the node listens, read-only and
    not recursive, its address advertised; and none with --no-http-retrieval."""
    repo = Repo(tmp_path / "repo", fsync=False)
    here = add_bytes(repo, os.urandom(300_000))
    elsewhere = add_bytes(repo_at(tmp_path / "other"), b"not here\n")
    with trio.fail_after(60):
        async with anyio.create_task_group() as tg:
            slot = NodeSlot()
            tg.start_soon(run_node, settings(), repo, slot)
            node = await slot.wait()
            assert node is not None, slot.status
            [addr] = node.http_addrs
            assert addr.startswith("/ip4/127.0.0.1/tcp/") and addr.endswith("/http")
            assert any(str(a).startswith(addr) for a in node.host.get_addrs())
            base = "http://127.0.0.1:" + addr.split("/")[4]
            async with httpx.AsyncClient() as client:
                car = await client.get(f"{base}/ipfs/{cid_str(here)}?format=car")
                missing = await client.get(f"{base}/ipfs/{cid_str(elsewhere)}?format=raw")
                put = await client.post(f"{base}/ipfs/{cid_str(here)}")
            roots, blocks = read_car(io.BytesIO(car.content))
            assert car.status_code == 200 and roots == [here] and len(list(blocks)) == 3
            assert missing.status_code == 404  # only what it holds: nothing fetched
            assert put.status_code == 405
            tg.cancel_scope.cancel()
        async with anyio.create_task_group() as tg:
            slot = NodeSlot()
            tg.start_soon(run_node, settings(http_retrieval=False), repo, slot)
            node = await slot.wait()
            assert node is not None and node.http_addrs == []
            tg.cancel_scope.cancel()


async def test_http_retrieval_serves_only_where_the_node_listens() -> None:
    from ipfs_mcp.server.gateway.wiring import listen_hosts

    assert listen_hosts(["/ip4/127.0.0.1/tcp/0"]) == ["127.0.0.1"]
    assert listen_hosts(["/ip4/127.0.0.1/tcp/4001", "/ip4/0.0.0.0/tcp/4001"]) == ["0.0.0.0"]
    assert listen_hosts(["/ip4/192.168.1.5/tcp/0", "/ip6/::1/tcp/0"]) == ["192.168.1.5", "::1"]
