"""Nocopy: leaves kept as references into real files (and a real HF cache), checked on
every read; tampering, HF cache clean-up, GC, restarts, kill -9, the CLI, the MCP tools and
bitswap peers."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest
import trio
from huggingface_hub import scan_cache_dir, snapshot_download
from mcp import Client
from multiformats import CID

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.core.importer import Importer, ImportOptions
from ipfs_mcp.backends.core.limits import allocated_bytes
from ipfs_mcp.backends.errors import BlockNotFound, IntegrityError, InvalidInput, UnsafePath
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.hub import models as hub_mod
from ipfs_mcp.backends.hub.layout import RECORD_PATH
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.server.app import build_server
from ipfs_mcp.server.config import ServerSettings
from ipfs_mcp.tools import models
from tests.hf_fixtures import backend_fixture, hub_fixture  # noqa: F401 - found by name

CHUNK = 262144
NOCOPY = ImportOptions(nocopy=True)
MODEL = "tiny-org/nocopy-model"
COMMIT = "c" * 40


def make_hf_model(hub: Path, repo_id: str, files: dict[str, bytes], commit: str = COMMIT
                  ) -> Path:
    """Lay a model out as huggingface_hub's downloader does: blobs/, refs/main and
    snapshot symlinks into blobs/; huggingface_hub itself must resolve it offline."""
    folder = hub / f"models--{repo_id.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(commit)
    (folder / "blobs").mkdir(exist_ok=True)
    for rel, data in files.items():
        blob = folder / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = folder / "snapshots" / commit / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    snapshot = Path(snapshot_download(repo_id, cache_dir=str(hub), local_files_only=True))
    assert snapshot == folder / "snapshots" / commit
    return snapshot


def blob_of(hub: Path, repo_id: str, data: bytes) -> Path:
    return (hub / f"models--{repo_id.replace('/', '--')}" / "blobs"
            / hashlib.sha256(data).hexdigest())


disk_usage = allocated_bytes  # bytes the folder takes on disk


@pytest.fixture
def weights() -> bytes:
    return random.Random(7).randbytes(3 * CHUNK + 1234)  # four leaves


# -- references, not copies --------------------------------------------------------------------
def test_nocopy_add_stores_only_inner_nodes_and_reads_back(backend: HFCacheBackend,
                                                           tmp_path: Path, weights: bytes) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(weights)
    result = backend.add_path(path, options=NOCOPY)
    # --nocopy is --raw-leaves: the same CID, root still CIDv0 dag-pb.
    assert result.root == Importer(options=ImportOptions(raw_leaves=True)).add_path(path).root
    assert result.root.version == 0
    stat = backend.repo.stat()
    assert (stat.blocks, stat.references) == (1, 4)  # only the root is a block
    refs = backend.repo.filestore.ls()
    assert [(r.path, r.offset, r.size) for r in refs] == [
        (str(path), 0, CHUNK), (str(path), CHUNK, CHUNK), (str(path), 2 * CHUNK, CHUNK),
        (str(path), 3 * CHUNK, 1234)]
    assert backend.cat(cid_str(result.root)) == weights
    assert backend.cat(cid_str(result.root), offset=CHUNK - 3, length=10) == \
        weights[CHUNK - 3:CHUNK + 7]
    out = tmp_path / "out.bin"
    backend.get_to_path(cid_str(result.root), output_path=out)
    assert out.read_bytes() == weights
    v1 = backend.add_path(path, options=ImportOptions(nocopy=True, cid_version=1))
    assert str(v1.root).startswith("bafybei")
    report = backend.repo.verify()
    assert report.ok and report.references == 4


def test_nocopy_refuses_dag_pb_leaves_as_kubo_does() -> None:
    with pytest.raises(InvalidInput, match="raw leaves"):
        ImportOptions(nocopy=True, raw_leaves=False)


# -- tampering ----------------------------------------------------------------------------------
def _flip(path: Path) -> None:
    with open(path, "r+b") as handle:
        handle.seek(CHUNK + 5)
        byte = handle.read(1)
        handle.seek(CHUNK + 5)
        handle.write(bytes([byte[0] ^ 0xFF]))


def _truncate(path: Path) -> None:
    os.truncate(path, CHUNK + 100)


def _delete(path: Path) -> None:
    path.unlink()


@pytest.mark.parametrize(("tamper", "status", "error", "says"), [
    (_flip, "changed", IntegrityError, "changed since it was added"),
    (_truncate, "changed", IntegrityError, "is shorter than when it was added"),
    (_delete, "no-file", BlockNotFound, "no longer exists"),
])
def test_tampered_hf_blob_is_refused_naming_the_file(backend: HFCacheBackend, hub: Path,
                                                     tmp_path: Path, weights: bytes, tamper,
                                                     status: str, error: type, says: str) -> None:
    make_hf_model(hub, MODEL, {"model.safetensors": weights, "config.json": b"{}\n"})
    result = backend.add_hf_model(MODEL)  # by reference: the default for the HF cache
    root = cid_str(result.root)
    blob = blob_of(hub, MODEL, weights)
    assert backend.repo.stat().references == 5
    tamper(blob)
    first_bad = 0 if status == "no-file" else CHUNK  # flip and truncate spare leaf 0
    where = f"{blob}.*offset {first_bad}"
    with pytest.raises(error, match=f"(?s){says}.*") as caught:
        backend.cat(f"{root}/model.safetensors")
    assert str(blob) in str(caught.value) and f"offset {first_bad}" in str(caught.value)
    with pytest.raises(error, match=where):
        backend.get_to_path(root, output_path=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(error, match=where):
        backend.dag_export(root)
    assert backend.cat(f"{root}/config.json") == b"{}\n"  # the other file is whole
    checks = {(r.offset, r.status) for r in backend.repo.filestore.verify()
              if r.path == str(blob)}
    expected_first = "no-file" if status == "no-file" else "ok"
    assert (0, expected_first) in checks and (CHUNK, status) in checks
    report = backend.repo.verify()
    assert not report.ok
    broken = {m.kind for m in report.missing}
    assert broken == {status} and all(m.pins == (root,) for m in report.missing)
    assert "bad file reference" in backend.repo.integrity().summary
    assert blob.exists() == (status != "no-file")  # nothing touched the user's file


def test_a_symlink_swapped_in_for_the_file_is_refused(backend: HFCacheBackend, tmp_path: Path,
                                                      weights: bytes) -> None:
    path = tmp_path / "w.bin"
    path.write_bytes(weights)
    root = cid_str(backend.add_path(path, options=NOCOPY).root)
    elsewhere = tmp_path / "elsewhere.bin"
    shutil.copyfile(path, elsewhere)  # the very same bytes, reached through a link
    path.unlink()
    path.symlink_to(elsewhere)
    with pytest.raises(IntegrityError, match="is now a symlink"):
        backend.cat(root)
    assert {r.status for r in backend.repo.filestore.verify()} == {"error"}


def test_a_block_copy_stands_in_for_a_bad_reference(backend: HFCacheBackend, tmp_path: Path,
                                                    weights: bytes) -> None:
    path = tmp_path / "w.bin"
    path.write_bytes(weights)
    root = cid_str(backend.add_path(path, options=NOCOPY).root)
    backend.add_path(path, options=ImportOptions(raw_leaves=True))  # copies the leaves
    _flip(path)
    assert backend.cat(root) == weights
    report = backend.repo.verify()
    assert not report.missing and [r.status for r in report.bad_references] == ["changed"]


# -- HF cache clean-up ----------------------------------------------------------------------------
def test_hf_delete_cache_breaks_pins_and_verify_says_which(backend: HFCacheBackend, hub: Path,
                                                           weights: bytes) -> None:
    make_hf_model(hub, MODEL, {"model.safetensors": weights})
    other = make_hf_model(hub, "tiny-org/kept", {"a.bin": b"kept" * 1000}, "d" * 40)
    kept = backend.add_path(other, options=ImportOptions(nocopy=True, follow_symlinks=True),
                            name="kept")
    result = backend.add_hf_model(MODEL)
    assert backend.repo.verify().ok
    # huggingface_hub's own clean-up (what `huggingface-cli delete-cache` runs).
    cache = scan_cache_dir(hub)
    cache.delete_revisions(COMMIT).execute()
    assert not blob_of(hub, MODEL, weights).exists()
    report = backend.repo.verify()
    assert not report.ok
    assert {m.pins for m in report.missing} == {(cid_str(result.root),)}
    assert {m.kind for m in report.missing} == {"no-file"}
    assert len(report.missing) == 4  # each leaf of the deleted blob
    with pytest.raises(BlockNotFound, match="no longer exists"):
        backend.cat(cid_str(result.root) + "/model.safetensors")
    assert backend.cat(cid_str(kept.root) + "/a.bin") == b"kept" * 1000
    # --remove-bad-blocks drops the references, never a file; the pin stays broken.
    after = backend.repo.verify(remove_bad_blocks=True)
    assert len(after.removed_references) == 4 and not after.bad_references
    assert backend.repo.filestore.count() == 1


# -- GC, unpin, restarts ----------------------------------------------------------------------------
def test_gc_and_unpin_drop_references_never_files(tmp_path: Path, weights: bytes) -> None:
    repo_path = tmp_path / "repo"
    backend = HFCacheBackend(Repo(repo_path))
    kept_file, dropped_file = tmp_path / "kept.bin", tmp_path / "dropped.bin"
    kept_file.write_bytes(weights)
    dropped_file.write_bytes(weights[::-1])
    kept = backend.add_path(kept_file, options=NOCOPY)
    backend.add_path(dropped_file, options=NOCOPY, pin=False)
    report = backend.repo.gc()
    assert report.references_dropped == 4
    assert {r.path for r in backend.repo.filestore.ls()} == {str(kept_file)}
    assert dropped_file.read_bytes() == weights[::-1]
    # A restart: pins and references come back from disk.
    again = HFCacheBackend(Repo(repo_path))
    assert [p.cid for p in again.pins()] == [kept.root]
    assert again.cat(cid_str(kept.root)) == weights
    again.unpin(cid_str(kept.root))
    assert again.repo.gc().references_dropped == 4
    assert again.repo.filestore.count() == 0 and again.repo.stat().blocks == 0
    assert kept_file.read_bytes() == weights


def test_kill_9_during_a_nocopy_add_leaves_nothing_partial(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(random.Random(3).randbytes(40 * CHUNK))
    repo_path = tmp_path / "repo"
    script = textwrap.dedent(f"""
        import sys
        from ipfs_mcp.backends.hf_cache import HFCacheBackend
        from ipfs_mcp.backends.core.importer import ImportOptions
        from ipfs_mcp.backends.repo.repository import Repo
        seen = []
        def progress(n):
            seen.append(n)
            if len(seen) == 20:  # half-way: say so, then wait to be killed
                print("half", flush=True)
                sys.stdin.read()
        HFCacheBackend(Repo({str(repo_path)!r})).add_path(
            {str(big)!r}, options=ImportOptions(nocopy=True), progress=progress)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"half\n"
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=60) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=60)
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                pipe.close()
    repo = Repo(repo_path)
    assert list(repo.pins) == [] and repo.filestore.count() == 0
    assert repo.verify().ok
    result = HFCacheBackend(repo).add_path(big, options=NOCOPY)  # the next add works
    assert repo.filestore.count() == 40 and HFCacheBackend(repo).cat(
        cid_str(result.root), offset=39 * CHUNK) == big.read_bytes()[39 * CHUNK:]


