"""The receiving side of nocopy: a model fetched over real bitswap (two of our nodes on
127.0.0.1) into a real HF hub cache is written once into its blobs, its leaves kept as
references; tampering afterwards is refused naming the file; an interrupted receive
resumes (a bad reference is fetched again); a crash between naming the blob and moving the
references is repaired; dag-pb leaves are copied and say so; a full disk is DiskFull."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
import trio
from huggingface_hub import hf_hub_download
from multiformats import CID

from ipfs_mcp.backends.core.cids import cid_of_block, cid_str
from ipfs_mcp.backends.errors import BlockNotFound, DiskFull, IntegrityError
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.hub import receive as hf_receive
from ipfs_mcp.backends.hub.layout import RECORD_PATH, HFWriteResult
from ipfs_mcp.backends.repo.blockstore import Blockstore
from ipfs_mcp.backends.repo.filestore import leaf_cid_digest
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.p2p import NodeConfig, P2PNode
from ipfs_mcp.tools import content
from ipfs_mcp.tools.roots import AllowedRoots
from tests.backends.test_filestore import _delete, _flip, _truncate, make_hf_model
from tests.conftest import fill_disk
from tests.p2p.nodes import config, node_at, repo_at

pytestmark = pytest.mark.anyio

CHUNK = 262144
DEADLINE = 60
MODEL = "acme/received"


@pytest.fixture
def files() -> dict[str, bytes]:
    return {"config.json": b'{"model_type": "bert"}\n',
            "model.safetensors": os.urandom(12 * CHUNK + 777),
            "sub/zeros.bin": bytes(3 * CHUNK)}


@dataclass
class Pair:
    """A provider (A, the model in its hub cache) and a receiver (B), connected."""

    a: P2PNode
    b: P2PNode
    b_repo: Repo
    b_backend: HFCacheBackend
    hub_b: Path
    root: str

    async def receive(self, **kwargs: object) -> HFWriteResult:
        def work() -> HFWriteResult:
            return hf_receive.export_model(self.b_backend, self.hub_b, self.root, MODEL,
                                           **kwargs)  # type: ignore[arg-type]
        return await anyio.to_thread.run_sync(work)

    def leaves_sent(self) -> int:
        return self.a.bitswap.ledger(self.b.peer_id).blocks_sent

    @property
    def blobs(self) -> Path:
        return self.hub_b / f"models--{MODEL.replace('/', '--')}" / "blobs"


@asynccontextmanager
async def pair(tmp_path: Path, files: dict[str, bytes], *, nocopy: bool = True,
               cfg: NodeConfig | None = None) -> AsyncIterator[Pair]:
    """By default A adds from its hub cache by reference (raw leaves); ``nocopy=False``
    copies with Kubo's defaults (CIDv0, dag-pb leaves)."""
    hub_a = tmp_path / "a-hub"
    make_hf_model(hub_a, MODEL, files)
    root = HFCacheBackend(repo_at(tmp_path / "a"), hub_cache=hub_a).add_hf_model(
        MODEL, nocopy=nocopy)
    b_repo = repo_at(tmp_path / "b")
    with trio.fail_after(DEADLINE):
        async with node_at(tmp_path / "a") as a, \
                node_at(tmp_path / "b", cfg, blockstore=b_repo.blocks) as b:
            await b.connect_peer(a.addrs[0])
            backend = HFCacheBackend(b_repo, hub_cache=tmp_path / "b-hub", fetcher=b.fetcher())
            yield Pair(a, b, b_repo, backend, tmp_path / "b-hub", cid_str(root.root))


