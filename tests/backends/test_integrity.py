"""A repo that never calls itself healthy when it is not.

Blocks are damaged on disk by hand (a flipped byte, a deleted file), then the repo is asked:
``repo verify`` (the method and the real ``ipfs-mcp`` command) must name every hole and every
bad block, exit non-zero until they are gone, and GC must keep the bad blocks for inspection.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest
from mcp import Client
from multiformats import CID

from ipfs_mcp.backends.core.cids import cid_str, parse_cid
from ipfs_mcp.backends.core.dag import walk
from ipfs_mcp.backends.core.importer import ImportOptions
from ipfs_mcp.backends.errors import BlockNotFound, IntegrityError
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.repo.repository import Repo

SMALL_CHUNKS = ImportOptions(chunk_size=4096, cid_version=1)  # raw leaves, several per file


@pytest.fixture
def home(isolated_hf_home: Path) -> HFCacheBackend:
    """The repo the `ipfs-mcp` command uses (``$HF_HOME/ipfs``), opened in this process."""
    return HFCacheBackend(Repo(isolated_hf_home / "ipfs"))


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ipfs_mcp.server.cli", *args], text=True,
                          capture_output=True, timeout=120, env=os.environ.copy())


def verify_json(*flags: str) -> tuple[int, dict[str, object]]:
    proc = cli("repo", "verify", "--json", *flags)
    assert proc.returncode in (0, 2), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def blocks_of(repo: Repo, root: str) -> list[tuple[CID, bytes]]:
    return list(walk(parse_cid(root), repo.blocks.get))


def flip_a_byte(repo: Repo, cid: CID) -> bytes:
    """Damage a stored block in place; returns the bytes now on disk."""
    path = repo.blocks.path_of(bytes(cid.digest))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return bytes(data)


def test_corrupt_pinned_block_is_reported_until_repaired_and_removed(
        home: HFCacheBackend) -> None:
    data = os.urandom(5 * 4096 + 17)
    root = home.add_bytes(data, options=SMALL_CHUNKS)
    leaf = blocks_of(home.repo, root)[2][0]
    damaged = flip_a_byte(home.repo, leaf)
    with pytest.raises(IntegrityError):  # the read that notices it sets it aside
        home.cat(root)

    code, report = verify_json()
    assert code == 2 and report["ok"] is False
    assert report["missing"] == [{"cid": cid_str(leaf), "pins": [root], "kind": "corrupt"}]
    [bad] = report["corrupt"]  # type: ignore[misc]
    assert bad["multihash"] in Path(bad["path"]).name
    assert Path(bad["path"]).parent == home.repo.path / "quarantine"
    assert Path(bad["path"]).read_bytes() == damaged  # kept as it was found, to inspect
    assert bad["cid"] == cid_str(leaf) and bad["size"] == len(damaged)

    # GC (and the temp cleanup) leave the bad block alone; the pinned DAG keeps its blocks
    before = home.repo.stat().blocks
    gc = cli("repo", "gc", "--json")
    assert gc.returncode == 0, gc.stderr
    assert json.loads(gc.stdout)["missing"] == [cid_str(leaf)]
    home.repo.blocks.clean_tmp(stale_after=0)
    assert Path(bad["path"]).exists() and home.repo.stat().blocks == before

    # removing the bad block does not make the broken pin whole: still non-zero
    code, report = verify_json("--remove-bad-blocks")
    assert code == 2 and [r["path"] for r in report["removed"]] == [bad["path"]]
    assert report["corrupt"] == [] and not Path(bad["path"]).exists()
    assert [m["kind"] for m in report["missing"]] == ["absent"]

    # adding the same bytes again stores the good block: only now does verify pass
    assert home.add_bytes(data, options=SMALL_CHUNKS) == root
    code, report = verify_json()
    assert code == 0 and report["ok"] is True and report["missing"] == []
    assert home.cat(root) == data


def test_a_bad_copy_fails_verify_until_removed_even_after_repair(home: HFCacheBackend) -> None:
    data = os.urandom(3 * 4096)
    root = home.add_bytes(data, options=SMALL_CHUNKS)
    flip_a_byte(home.repo, blocks_of(home.repo, root)[1][0])
    with pytest.raises(IntegrityError):
        home.cat(root)
    home.add_bytes(data, options=SMALL_CHUNKS)  # repaired, but the bad copy remains

    proc = cli("repo", "verify")
    assert proc.returncode == 2
    assert "1 corrupt" in proc.stdout and "corrupt: " in proc.stdout
    proc = cli("repo", "verify", "--remove-bad-blocks")
    assert proc.returncode == 0, proc.stdout
    assert "removed bad block" in proc.stdout
    assert cli("repo", "verify").returncode == 0


def test_verify_finds_a_corrupt_block_nobody_read(home: HFCacheBackend) -> None:
    root = home.add_bytes(os.urandom(4 * 4096), options=SMALL_CHUNKS)
    leaf = blocks_of(home.repo, root)[3][0]
    flip_a_byte(home.repo, leaf)
    report = home.repo.verify()
    assert not report.ok and [b.cid for b in report.corrupt] == [cid_str(leaf)]
    assert [(m.cid, m.pins, m.kind) for m in report.missing] == [(cid_str(leaf), (root,),
                                                                   "corrupt")]


def test_deleted_child_block_is_named_with_every_pin_it_breaks(
        home: HFCacheBackend, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "shared").mkdir(parents=True)
    (tree / "shared" / "weights.bin").write_bytes(os.urandom(3 * 4096))
    (tree / "a.txt").write_bytes(b"a\n")
    outer = cid_str(home.add_path(tree, options=SMALL_CHUNKS).root)
    inner = cid_str(home.add_path(tree / "shared", options=SMALL_CHUNKS).root)
    garbage = home.add_bytes(os.urandom(4 * 4096), pin=False, options=SMALL_CHUNKS)
    # delete the "shared" folder's node: a node with links, pinned by both roots
    victim = parse_cid(inner)
    home.repo.blocks.path_of(bytes(victim.digest)).unlink()

    report = home.repo.verify()
    assert not report.ok and report.corrupt == () and report.pins == 2
    assert [(m.cid, sorted(m.pins), m.kind) for m in report.missing] == [
        (inner, sorted([outer, inner]), "absent")]
    proc = cli("repo", "verify")
    assert proc.returncode == 2 and f"missing: {inner}" in proc.stdout
    assert outer in proc.stdout

    # GC cannot know which blocks sit below the lost node, so it deletes nothing at all
    before = home.repo.stat().blocks
    with pytest.raises(IntegrityError, match="deleted nothing"):
        home.repo.gc()
    assert home.repo.stat().blocks == before
    gc = cli("repo", "gc")
    assert gc.returncode == 1 and "deleted nothing" in gc.stderr
    assert home.cat(garbage)  # the unpinned blocks are still there too


def test_missing_direct_pin_and_missing_root_are_reported(home: HFCacheBackend) -> None:
    direct = home.block_put(b"directly pinned")
    home.pin(direct, recursive=False)
    root = home.add_bytes(b"a one-block file")
    for cid in (direct, root):
        home.repo.blocks.path_of(bytes(parse_cid(cid).digest)).unlink()
    report = home.repo.verify()
    assert sorted((m.cid, m.pins) for m in report.missing) == sorted(
        [(direct, (direct,)), (root, (root,))])


def test_gc_never_removes_the_quarantine(home: HFCacheBackend) -> None:
    cid = parse_cid(home.block_put(b"soon to be corrupt"))  # unpinned: garbage for GC
    flip_a_byte(home.repo, cid)
    before = time.time()
    with pytest.raises(IntegrityError):
        home.block_get(cid_str(cid))
    after = time.time()
    [bad] = home.repo.blocks.bad_blocks()
    name = Path(bad.path).name
    assert name.startswith(bad.multihash + ".") and name.endswith(".data")
    assert int(before) <= bad.set_aside_at <= after  # the name carries when it was set aside
    for _ in range(2):
        home.repo.gc()
    home.repo.blocks.clean_tmp(stale_after=0)
    assert home.repo.blocks.bad_blocks() == [bad]
    assert not home.repo.verify().ok
    assert [b.path for b in home.repo.verify(remove_bad_blocks=True).removed] == [bad.path]
    assert home.repo.verify().ok and home.repo.blocks.bad_blocks() == []


def test_a_repo_from_before_the_quarantine_keeps_working(home: HFCacheBackend) -> None:
    # The older layout set bad blocks aside as tmp/corrupt-<KEY>.data.<hex>, where GC
    # deleted them; they are now adopted into quarantine/ and kept.
    root = home.add_bytes(b"pinned and intact")
    cid = parse_cid(home.block_put(b"a block that went bad"))
    path = home.repo.blocks.path_of(bytes(cid.digest))
    damaged = flip_a_byte(home.repo, cid)
    legacy = home.repo.blocks.tmp_dir / f"corrupt-{path.name}.0123456789abcdef"
    os.replace(path, legacy)
    reopened = Repo(home.repo.path)  # an existing repo, opened again
    assert reopened.gc().removed == 0
    assert not legacy.exists()
    [bad] = reopened.blocks.bad_blocks()
    assert bad.cid == cid_str(cid) and Path(bad.path).read_bytes() == damaged
    report = reopened.verify()
    assert not report.ok and report.missing == ()
    assert reopened.verify(remove_bad_blocks=True).ok
    assert HFCacheBackend(reopened).cat(root) == b"pinned and intact"


def test_setting_aside_a_good_copy_puts_it_back(home: HFCacheBackend) -> None:
    # Between a reader's failed hash and its rename, another process may have replaced the
    # bad file with a good copy; that copy must not be set aside.
    cid = parse_cid(home.block_put(b"good bytes"))
    home.repo.blocks.quarantine(home.repo.blocks.path_of(bytes(cid.digest)))
    assert home.block_get(cid_str(cid)) == b"good bytes"
    assert home.repo.blocks.bad_blocks() == []


def test_integrity_state_is_kept_and_reflects_the_last_verify(home: HFCacheBackend) -> None:
    repo = home.repo
    assert repo.integrity().status == "unverified" and repo.integrity().last_verify is None
    root = home.add_bytes(os.urandom(3 * 4096), options=SMALL_CHUNKS)
    assert repo.verify().ok
    state = repo.integrity()
    assert state.status == "ok" and state.last_verify is not None and state.last_verify.ok
    assert state.last_verify.checked == 4 and state.last_verify.pins == 1

    leaf = blocks_of(repo, root)[1][0]
    flip_a_byte(repo, leaf)
    with pytest.raises(IntegrityError):
        home.cat(root)
    # the set-aside block shows at once, before any verify
    assert repo.integrity().quarantined == 1 and repo.integrity().status == "damaged"
    repo.verify(remove_bad_blocks=True)
    state = Repo(repo.path).integrity()  # persisted: another process sees the same
    assert state.status == "damaged" and state.quarantined == 0
    assert state.last_verify is not None and state.last_verify.missing == 1
    assert "1 missing" in state.summary
    assert [p.name for p in repo.path.iterdir() if p.name.startswith(".")] == []

    repo.unpin(parse_cid(root))
    assert repo.verify().ok and Repo(repo.path).integrity().status == "ok"


def test_pin_of_a_dag_with_a_corrupt_block_fails_and_writes_no_pin(home: HFCacheBackend) -> None:
    root = home.add_bytes(os.urandom(3 * 4096), pin=False, options=SMALL_CHUNKS)
    node = parse_cid(root)
    flip_a_byte(home.repo, node)  # the root has links: its bytes must be read to pin
    with pytest.raises(IntegrityError):
        home.pin(root)
    assert list(home.repo.pins) == []
    with pytest.raises(BlockNotFound):
        home.pin(root)


@pytest.mark.anyio
async def test_health_resource_shows_a_damaged_repo(home: HFCacheBackend, work: Path) -> None:
    from ipfs_mcp.server.app import build_server
    from ipfs_mcp.server.config import ServerSettings
    from ipfs_mcp.tools import models

    root = home.add_bytes(os.urandom(3 * 4096), options=SMALL_CHUNKS)
    settings = ServerSettings.load(allow_roots=[str(work)], p2p=False)

    async def read_health(client: Client) -> models.Health:
        result = await client.read_resource("ipfs-mcp://health")
        return models.Health.model_validate_json(result.contents[0].text)  # type: ignore[union-attr]

    with anyio.fail_after(60):
        async with Client(build_server(settings)) as client:
            health = await read_health(client)
            assert health.repo is not None and health.repo.integrity is not None
            assert health.repo.integrity.status == "unverified" and health.status == "ok"

            flip_a_byte(home.repo, blocks_of(home.repo, root)[1][0])
            with pytest.raises(IntegrityError):
                home.cat(root)
            home.repo.verify()
            health = await read_health(client)
            assert health.status == "degraded"
            integrity = health.repo.integrity  # type: ignore[union-attr]
            assert integrity is not None and integrity.status == "damaged"
            assert integrity.quarantined == 1 and integrity.missing_blocks == 1
            assert integrity.last_verify_ok is False
            assert any("integrity" in e for e in health.recent_errors)