# -- disk --------------------------------------------------------------------------------------------
def test_adding_a_256_mib_model_from_the_hf_cache_grows_the_repo_under_1_percent(
        backend: HFCacheBackend, hub: Path) -> None:
    size = 256 * 1024 * 1024
    make_hf_model(hub, MODEL, {"model.safetensors": os.urandom(size),
                               "config.json": b'{"layers": 2}\n'})
    before = disk_usage(backend.repo.path)
    result = backend.add_hf_model(MODEL)
    grown = disk_usage(backend.repo.path) - before
    assert result.size == size + 14 + len(  # the model and its snapshot record
        backend.cat(f"{cid_str(result.root)}/{RECORD_PATH}"))
    assert grown < size // 100, f"the repo grew by {grown} bytes"
    assert backend.repo.stat().references == size // CHUNK + 1


# -- roots ------------------------------------------------------------------------------------------
def test_a_snapshot_symlink_leading_out_of_the_hub_cache_is_refused(
        backend: HFCacheBackend, hub: Path, tmp_path: Path) -> None:
    snapshot = make_hf_model(hub, MODEL, {"config.json": b"{}\n"})
    secret = tmp_path / "secret.txt"
    secret.write_text("not a model\n")
    (snapshot / "stolen.txt").symlink_to(secret)
    with pytest.raises(UnsafePath, match="leads out of the HuggingFace cache"):
        backend.add_hf_model(MODEL)
    assert list(backend.repo.pins) == [] and backend.repo.filestore.count() == 0
    with pytest.raises(UnsafePath):
        hub_mod.check_inside_hub(snapshot, hub)


