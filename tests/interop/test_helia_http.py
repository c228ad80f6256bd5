"""Helia over HTTP against our gateway: its trustless-gateway block broker fetches UnixFS
DAGs that our node stored, and its delegated routing client reads our ``/routing/v1``.

Helia here is a light node with no libp2p and no bitswap (``js/helia_http.mjs``), so every
block it has came over HTTP from our gateway; the gateway runs on this test's trio loop
(hypercorn, 127.0.0.1, port 0) over a real embedded repo.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID
from mcp import Client
from multiformats import CID

from ipfs_mcp.backends.core.cids import cid_str, parse_cid
from ipfs_mcp.backends.core.dag import walk
from ipfs_mcp.backends.core.importer import ImportOptions
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.server.app import build_server
from ipfs_mcp.server.config import ServerSettings
from ipfs_mcp.server.gateway import (
    BlockstoreSource,
    Gateway,
    InMemoryProviders,
    PeerRecord,
    ProviderRecord,
    serve_gateway,
)
from ipfs_mcp.server.gateway.node_routing import BITSWAP, GATEWAY_HTTP
from ipfs_mcp.server.gateway.wiring import start_gateway
from ipfs_mcp.server.state import NodeSlot

from .jsenv import js_skip_reason, run_js

pytestmark = [pytest.mark.anyio, pytest.mark.interop]
TIMEOUT = 90
JS_TIMEOUT_MS = 60_000


@pytest.fixture(autouse=True)
def _needs_js() -> None:
    reason = js_skip_reason()
    if reason is not None:
        pytest.skip(reason)


class ServedBlocks:
    """Our repo's blockstore as the gateway's source, noting every block asked and served
    (so the test can tell the bytes Helia holds went out over this gateway)."""

    def __init__(self, backend: HFCacheBackend) -> None:
        self._source = BlockstoreSource(backend.repo.blocks)
        self._lock = threading.Lock()  # called from the gateway's worker threads
        self.asked: set[str] = set()
        self.served: set[str] = set()

    def get_block(self, cid: CID) -> bytes:
        with self._lock:
            self.asked.add(cid_str(cid))
        data = self._source.get_block(cid)
        with self._lock:
            self.served.add(cid_str(cid))
        return data


@pytest.fixture
def backend(tmp_path: Path) -> HFCacheBackend:
    return HFCacheBackend(Repo(tmp_path / "repo", fsync=False))


@asynccontextmanager
async def gateway_on_loopback(gateway: Gateway) -> AsyncIterator[str]:
    """Our gateway on 127.0.0.1:0 for the block's duration; yields its base URL."""
    async with anyio.create_task_group() as tg:
        urls: list[str] = await tg.start(serve_gateway, gateway, "127.0.0.1", 0)
        yield urls[0]
        tg.cancel_scope.cancel()


async def helia_http(request: dict[str, Any]) -> dict[str, Any]:
    """Run one ``helia_http.mjs`` request in Node (off the loop, which keeps serving)."""
    request = {"timeout_ms": JS_TIMEOUT_MS, **request}
    out = await anyio.to_thread.run_sync(
        lambda: run_js("helia_http.mjs", json.dumps(request), timeout=JS_TIMEOUT_MS / 1000 + 30))
    return dict(json.loads(out))


def dag_blocks(backend: HFCacheBackend, root: str) -> set[str]:
    return {cid_str(cid) for cid, _ in walk(parse_cid(root), backend.repo.blocks.get)}


def multihash_of(cid: str) -> bytes:
    return bytes(parse_cid(cid).digest)


def tree_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def stored_content(tmp_path: Path, backend: HFCacheBackend) -> tuple[str, bytes, str, Path]:
    """A multi-block CIDv0 file and a CIDv1 (raw-leaves) folder with a nested multi-block
    file, added to our repo: (file CID, its bytes, folder CID, the source folder)."""
    data = os.urandom(5 * 262_144 + 12_345)  # six leaves under a dag-pb root
    file_cid = backend.add_bytes(data)
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text('{"layers": 2}\n')
    (folder / "sub" / "weights.bin").write_bytes(os.urandom(3 * 262_144 + 7))
    (folder / "sub" / "empty.txt").write_bytes(b"")
    dir_cid = cid_str(backend.add_path(folder, options=ImportOptions(cid_version=1)).root)
    return file_cid, data, dir_cid, folder


