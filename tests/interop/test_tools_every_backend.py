"""Every MCP tool on every backend: the embedded repo and a real Kubo 0.43 daemon, over its
RPC API (``kubo``) and through its CLI (``kubo-cli``).

One suite, run through the SDK's in-memory client, parametrised by backend. On Kubo, Kubo
is the node: ``peer_stats`` reports the daemon's own peer id, announcements go through its
routing, and no P2P node of ours starts. What a backend cannot do fails with one clear
"not supported by backend X" error.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from ipfs_mcp.server.app import build_server
from ipfs_mcp.server.config import ServerSettings
from ipfs_mcp.tools import models

from .kubo_daemon import KuboDaemon

pytestmark = [pytest.mark.anyio, pytest.mark.interop]
TIMEOUT = 60
BACKENDS = ["hf_cache", "kubo", "kubo-cli"]


def make_folder(folder: Path) -> tuple[Path, bytes]:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "bert"}\n')
    weights = os.urandom(600_000)  # three chunks: a two-level file DAG
    (folder / "model.safetensors").write_bytes(weights)
    (folder / "tokenizer").mkdir()
    (folder / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    return folder, weights


async def call(client: Client, name: str, args: dict[str, Any], model: type[Any]) -> Any:
    result = await client.call_tool(name, args)
    assert not result.is_error, result.content
    return model.model_validate(result.structured_content)


async def call_error(client: Client, name: str, args: dict[str, Any]) -> str:
    result = await client.call_tool(name, args)
    assert result.is_error, result.structured_content
    return " ".join(getattr(c, "text", "") for c in result.content)


def settings_for(backend: str, home: Path, root: Path, kubo: KuboDaemon) -> ServerSettings:
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_CACHE", "IPFS_MCP_P2P", "IPFS_BACKEND", "IPFS_API", "KUBO_CMD")}
    env["HF_HOME"] = str(home)
    if backend == "kubo":
        env["IPFS_BACKEND"] = "kubo"
        env["IPFS_API"] = kubo.api_url
    elif backend == "kubo-cli":  # no IPFS_API: the CLI, on the daemon's repo (IPFS_PATH)
        env["IPFS_BACKEND"] = "kubo"
        env["KUBO_CMD"] = shlex.join(kubo.cli_command)
    return ServerSettings.load(env, allow_roots=[str(root)], role="worker")


@pytest.fixture
async def served(request: pytest.FixtureRequest, tmp_path: Path, kubo043: KuboDaemon,
                 monkeypatch: pytest.MonkeyPatch
                 ) -> AsyncIterator[tuple[Client, str, KuboDaemon]]:
    """The server on ``request.param``'s backend, and that backend's name as tools report
    it (``kubo`` for both of Kubo's transports)."""
    backend: str = request.param
    if backend == "kubo-cli":
        # The CLI's processes inherit this process's environment: the daemon's repo.
        for key, value in kubo043.env.items():
            monkeypatch.setenv(key, value)
    root = tmp_path / "work"
    root.mkdir()
    settings = settings_for(backend, tmp_path / "home", root, kubo043)
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(settings), mode="auto") as client:
            yield client, backend.removesuffix("-cli"), kubo043