# -- CLI ------------------------------------------------------------------------------------------
def run_cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "ipfs_mcp.server.cli", *args],
                          capture_output=True, timeout=120, env=os.environ.copy())


def test_cli_add_hf_nocopy_filestore_ls_and_verify(isolated_hf_home: Path, tmp_path: Path,
                                                   weights: bytes) -> None:
    hub = isolated_hf_home / "hub"
    make_hf_model(hub, MODEL, {"model.safetensors": weights})
    added = run_cli("add", "--hf", "--json", MODEL)
    assert added.returncode == 0, added.stderr
    record = json.loads(added.stdout)
    assert record["nocopy"] is True
    listing = run_cli("filestore", "ls").stdout.decode().splitlines()
    blob = blob_of(hub, MODEL, weights)
    assert [line.split()[1:] for line in listing] == [
        [str(CHUNK), str(blob), str(i * CHUNK)] for i in range(3)] + [["1234", str(blob),
                                                                      str(3 * CHUNK)]]
    ok = run_cli("filestore", "verify")
    assert ok.returncode == 0 and all(line.startswith("ok      bafkrei")
                                      for line in ok.stdout.decode().splitlines())
    _truncate(blob)
    bad = run_cli("filestore", "verify")
    assert bad.returncode == 2
    statuses = [line.split()[0] for line in bad.stdout.decode().splitlines()]
    assert statuses == ["ok", "changed", "changed", "changed"]
    repo_verify = run_cli("repo", "verify")
    assert repo_verify.returncode == 2
    assert f"(changed), needed by pin {record['cid']}" in repo_verify.stdout.decode()
    cat = run_cli("cat", f"{record['cid']}/model.safetensors")
    assert cat.returncode == 1 and str(blob) in cat.stderr.decode()
    removed = run_cli("filestore", "verify", "--remove-bad-blocks")
    assert removed.returncode == 0 and "removed 3 bad reference" in removed.stderr.decode()
    assert len(run_cli("filestore", "ls").stdout.decode().splitlines()) == 1
    assert blob.stat().st_size == CHUNK + 100  # the file itself is left alone