async def test_helia_trustless_gateway_client_fetches_a_file_and_a_folder(
        tmp_path: Path, backend: HFCacheBackend) -> None:
    file_cid, data, dir_cid, folder = stored_content(tmp_path, backend)
    served = ServedBlocks(backend)
    # Our /routing/v1 knows no provider here, so Helia falls back to the gateway it is given.
    gateway = Gateway(served, providers=InMemoryProviders())
    with anyio.fail_after(TIMEOUT):
        async with gateway_on_loopback(gateway) as url:
            got = await helia_http({"op": "fetch", "gateways": [url], "routers": [url],
                                    "items": [
                {"cid": file_cid, "dest": str(tmp_path / "out.bin")},
                {"cid": dir_cid, "dest": str(tmp_path / "out-dir")}]})
    assert got["items"] == [{"cid": file_cid, "type": "file"},
                            {"cid": dir_cid, "type": "directory"}]
    assert (tmp_path / "out.bin").read_bytes() == data
    assert tree_of(tmp_path / "out-dir") == tree_of(folder)
    # Helia has exactly the two DAGs' blocks, and each of them went out over our gateway.
    expected = dag_blocks(backend, file_cid) | dag_blocks(backend, dir_cid)
    assert len(expected) > 10
    # Helia's blockstore keys blocks by multihash (it lists them as raw CIDv1s).
    assert {multihash_of(c) for c in got["blocks"]} == {multihash_of(c) for c in expected}
    assert expected <= served.served


async def test_helia_finds_our_gateway_through_our_routing_v1_and_fetches(
        tmp_path: Path, backend: HFCacheBackend) -> None:
    """No gateway configured in Helia: only our ``/routing/v1``, whose provider record for
    the file names our gateway's ``/http`` address."""
    data = os.urandom(4 * 262_144 + 1)
    cid = backend.add_bytes(data, options=ImportOptions(cid_version=1))
    lookup = InMemoryProviders()
    served = ServedBlocks(backend)
    with anyio.fail_after(TIMEOUT):
        async with gateway_on_loopback(Gateway(served, providers=lookup)) as url:
            port = url.rsplit(":", 1)[1]
            us = ProviderRecord(peer_id(), (f"/ip4/127.0.0.1/tcp/{port}/http",),
                                (GATEWAY_HTTP,))
            # Every block is announced, as Kubo's default provide strategy does: Helia asks
            # the routing for each block it needs.
            for block in dag_blocks(backend, cid):
                lookup.add_provider(parse_cid(block), us)
            got = await helia_http({"op": "fetch", "routers": [url], "items": [
                {"cid": cid, "dest": str(tmp_path / "found.bin")}]})
    assert got["items"] == [{"cid": cid, "type": "file"}]
    assert (tmp_path / "found.bin").read_bytes() == data
    assert dag_blocks(backend, cid) <= served.served


async def test_helia_fetch_of_content_our_gateway_lacks_fails_cleanly(
        tmp_path: Path, backend: HFCacheBackend) -> None:
    """Non-recursive: a CID not here is a 404 to Helia, which then has nowhere else to go."""
    absent = HFCacheBackend(Repo(tmp_path / "other", fsync=False)).add_bytes(b"elsewhere\n")
    served = ServedBlocks(backend)
    with anyio.fail_after(TIMEOUT):
        async with gateway_on_loopback(Gateway(served, providers=InMemoryProviders())) as url:
            with pytest.raises(RuntimeError, match="exited with 1") as failure:
                await helia_http({"op": "fetch", "gateways": [url], "routers": [url],
                                  "items": [{"cid": absent,
                                             "dest": str(tmp_path / "never.bin")}]})
    assert f"LoadBlockFailedError: Failed to load block for {absent}" in str(failure.value)
    assert served.asked == {absent} and not served.served  # it asked us; we had nothing
    assert not (tmp_path / "never.bin").exists()


def peer_id() -> str:
    return ID.from_pubkey(create_new_key_pair().public_key).to_base58()


