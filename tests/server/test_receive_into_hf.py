"""Fetching a model into another node's HuggingFace cache writes it once: two real servers
on 127.0.0.1, each with its own HF_HOME; A stores a model from its hub cache (nocopy), B
fetches it (as a CAR over HTTP from A's node) into its own hub cache, and huggingface_hub
loads it offline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
import trio
from huggingface_hub import hf_hub_download
from mcp import Client

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.repo.blockstore import Blockstore
from ipfs_mcp.backends.repo.filestore import Filestore, leaf_cid_digest
from ipfs_mcp.backends.repo.placement import COMMIT_EVERY
from ipfs_mcp.server.app import build_server
from ipfs_mcp.tools import models
from tests.backends.test_filestore import disk_usage, make_hf_model
from tests.server.test_p2p import node_settings, ok

pytestmark = pytest.mark.anyio

TIMEOUT = 120
CHUNK = 262144


async def test_a_model_fetched_into_the_hf_cache_is_written_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weights = os.urandom(40 * CHUNK + 12345)
    zeros = bytes(8 * CHUNK)  # one leaf eight times: every offset must be written
    config = b'{"model_type": "bert", "hidden_size": 8}\n'
    files = {"config.json": config, "model.safetensors": weights, "pad.bin": zeros}
    make_hf_model(tmp_path / "home-a" / "hub", "acme/once", files)
    a_settings = node_settings(tmp_path / "home-a", tmp_path / "share")
    b_settings = node_settings(tmp_path / "home-b", tmp_path / "b-out")
    for folder in (tmp_path / "share", tmp_path / "b-out"):
        folder.mkdir()
    model_size = sum(len(d) for d in files.values())

    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(a_settings), mode="auto") as a, \
                Client(build_server(b_settings), mode="auto") as b:
            stored = models.StoreResult.model_validate(
                ok(await a.call_tool("store_model", {"source": "acme/once"})))
            assert stored.nocopy
            a_stats = models.PeerStatsResult.model_validate(
                ok(await a.call_tool("peer_stats", {})))
            assert a_stats.network is not None
            ok(await b.call_tool("connect_peer",
                                 {"multiaddr": a_stats.network.listen_addrs[0]}))
            before = disk_usage(tmp_path / "home-b")
            into = models.FetchResult.model_validate(ok(await b.call_tool("fetch_cid", {
                "cid": stored.root_cid, "into_hf_cache": "acme/once@main"})))
            assert into.delivery == "hf_cache" and into.files_written == 3
            assert into.nocopy and into.copied == [] and into.resumed_leaves == 0
            grown = disk_usage(tmp_path / "home-b") - before
            b_stats = models.PeerStatsResult.model_validate(
                ok(await b.call_tool("peer_stats", {})))
            assert b_stats.network is not None
            # From A: the root over bitswap (fetch_cid reads it first), the rest as A's CAR.
            assert b_stats.network.bytes_retrieved >= len(weights)
            assert b_stats.network.ledger_blocks_received < 10

    # The HF_HOME of B grew by the model and a little more (internal nodes, the index).
    assert grown <= 1.05 * model_size, (grown, model_size)
    # The blockstore holds no copy of any leaf: each is a reference into B's blob.
    repo = tmp_path / "home-b" / "ipfs"
    blocks = Blockstore(repo, filestore=Filestore(repo))
    refs = Filestore(repo).ls()
    blobs = tmp_path / "home-b" / "hub" / "models--acme--once" / "blobs"
    assert {Path(r.path).parent for r in refs} == {blobs}
    assert len(refs) == 40 + 1 + 1 + 1  # weights, its tail, one zero leaf, config
    for ref in refs:
        assert not blocks.path_of(leaf_cid_digest(ref.cid)).exists()
    assert not list(blobs.glob("*.incomplete"))

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub_b = b_settings.backend.hf_hub_cache
    for name, data in files.items():
        got = hf_hub_download("acme/once", name, cache_dir=hub_b, local_files_only=True)
        assert Path(got).read_bytes() == data


async def test_kill_9_mid_receive_shows_nothing_partial_and_the_next_get_resumes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real ``ipfs-mcp get --hf`` process fetching from a real provider that serves 300
    blocks and then holds: killed with SIGKILL once it has 262 (so at least 256 leaves were
    placed: one batch of references, ``placement.COMMIT_EVERY``, is committed whatever the
    timing), huggingface_hub sees no file at all; the
    next run fetches only the leaves whose references were not committed, and the model
    then loads, byte for byte. (The provider's engine sends blocks in messages of several,
    so the command is waited for well short of the gate.)"""
    from huggingface_hub.errors import LocalEntryNotFoundError

    from tests.cli.test_cli_network_get import command_env, ipfs_mcp, repo_verifies
    from tests.p2p.nodes import GatedStore, add_path, node_at, repo_at

    leaves = 320
    folder = tmp_path / "model"
    folder.mkdir()
    files = {"config.json": b'{"model_type": "bert"}\n',
             "model.safetensors": os.urandom(leaves * CHUNK)}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    root = cid_str(add_path(repo_at(tmp_path / "a"), folder, cid_version=1))  # raw leaves
    home = tmp_path / "home"
    blobs = home / "hub" / "models--acme--killed" / "blobs"
    served = trio.Event()
    gated = GatedStore(tmp_path / "a", after=300, served=served)
    progress = _Progress()
    async with node_at(tmp_path / "a", blockstore=gated) as node:
        try:
            with anyio.fail_after(TIMEOUT):
                proc = await anyio.open_process(
                    [sys.executable, "-m", "ipfs_mcp.server.cli", "get", root, "--hf",
                     "acme/killed", "--peer", node.addrs[0], "--json"],
                    env=command_env(home), stdout=subprocess.DEVNULL)
                async with proc, anyio.create_task_group() as tg:
                    tg.start_soon(progress.pump, proc.stderr)
                    assert COMMIT_EVERY + 3 < 262  # 3 blocks for the folder, then leaves
                    await progress.until_blocks(262)
                    proc.kill()  # SIGKILL: no cleanup of any kind runs
                    assert await proc.wait() == -signal.SIGKILL
                    tg.cancel_scope.cancel()
            partial = list(blobs.glob("*.incomplete"))
            assert len(partial) == 1 and partial[0].stat().st_size == leaves * CHUNK
            monkeypatch.setenv("HF_HUB_OFFLINE", "1")
            for name in files:  # nothing visible: no snapshot entry, not even the config
                with pytest.raises(LocalEntryNotFoundError):
                    hf_hub_download("acme/killed", name, cache_dir=home / "hub",
                                    local_files_only=True)
        finally:
            gated.release.set()
        again = await ipfs_mcp(home, "get", root, "--hf", "acme/killed", "--peer",
                               node.addrs[0], "--json")
    assert again.code == 0, again.stderr
    summary = again.summary
    assert summary["nocopy"] and summary["copied"] == []
    assert 0 < summary["resumed_leaves"] < leaves
    # Only what was not committed before the kill crossed the network again.
    assert summary["blocks_fetched"] == leaves - summary["resumed_leaves"]
    for name, data in files.items():
        got = hf_hub_download("acme/killed", name, cache_dir=home / "hub",
                              local_files_only=True)
        assert Path(got).read_bytes() == data
    assert list(blobs.glob("*.incomplete")) == []
    await repo_verifies(home)


class _Progress:
    """The command's JSON progress lines on stderr, read as they come."""

    def __init__(self) -> None:
        self.lines: list[dict[str, object]] = []
        self._changed = trio.Event()

    async def pump(self, stream: object) -> None:
        buffered = b""
        async for chunk in stream:  # type: ignore[attr-defined]
            buffered += chunk
            *complete, buffered = buffered.split(b"\n")
            self.lines.extend(json.loads(raw) for raw in complete if raw.startswith(b"{"))
            self._changed.set()
            self._changed = trio.Event()

    async def until_blocks(self, count: int) -> None:
        while not any(int(line["blocks"]) >= count for line in self.lines):  # type: ignore[call-overload]
            await self._changed.wait()