@pytest.mark.parametrize("served", BACKENDS, indirect=True)
async def test_content_tools(served: tuple[Client, str, KuboDaemon], tmp_path: Path) -> None:
    client, backend, kubo = served
    work = tmp_path / "work"
    folder, weights = make_folder(work / "tiny-model")
    with anyio.fail_after(TIMEOUT):
        stored = await call(client, "store_model", {"source": str(folder), "announce": False},
                            models.StoreResult)
        # The CID every Kubo gives this folder, whichever backend stored it.
        assert stored.root_cid == kubo.add_path(folder, "--only-hash")
        assert stored.backend == backend
        assert stored.file_count == 3 and stored.total_size >= 600_000
        by_path = {f.path: f for f in stored.files}
        assert by_path[""].kind == "directory" and by_path[""].cid == stored.root_cid
        assert by_path["tokenizer"].kind == "directory"
        assert by_path["model.safetensors"].size == 600_000

        pins = await call(client, "list_pins", {}, models.PinList)
        mine = [p for p in pins.pins if p.cid == stored.root_cid]
        assert mine and mine[0].type == "recursive" and mine[0].name == str(folder)

        text = await call(client, "fetch_cid", {"cid": f"{stored.root_cid}/config.json"},
                          models.FetchResult)
        assert text.text == '{"model_type": "bert"}\n' and text.eof
        page = await call(client, "fetch_cid", {"cid": f"{stored.root_cid}/model.safetensors",
                                                "offset": 300_000, "length": 1000},
                          models.FetchResult)
        import base64
        assert base64.b64decode(page.base64 or "") == weights[300_000:301_000]
        listing = await call(client, "ls", {"cid": stored.root_cid}, models.LsResult)
        assert [e.name for e in listing.entries] == ["config.json", "model.safetensors",
                                                     "tokenizer"]
        out = work / "copy"
        written = await call(client, "fetch_cid", {"cid": stored.root_cid,
                                                   "output_path": str(out)},
                             models.FetchResult)
        assert written.delivery == "file"
        assert (out / "model.safetensors").read_bytes() == weights

        added = await call(client, "add_content", {"text": f"only on {backend}", "pin": False,
                                                   "name": "note"}, models.AddResult)
        pinned = await call(client, "pin", {"cid": added.cid}, models.PinResult)
        assert pinned.pinned and pinned.size == 8 + len(f"only on {backend}")  # one dag-pb leaf
        assert added.cid in {p.cid for p in (await call(client, "list_pins", {},
                                                        models.PinList)).pins}
        unpinned = await call(client, "unpin", {"cid": added.cid}, models.UnpinResult)
        assert unpinned.removed == ["recursive"]
        assert added.cid not in {p.cid for p in (await call(client, "list_pins", {},
                                                            models.PinList)).pins}
        assert "not pinned" in await call_error(client, "unpin", {"cid": added.cid})

        if backend == "kubo":
            text = await call_error(client, "repo_gc", {})
            assert "repo_gc is not supported by backend kubo" in text
        else:
            gc = await call(client, "repo_gc", {}, models.GCResult)
            assert gc.removed_blocks >= 1  # the unpinned note


@pytest.mark.parametrize("served", BACKENDS, indirect=True)
async def test_network_tools_speak_for_the_node(
        served: tuple[Client, str, KuboDaemon],
        kubo043_factory: Callable[..., KuboDaemon]) -> None:
    client, backend, kubo = served
    peer = kubo043_factory()  # another real Kubo to connect to
    with anyio.fail_after(TIMEOUT):
        stats = await call(client, "peer_stats", {}, models.PeerStatsResult)
        assert stats.network_status == "running" and stats.network is not None
        kubo_id = kubo.rpc("id")["ID"]
        if backend == "kubo":
            # Kubo is the node: its own identity, not a second node of ours.
            assert stats.network.peer_id == kubo_id and "kubo" in stats.network.node
        else:
            assert stats.network.peer_id != kubo_id and stats.network.node.startswith("ipfs-mcp")

        connected = await call(client, "connect_peer", {"multiaddr": peer.dial_addr},
                               models.ConnectResult)
        assert connected.peer_id == peer.rpc("id")["ID"]
        after = await call(client, "peer_stats", {}, models.PeerStatsResult)
        assert after.network is not None
        assert connected.peer_id in {p.peer_id for p in after.network.peers if p.connected}

        added = await call(client, "add_content", {"text": f"announced by {backend}"},
                           models.AddResult)
        announced = await call(client, "announce", {"cid": added.cid}, models.AnnounceResult)
        assert announced.announced and announced.records >= 1
        if backend == "kubo":
            # Kubo's findprovs answers from its own provider store too, and the peer it is
            # connected to finds it over their LAN DHT.
            found = await call(client, "find_providers", {"cid": added.cid},
                               models.ProvidersResult)
            me = [p for p in found.providers if p.peer_id == stats.network.peer_id]
            assert me and me[0].is_self
            assert stats.network.peer_id in peer.find_providers(added.cid, seconds=20)
        else:
            # Ours reaches the peers its DHT knows; Kubo keeps loopback peers in its LAN DHT
            # only (the Kubo interop suite covers our node against it).
            assert "DHT" in announced.scope or "provider store" in announced.scope