def test_cli_copy_and_nocopy_flags(isolated_hf_home: Path, tmp_path: Path,
                                   weights: bytes) -> None:
    make_hf_model(isolated_hf_home / "hub", MODEL, {"model.safetensors": weights})
    copied = run_cli("add", "--hf", "--copy", "--json", MODEL)
    assert copied.returncode == 0 and json.loads(copied.stdout)["nocopy"] is False
    assert run_cli("filestore", "ls").stdout == b""
    path = tmp_path / "w.bin"
    path.write_bytes(weights)
    added = run_cli("add", "--nocopy", "--json", str(path))
    assert added.returncode == 0 and json.loads(added.stdout)["nocopy"] is True
    assert json.loads(added.stdout)["cid"] == cid_str(
        Importer(options=ImportOptions(raw_leaves=True)).add_path(path).root)
    assert len(run_cli("filestore", "ls").stdout.decode().splitlines()) == 4
    both = run_cli("add", "--nocopy", "--copy", str(path))
    assert both.returncode == 1 and b"contradict" in both.stderr


# -- MCP tools ----------------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_store_model_and_add_content_say_which_it_was(isolated_hf_home: Path,
                                                            work: Path, weights: bytes) -> None:
    hub = isolated_hf_home / "hub"
    make_hf_model(hub, MODEL, {"model.safetensors": weights})
    (work / "w.bin").write_bytes(weights)
    settings = ServerSettings.load(allow_roots=[str(work)], p2p=False, inline_max=4096,
                                   add_max=64 * 1024)
    with anyio.fail_after(60):
        async with Client(build_server(settings)) as client:
            async def call(name: str, args: dict) -> dict:
                result = await client.call_tool(name, args)
                assert not result.is_error, result.content
                return result.structured_content or {}

            stored = models.StoreResult.model_validate(
                await call("store_model", {"source": MODEL, "announce": False}))
            copied = models.StoreResult.model_validate(
                await call("store_model", {"source": MODEL, "announce": False,
                                           "nocopy": False}))
            added = models.AddResult.model_validate(
                await call("add_content", {"path": "w.bin", "nocopy": True}))
            plain = models.AddResult.model_validate(
                await call("add_content", {"path": "w.bin"}))
    assert (stored.nocopy, copied.nocopy, added.nocopy, plain.nocopy) == (
        True, False, True, False)
    # nocopy is raw leaves: the same CID for the blob and the file; not for the copy.
    assert stored.root_cid != copied.root_cid
    file_cid = next(f.cid for f in stored.files if f.path == "model.safetensors")
    assert file_cid == added.cid != plain.cid
    # One reference per leaf, as in Kubo: the last add's (the same bytes in another file).
    repo = Repo(isolated_hf_home / "ipfs")
    assert {r.path for r in repo.filestore.ls()} == {str(work / "w.bin")}
    assert repo.verify().ok


