"""Progress that knows its total, through the real MCP client: node B fetches from node A
(two real servers on 127.0.0.1, each with its own HF_HOME, bitswap between them) into its
HuggingFace cache and into a folder; every progress notification carries the total the DAG
declares, that total is the content's size, and progress only grows, ending at it."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest
from mcp import Client

from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.hub import receive as hf_receive
from ipfs_mcp.server.app import build_server
from ipfs_mcp.tools import models
from ipfs_mcp.tools.progress import Progress, run_blocking
from tests.backends.test_filestore import make_hf_model
from tests.server.test_p2p import node_settings, ok

pytestmark = pytest.mark.anyio

TIMEOUT = 120
CHUNK = 262144
MODEL = "acme/sized"
FILES = {"config.json": b'{"model_type": "bert", "hidden_size": 8}\n',
         "model.safetensors": os.urandom(24 * CHUNK + 4321),
         "tokenizer/vocab.txt": b"a\nb\nc\n"}
Seen = list[tuple[float, float | None]]


class Recorder:
    """An MCP progress callback that keeps what each notification said."""

    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    async def __call__(self, progress: float, total: float | None,
                       message: str | None) -> None:
        self.seen.append((progress, total))


def assert_sized(seen: Seen, size: int) -> None:
    """Every notification says the total, the total is ``size``, and progress grows to it."""
    assert seen, "no progress notification at all"
    assert all(total == size for _, total in seen), seen
    done = [d for d, _ in seen]
    assert done == sorted(done) and done[-1] == size, seen


@pytest.mark.parametrize("nocopy", [True, False], ids=["received-in-place", "copied"])
async def test_the_progress_object_the_cli_passes_hears_the_total_before_any_byte(
        backend: HFCacheBackend, hub: Path, tmp_path: Path, nocopy: bool) -> None:
    """``ipfs-mcp get --hf`` hands the same :class:`Progress` to the hub writer: its reports
    (the CLI's bars read ``total`` and ``done`` from it) carry the total from the first,
    whether the files are received in place (raw leaves) or copied (dag-pb leaves)."""
    make_hf_model(tmp_path / "source", MODEL, FILES)
    seen: Seen = []

    async def report(done: float, total: float | None, message: str | None) -> None:
        seen.append((done, total))

    source = HFCacheBackend(backend.repo, hub_cache=tmp_path / "source")
    stored = source.add_hf_model(MODEL, nocopy=nocopy)
    progress = Progress(report)
    written = await run_blocking(lambda: hf_receive.export_model(
        backend, hub, str(stored.root), MODEL, progress=progress), progress)
    assert progress.total == sum(len(d) for d in FILES.values())
    assert (written.copied == ()) is nocopy
    assert_sized(seen, progress.total)


async def test_a_p2p_fetch_reports_the_total_the_dag_declares(tmp_path: Path) -> None:
    make_hf_model(tmp_path / "home-a" / "hub", MODEL, FILES)
    a_settings = node_settings(tmp_path / "home-a", tmp_path / "share")
    b_settings = node_settings(tmp_path / "home-b", tmp_path / "b-out")
    for folder in (tmp_path / "share", tmp_path / "b-out"):
        folder.mkdir()
    model_size = sum(len(d) for d in FILES.values())
    into_hub: Seen = []
    to_folder: Seen = []

    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(a_settings), mode="auto") as a, \
                Client(build_server(b_settings), mode="auto") as b:
            stored = models.StoreResult.model_validate(
                ok(await a.call_tool("store_model", {"source": MODEL})))
            a_stats = models.PeerStatsResult.model_validate(
                ok(await a.call_tool("peer_stats", {})))
            assert a_stats.network is not None
            ok(await b.call_tool("connect_peer",
                                 {"multiaddr": a_stats.network.listen_addrs[0]}))
            into = models.FetchResult.model_validate(ok(await b.call_tool(
                "fetch_cid", {"cid": stored.root_cid, "into_hf_cache": MODEL},
                progress_callback=Recorder(into_hub))))
            assert into.delivery == "hf_cache" and into.fetched_from
            # The whole stored folder to disk: its declared size counts the snapshot record.
            written = models.FetchResult.model_validate(ok(await b.call_tool(
                "fetch_cid", {"cid": stored.root_cid, "output_path": "model"},
                progress_callback=Recorder(to_folder))))
            assert written.delivery == "file"
    assert_sized(into_hub, model_size)
    on_disk = sum(p.stat().st_size for p in (tmp_path / "b-out" / "model").rglob("*")
                  if p.is_file())
    assert on_disk == stored.total_size
    assert_sized(to_folder, stored.total_size)
