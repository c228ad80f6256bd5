"""Two servers, each with its own repo and a real libp2p node on 127.0.0.1: one stores a
model, the other finds it, fetches it byte for byte, and writes it into its HuggingFace
cache, where huggingface_hub loads it offline."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import anyio
import pytest
from mcp import Client

from ipfs_mcp.server.app import build_server
from ipfs_mcp.server.config import ServerSettings
from ipfs_mcp.tools import models

pytestmark = pytest.mark.anyio

TIMEOUT = 60


def ok(result: object) -> dict:
    """The structured result of a successful call; a tool error fails with its message."""
    assert not result.is_error, result.content  # type: ignore[attr-defined]
    return result.structured_content  # type: ignore[attr-defined,no-any-return]


def node_settings(home: Path, root: Path) -> ServerSettings:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_CACHE", "IPFS_MCP_P2P")}
    env["HF_HOME"] = str(home)
    return ServerSettings.load(env, allow_roots=[str(root)], role="worker")


async def test_store_on_one_fetch_on_the_other(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "share" / "tiny-model"
    model.mkdir(parents=True)
    (model / "config.json").write_text('{"model_type": "bert", "hidden_size": 8}\n')
    weights = os.urandom(1_500_000)  # several chunks, a two-level DAG
    (model / "model.safetensors").write_bytes(weights)
    a_settings = node_settings(tmp_path / "home-a", tmp_path / "share")
    b_settings = node_settings(tmp_path / "home-b", tmp_path / "b-out")
    (tmp_path / "b-out").mkdir()

    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(a_settings), mode="auto") as a, \
                Client(build_server(b_settings), mode="legacy") as b:
            stored = models.StoreResult.model_validate(
                ok(await a.call_tool("store_model", {"source": str(model)})))
            assert stored.announced and stored.file_count == 2
            a_stats = models.PeerStatsResult.model_validate(
                ok(await a.call_tool("peer_stats", {})))
            assert a_stats.network is not None and a_stats.network_status == "running"
            a_addr = a_stats.network.listen_addrs[0]

            connected = await b.call_tool("connect_peer", {"multiaddr": a_addr})
            assert not connected.is_error, connected.content
            assert connected.structured_content["peer_id"] == a_stats.network.peer_id

            # A announces again now that it knows a DHT peer; B then finds A through the DHT.
            again = models.AnnounceResult.model_validate(
                ok(await a.call_tool("announce", {"cid": stored.root_cid})))
            assert again.announced and "1 DHT peer" in again.scope
            found = models.ProvidersResult.model_validate(
                ok(await b.call_tool("find_providers", {"cid": stored.root_cid})))
            assert a_stats.network.peer_id in [p.peer_id for p in found.providers]

            config = models.FetchResult.model_validate(ok(await b.call_tool(
                "fetch_cid", {"cid": f"{stored.root_cid}/config.json"})))
            assert config.text == (model / "config.json").read_text()
            page = models.FetchResult.model_validate(ok(await b.call_tool("fetch_cid", {
                "cid": f"{stored.root_cid}/model.safetensors", "offset": 1_000_000,
                "length": 4096})))
            assert base64.b64decode(page.base64 or "") == weights[1_000_000:1_004_096]

            out = tmp_path / "b-out" / "copy"
            written = await b.call_tool("fetch_cid", {"cid": stored.root_cid,
                                                      "output_path": str(out)})
            assert not written.is_error, written.content
            assert (out / "model.safetensors").read_bytes() == weights

            into = models.FetchResult.model_validate(ok(await b.call_tool("fetch_cid", {
                "cid": stored.root_cid, "into_hf_cache": "acme/tiny-model"})))
            assert into.delivery == "hf_cache" and into.files_written == 2

            b_stats = models.PeerStatsResult.model_validate(
                ok(await b.call_tool("peer_stats", {})))
            assert b_stats.cache is not None and b_stats.cache.misses > 0
            assert b_stats.network is not None and b_stats.network.connected_peers == 1
            assert b_stats.network.ledger_blocks_received > 0

    from huggingface_hub import hf_hub_download

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    got = hf_hub_download("acme/tiny-model", "model.safetensors",
                          cache_dir=b_settings.backend.hf_hub_cache, local_files_only=True)
    assert Path(got).read_bytes() == weights