# -- bitswap peers ----------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_bitswap_peers_never_get_bytes_of_a_changed_file(tmp_path: Path,
                                                               weights: bytes) -> None:
    from tests.p2p.nodes import node_at, repo_at

    path = tmp_path / "w.bin"
    path.write_bytes(weights)
    root = HFCacheBackend(repo_at(tmp_path / "a")).add_path(path, options=NOCOPY).root
    leaves = [CID.decode(r.cid) for r in repo_at(tmp_path / "a").filestore.ls()]
    with trio.fail_after(60):
        async with node_at(tmp_path / "a") as a, node_at(tmp_path / "b") as b:
            await b.connect_peer(a.addrs[0])
            assert await b.retrieve_block(root) == repo_at(tmp_path / "a").blocks.get(root)
            assert await b.retrieve_block(leaves[0]) == weights[:CHUNK]
            _flip(path)  # the second leaf: A re-reads it, sees the change, sends nothing
            with pytest.raises(BlockNotFound):
                await b.retrieve_block(leaves[1])
            sent = a.bitswap.ledger(b.peer_id)
            assert (sent.blocks_sent, sent.dont_haves_sent) == (2, 1)  # root, leaf 0; no
            assert b.bitswap.ledger(a.peer_id).bad_blocks == 0  # wrong bytes never left A
    assert not repo_at(tmp_path / "b").blocks.has(leaves[1])