def base58_ids(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Helia gives peer ids back as CIDs (libp2p-key); ours are their base58 multihashes."""
    return [{**r, "ID": ID(CID.decode(r["ID"]).digest).to_base58()} for r in records]


async def test_helia_delegated_routing_client_reads_our_providers_and_peers(
        backend: HFCacheBackend) -> None:
    cid = backend.add_bytes(b"provided by two peers\n", options=ImportOptions(cid_version=1))
    unknown = backend.add_bytes(b"provided by nobody\n", options=ImportOptions(cid_version=1))
    http_peer, bitswap_peer, lonely = peer_id(), peer_id(), peer_id()
    lookup = InMemoryProviders()
    lookup.add_provider(parse_cid(cid), ProviderRecord(
        http_peer, ("/ip4/127.0.0.1/tcp/8080/http",), (GATEWAY_HTTP,)))
    lookup.add_provider(parse_cid(cid), ProviderRecord(
        bitswap_peer, ("/ip4/127.0.0.1/tcp/4001", "/ip4/127.0.0.1/udp/4001/quic-v1"),
        ("transport-bitswap",)))
    lookup.add_peer(PeerRecord(http_peer, ("/ip4/127.0.0.1/tcp/4002",),
                               ("transport-bitswap",)))
    with anyio.fail_after(TIMEOUT):
        async with gateway_on_loopback(Gateway(BlockstoreSource(backend.repo.blocks),
                                               providers=lookup)) as url:
            got = await helia_http({"op": "routing", "router": url,
                                    "providers": [cid, unknown],
                                    "peers": [http_peer, lonely]})
    got = {kind: {key: base58_ids(records) for key, records in got[kind].items()}
           for kind in ("providers", "peers")}
    assert got["providers"] == {
        cid: [{"ID": http_peer, "Addrs": ["/ip4/127.0.0.1/tcp/8080/http"],
               "Protocols": [GATEWAY_HTTP]},
              {"ID": bitswap_peer,
               "Addrs": ["/ip4/127.0.0.1/tcp/4001", "/ip4/127.0.0.1/udp/4001/quic-v1"],
               "Protocols": ["transport-bitswap"]}],
        unknown: []}
    assert got["peers"] == {
        http_peer: [{"ID": http_peer, "Addrs": ["/ip4/127.0.0.1/tcp/4002"],
                     "Protocols": ["transport-bitswap"]}],
        lonely: []}


async def test_helia_reads_and_fetches_from_our_node_as_serve_wires_it(tmp_path: Path) -> None:
    """The gateway and the MCP server as ``ipfs-mcp serve --gateway`` runs them (one node,
    its ``/routing/v1`` answering from it): content added over MCP is announced with our
    peer id, the gateway's ``/http`` address and our libp2p addresses; Helia, given only
    that router, finds our gateway there and fetches the file over HTTP."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPFS_")}
    env["HF_HOME"] = str(tmp_path / "home")
    (tmp_path / "work").mkdir()
    data = os.urandom(3 * 262_144 + 99)
    (tmp_path / "work" / "weights.bin").write_bytes(data)
    settings = ServerSettings.load(env, allow_roots=[str(tmp_path / "work")],
                                   gateway="127.0.0.1:0")
    slot = NodeSlot()
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            urls = await start_gateway(tg, settings, slot)
            async with Client(build_server(settings, gateway_url=urls[0], slot=slot),
                              mode="auto") as client:
                node = await slot.wait()
                assert node is not None, slot.status
                added = await client.call_tool(
                    "add_content", {"path": str(tmp_path / "work" / "weights.bin")})
                assert not added.is_error, added.content
                cid = added.structured_content["cid"]
                routing = await helia_http({"op": "routing", "router": urls[0],
                                            "providers": [cid], "peers": [node.peer_id]})
                fetched = await helia_http({"op": "fetch", "routers": [urls[0]], "items": [
                    {"cid": cid, "dest": str(tmp_path / "helia.bin")}]})
                libp2p_addrs = [a.split("/p2p/")[0] for a in node.addrs]
                retrieval = list(node.http_addrs)  # the node's own retrieval gateway
            tg.cancel_scope.cancel()
    port = urls[0].rsplit(":", 1)[1]
    ours = {"ID": node.peer_id,
            "Addrs": [f"/ip4/127.0.0.1/tcp/{port}/http", *retrieval, *libp2p_addrs],
            "Protocols": [GATEWAY_HTTP, BITSWAP]}
    assert base58_ids(routing["providers"][cid]) == [ours]
    assert base58_ids(routing["peers"][node.peer_id]) == [ours]
    assert fetched["items"] == [{"cid": cid, "type": "file"}]
    assert (tmp_path / "helia.bin").read_bytes() == data
