"""The HF commit id travels with the model: a snapshot stored on node A records its commit
in the stored folder, and node B, fetching it over bitswap (two real nodes on 127.0.0.1)
into its own hub cache, recreates ``snapshots/<A's commit>``, so a revision pinned by commit
resolves offline on B. A DAG that claims a commit B already holds cannot change that
snapshot without ``replace``; a malformed record is refused before anything is written."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
from huggingface_hub import snapshot_download, try_to_load_from_cache

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.core.importer import ImportOptions
from ipfs_mcp.backends.errors import InvalidInput, TargetExists
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.hub import layout as hf_layout
from ipfs_mcp.p2p import P2PNode
from ipfs_mcp.tools import content
from ipfs_mcp.tools.models import FetchResult
from ipfs_mcp.tools.roots import AllowedRoots
from tests.backends.test_filestore import make_hf_model
from tests.p2p.nodes import node_at, repo_at

pytestmark = pytest.mark.anyio

DEADLINE = 60
MODEL = "acme/travels"
COMMIT_A = "c9745ed1" + "0" * 32
FILES = {"config.json": b'{"model_type": "bert", "hidden_size": 8}\n',
         "model.safetensors": os.urandom(3 * 262144 + 99),
         "tokenizer/vocab.txt": b"a\nb\nc\n"}


@dataclass
class Nodes:
    a_backend: HFCacheBackend
    b_backend: HFCacheBackend
    hub_a: Path
    hub_b: Path
    a: P2PNode
    b: P2PNode

    async def store_on_a(self, source: str = MODEL) -> str:
        roots = AllowedRoots.of([self.hub_a])
        stored = await content.store_model(self.a_backend, source, roots=roots,
                                           hub_cache=self.hub_a)
        return stored.root_cid

    async def fetch_into_b(self, root: str, target: str, **kwargs: object) -> FetchResult:
        roots = AllowedRoots.of([self.hub_b])
        return await content.fetch_cid(self.b_backend, root, roots=roots, hub_cache=self.hub_b,
                                       into_hf_cache=target, max_inline=10,
                                       **kwargs)  # type: ignore[arg-type]


@asynccontextmanager
async def two_nodes(tmp_path: Path) -> AsyncIterator[Nodes]:
    """A (the model in its hub cache at ``COMMIT_A``) and B (an empty hub cache), connected;
    B fetches what it lacks from A over bitswap."""
    hub_a, hub_b = tmp_path / "a-hub", tmp_path / "b-hub"
    make_hf_model(hub_a, MODEL, FILES, commit=COMMIT_A)
    a_repo, b_repo = repo_at(tmp_path / "a"), repo_at(tmp_path / "b")
    with trio.fail_after(DEADLINE):
        async with node_at(tmp_path / "a", blockstore=a_repo.blocks) as a, \
                node_at(tmp_path / "b", blockstore=b_repo.blocks) as b:
            await b.connect_peer(a.addrs[0])
            yield Nodes(HFCacheBackend(a_repo, hub_cache=hub_a),
                        HFCacheBackend(b_repo, hub_cache=hub_b, fetcher=b.fetcher()),
                        hub_a, hub_b, a, b)


def snapshot_files(hub: Path, commit: str) -> dict[str, bytes]:
    folder = hf_layout.repo_folder(hub, MODEL) / "snapshots" / commit
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


async def test_a_model_fetched_by_another_node_resolves_by_the_senders_commit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with two_nodes(tmp_path) as n:
        root = await n.store_on_a()
        # The empty snapshot folder a fetch killed before its first link leaves behind.
        (hf_layout.repo_folder(n.hub_b, MODEL) / "snapshots" / COMMIT_A).mkdir(parents=True)
        got = await n.fetch_into_b(root, MODEL)
        assert n.a.bitswap.ledger(n.b.peer_id).blocks_sent > 0  # it came from A
    assert got.hf_commit == COMMIT_A and got.hf_revision == "main"
    assert got.files_written == len(FILES)  # the record is not a model file
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name, data in FILES.items():
        found = try_to_load_from_cache(MODEL, name, cache_dir=n.hub_b, revision=COMMIT_A)
        assert isinstance(found, str) and Path(found).read_bytes() == data
    offline = Path(snapshot_download(MODEL, revision=COMMIT_A, cache_dir=n.hub_b,
                                     local_files_only=True))
    assert offline.name == COMMIT_A
    assert snapshot_files(n.hub_b, COMMIT_A) == FILES  # and nothing else
    # Stored again from B's cache, the same record: the same root.
    roots = AllowedRoots.of([n.hub_b])
    again = await content.store_model(n.b_backend, MODEL, roots=roots, hub_cache=n.hub_b)
    assert again.root_cid == root


async def test_content_without_a_record_keeps_the_derived_commit(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    for name, data in FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    async with two_nodes(tmp_path) as n:
        root = cid_str(n.a_backend.add_path(folder).root)
        got = await n.fetch_into_b(root, MODEL)
    assert got.hf_commit == hf_layout.commit_for(n.b_backend.stat(root).cid) != COMMIT_A


@pytest.mark.parametrize("lie", ["an extra file", "other bytes"])
async def test_a_lying_dag_that_claims_a_cached_commit_changes_nothing_without_replace(
        tmp_path: Path, lie: str) -> None:
    """B already holds ``COMMIT_A``; A (the liar) stores other content under that commit id
    and B fetches it under a new branch name, so no ref rule stops it: the snapshot does."""
    async with two_nodes(tmp_path) as n:
        make_hf_model(n.hub_b, MODEL, FILES, commit=COMMIT_A)
        before = snapshot_files(n.hub_b, COMMIT_A)
        liar = {**FILES, "modeling_evil.py": b"import os\n"} if lie == "an extra file" \
            else {**FILES, "config.json": b'{"model_type": "evil"}\n'}
        make_hf_model(n.hub_a, "acme/liar", liar, commit=COMMIT_A)
        root = await n.store_on_a("acme/liar")
        with pytest.raises(TargetExists, match=COMMIT_A):
            await n.fetch_into_b(root, f"{MODEL}@ipfs")
        assert snapshot_files(n.hub_b, COMMIT_A) == before
        assert not (hf_layout.repo_folder(n.hub_b, MODEL) / "refs" / "ipfs").exists()
        # replace=true is the one way to change it (the user's confirmation where asked).
        await n.fetch_into_b(root, f"{MODEL}@ipfs", replace=True)
        assert snapshot_files(n.hub_b, COMMIT_A) == liar


def test_a_malformed_record_is_refused_before_anything_is_written(
        backend: HFCacheBackend, hub: Path, tmp_path: Path) -> None:
    folder = tmp_path / "forged"
    record = folder / hf_layout.RECORD_PATH
    record.parent.mkdir(parents=True)
    record.write_bytes(b'{"format": "ipfs-mcp/hf-snapshot/1", "commit": "../../../etc"}')
    (folder / "config.json").write_bytes(b"{}")
    root = backend.add_path(folder, options=ImportOptions(hidden=True)).root
    with pytest.raises(InvalidInput, match="40-hex commit"):
        hf_layout.write_snapshot(backend.exporter(), root, hub,
                                 hf_layout.plan_revision(hub, MODEL))
    assert not hf_layout.repo_folder(hub, MODEL).exists()