def loads_offline(hub: Path, files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name, data in files.items():
        got = hf_hub_download(MODEL, name, cache_dir=hub, local_files_only=True)
        assert Path(got).read_bytes() == data


def leaf_count(files: dict[str, bytes]) -> int:
    """Distinct raw leaves (a repeated chunk is one leaf)."""
    return len({bytes(cid_of_block(d[i:i + CHUNK]).digest)
                for d in files.values() for i in range(0, max(len(d), 1), CHUNK)})


# -- written once --------------------------------------------------------------------------------
async def test_received_leaves_are_references_into_the_blobs(
        tmp_path: Path, files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    async with pair(tmp_path, files) as p:
        done = await p.receive()
        assert sorted(done.by_reference) == sorted(files) and done.copied == ()
        assert done.resumed == 0
        assert done.written == sum(len(d) for d in files.values())  # each byte once
    refs = p.b_repo.filestore.ls()
    assert len(refs) == leaf_count(files)
    for ref in refs:
        assert Path(ref.path).parent == p.blobs and not ref.path.endswith(".incomplete")
        assert not p.b_repo.blocks.path_of(leaf_cid_digest(ref.cid)).exists()
    assert list(p.blobs.glob("*.incomplete")) == []
    assert p.b_repo.verify().ok and all(c.ok for c in p.b_repo.filestore.verify())
    loads_offline(p.hub_b, files, monkeypatch)


def test_received_through_a_trustless_gateway_is_written_once(
        tmp_path: Path, files: dict[str, bytes], http_server_of_own: Callable[..., str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The same receive over the other retrieval source: an honest trustless gateway of the
    test's own, answering ``?format=raw`` from A's repo (nocopy references read, rehashed)."""
    from ipfs_mcp.backends.retrieval.trustless_gateway import TrustlessGateways

    hub_a = tmp_path / "a-hub"
    make_hf_model(hub_a, MODEL, files)
    a = HFCacheBackend(repo_at(tmp_path / "a"), hub_cache=hub_a)
    root = cid_str(a.add_hf_model(MODEL).root)
    asked: list[str] = []

    def answer(path: str) -> tuple[int, dict[str, str], bytes]:
        cid = path.removeprefix("/ipfs/").split("?")[0]
        asked.append(cid)
        try:
            return 200, {"Content-Type": "application/vnd.ipld.raw"}, a.block_get(cid)
        except BlockNotFound:
            return 404, {}, b""

    b_repo = repo_at(tmp_path / "b")
    gateways = TrustlessGateways([http_server_of_own(answer)], b_repo.blocks)
    try:
        b = HFCacheBackend(b_repo, hub_cache=tmp_path / "b-hub", fetcher=gateways)
        done = hf_receive.export_model(b, tmp_path / "b-hub", root, MODEL)
    finally:
        gateways.close()
    assert sorted(done.by_reference) == sorted(files) and done.copied == ()
    assert done.written == sum(len(d) for d in files.values())
    for ref in b_repo.filestore.ls():
        assert not b_repo.blocks.path_of(leaf_cid_digest(ref.cid)).exists()
    # Every raw leaf once: the model's, and its snapshot record's (read, not written).
    record = {RECORD_PATH: a.cat(f"{root}/{RECORD_PATH}")}
    assert len({c for c in asked if c.startswith("bafkrei")}) == leaf_count({**files, **record})
    loads_offline(tmp_path / "b-hub", files, monkeypatch)


async def test_dag_pb_leaves_are_copied_and_the_result_says_why(
        tmp_path: Path, files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    async with pair(tmp_path, files, nocopy=False) as p:  # Kubo's CIDv0 defaults
        done = await p.receive()
    # The one-chunk config is a dag-pb leaf too under the defaults: all three are copied.
    assert done.by_reference == ()
    assert sorted(c.split(":")[0] for c in done.copied) == sorted(files)
    assert all("dag-pb" in c for c in done.copied), done.copied
    assert p.b_repo.filestore.count() == 0  # nothing referenced: the blocks hold the bytes
    loads_offline(p.hub_b, files, monkeypatch)


def test_a_local_copy_into_another_name_leaves_the_pinned_references_alone(
        tmp_path: Path, files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    """No network: a model stored by reference (pinned) and written again under another
    name. The new blobs are copies (the bytes were here), and the pinned model still refers
    to its own blobs, so deleting the new ones breaks nothing."""
    hub = tmp_path / "hub"
    make_hf_model(hub, "acme/source", files)
    backend = HFCacheBackend(repo_at(tmp_path / "repo"), hub_cache=hub)
    root = cid_str(backend.add_hf_model("acme/source").root)
    before = {(r.cid, r.path, r.offset) for r in backend.repo.filestore.ls()}
    done = hf_receive.export_model(backend, hub, root, MODEL)
    assert sorted(done.by_reference) == sorted(files)
    assert {(r.cid, r.path, r.offset) for r in backend.repo.filestore.ls()} == before
    loads_offline(hub, files, monkeypatch)
    shutil.rmtree(hub / f"models--{MODEL.replace('/', '--')}")
    assert backend.repo.verify().ok


# -- tampering after the receive ------------------------------------------------------------------
@pytest.mark.parametrize(("tamper", "status", "error", "says"), [
    (_flip, "changed", IntegrityError, "changed since it was added"),
    (_truncate, "changed", IntegrityError, "is shorter than when it was added"),
    (_delete, "no-file", BlockNotFound, "no longer exists"),
])
async def test_a_tampered_received_blob_is_refused_naming_the_file(
        tmp_path: Path, files: dict[str, bytes], tamper: Callable[[Path], None], status: str,
        error: type[Exception], says: str) -> None:
    weights = files["model.safetensors"]
    async with pair(tmp_path, files) as p:
        await p.receive()
        blob = next(Path(r.path) for r in p.b_repo.filestore.ls()
                    if os.path.getsize(r.path) == len(weights))
        second = next(r for r in p.b_repo.filestore.ls()
                      if r.path == str(blob) and r.offset == CHUNK)
        tamper(blob)
        # Serving to a peer: C asks B for the damaged leaf and gets nothing (no wrong bytes).
        async with node_at(tmp_path / "c") as c:
            await c.connect_peer(p.b.addrs[0])
            with pytest.raises(BlockNotFound):
                await c.retrieve_block(CID.decode(second.cid), timeout=3)
            assert p.b.bitswap.ledger(c.peer_id).blocks_sent == 0
    # Reading on B alone (no node: nothing to fetch a good copy from) names the file.
    alone = HFCacheBackend(Repo(tmp_path / "b", fsync=False), hub_cache=p.hub_b)
    with pytest.raises(error, match=says) as raised:
        alone.cat(f"{p.root}/model.safetensors")
    assert str(blob) in str(raised.value)
    roots = AllowedRoots.of([tmp_path])
    with pytest.raises(error, match=says):
        await content.fetch_cid(alone, f"{p.root}/model.safetensors", roots=roots,
                                hub_cache=p.hub_b, offset=CHUNK, length=16, max_inline=64)
    checks = {(c.path, c.offset): c.status for c in alone.repo.filestore.verify()}
    assert checks[(str(blob), CHUNK)] == status
    assert not alone.repo.verify().ok


# -- resume and repair -----------------------------------------------------------------------------
def _as_interrupted(p: Pair, weights: bytes, drop: int) -> Path:
    """Turn a finished receive of the weights back into an interrupted one: the blob is
    ``<cid>.incomplete`` again, nothing in snapshots/ or refs/, ``drop`` references lost (as
    a kill -9 before their commit loses them) and one leaf's bytes damaged in the file."""
    folder = p.blobs.parent
    blob = p.blobs / __import__("hashlib").sha256(weights).hexdigest()
    file_cid = next(e.cid for e in p.b_backend.ls(p.root) if e.name == "model.safetensors")
    incomplete = p.blobs / f"{cid_str(file_cid)}.incomplete"
    os.rename(blob, incomplete)
    p.b_repo.filestore.repoint(str(blob), str(incomplete))
    shutil.rmtree(folder / "snapshots")
    shutil.rmtree(folder / "refs")
    refs = p.b_repo.filestore.refs_in(str(incomplete))
    p.b_repo.filestore.remove(m for m, _ in refs[len(refs) - drop:])
    with open(incomplete, "r+b") as handle:  # the leaf at offset CHUNK: its ref stays, bad
        handle.seek(CHUNK)
        handle.write(b"\x00" * 16)
    return incomplete


async def test_an_interrupted_receive_resumes_and_refetches_a_bad_leaf(
        tmp_path: Path, files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    weights = files["model.safetensors"]
    async with pair(tmp_path, files) as p:
        await p.receive()
        first = p.leaves_sent()
        incomplete = _as_interrupted(p, weights, drop=4)
        again = await p.receive()
        leaves = -(-len(weights) // CHUNK)  # 13
        # The weights resume: of 13 leaves, 4 lost refs and 1 bad one are fetched again.
        assert again.resumed == leaves - 4 - 1
        assert p.leaves_sent() - first == 5
        assert not incomplete.exists()
    assert p.b_repo.verify().ok and all(c.ok for c in p.b_repo.filestore.verify())
    loads_offline(p.hub_b, files, monkeypatch)


async def test_a_receive_cut_short_keeps_what_arrived_and_the_next_resumes(
        tmp_path: Path, files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    """The provider's own blob is cut after 5 leaves, so it answers DONT_HAVE for the rest:
    the receive fails as not found (never as a disk error), keeps the leaves written and
    referenced, and shows huggingface_hub nothing; once the provider is whole again the
    next receive fetches only the others."""
    weights = files["model.safetensors"]
    provider_blob = (tmp_path / "a-hub" / f"models--{MODEL.replace('/', '--')}" / "blobs"
                     / __import__("hashlib").sha256(weights).hexdigest())
    quick = config(fetch_dag_timeout=3.0, fetch_block_timeout=3.0)
    async with pair(tmp_path, files, cfg=quick) as p:
        os.truncate(provider_blob, 5 * CHUNK)
        with pytest.raises(BlockNotFound, match="DONT_HAVE"):
            await p.receive()
        partial = list(p.blobs.glob("*.incomplete"))
        assert len(partial) == 1
        kept = {r.offset for _, r in p.b_repo.filestore.refs_in(str(partial[0]))}
        # What arrived before the walk failed: the five leaves race the DONT_HAVEs (the
        # session stops at the first), so some or none of them, never more.
        assert kept <= {i * CHUNK for i in range(5)}
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        with pytest.raises(FileNotFoundError):  # LocalEntryNotFoundError is one
            hf_hub_download(MODEL, "model.safetensors", cache_dir=p.hub_b,
                            local_files_only=True)
        provider_blob.write_bytes(weights)
        again = await p.receive()
        # Only the rest is written: the weights' other leaves and the zeros file (never
        # reached before), and config.json unless the first receive completed it. Counted
        # as written, not as sent by the provider: a want of the failed receive may still
        # be answered after it ended, and a stalled want may be asked twice.
        assert again.resumed == len(kept)
        rest = len(weights) - len(kept) * CHUNK + len(files["sub/zeros.bin"])
        assert again.written - rest in (0, len(files["config.json"]))
    loads_offline(p.hub_b, files, monkeypatch)


async def test_a_crash_after_naming_the_blob_is_repaired_by_the_next_fetch(
        tmp_path: Path, files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    """Step 2 done (the blob linked), step 3 not (references still name the .incomplete)."""
    weights = files["model.safetensors"]
    async with pair(tmp_path, files) as p:
        await p.receive()
        blob = p.blobs / __import__("hashlib").sha256(weights).hexdigest()
        incomplete = _as_interrupted(p, weights, drop=0)
        with open(incomplete, "r+b") as handle:  # undo the damage: a clean crash
            handle.seek(CHUNK)
            handle.write(weights[CHUNK:CHUNK + 16])
        os.link(incomplete, blob)
        sent = p.leaves_sent()
        again = await p.receive()
        assert p.leaves_sent() == sent  # nothing fetched: it was all here
        assert again.written == 0 and not incomplete.exists()
    assert {r.path for r in p.b_repo.filestore.ls() if os.path.getsize(r.path) == len(weights)
            } == {str(blob)}
    loads_offline(p.hub_b, files, monkeypatch)


# -- a full disk ------------------------------------------------------------------------------------
def test_a_full_disk_is_disk_full_for_a_block(small_disk: Path) -> None:
    blocks = Blockstore(small_disk / "ipfs", fsync=False)
    filler = fill_disk(small_disk)
    data = os.urandom(64 * 1024)
    with pytest.raises(DiskFull, match="is full"):
        blocks.put(cid_of_block(data), data)
    assert not blocks.has(cid_of_block(data))
    assert list(blocks.tmp_dir.iterdir()) == []  # nothing partial left
    filler.unlink()
    assert blocks.put(cid_of_block(data), data)
