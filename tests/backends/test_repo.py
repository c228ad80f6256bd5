"""The repo: atomic blocks, durable pins, GC, verify, and crashes mid-write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from ipfs_mcp.backends.core.cids import cid_of_block, cid_str
from ipfs_mcp.backends.core.importer import Importer, ImportOptions
from ipfs_mcp.backends.errors import BlockNotFound, IntegrityError, PinNotFound
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.repo.blockstore import ADD_BATCH_BYTES
from ipfs_mcp.backends.repo.repository import GCReport, Repo


def test_put_refuses_wrong_bytes_and_writes_nothing(repo: Repo) -> None:
    cid = cid_of_block(b"right")
    with pytest.raises(IntegrityError):
        repo.blocks.put(cid, b"wrong")
    assert not repo.blocks.has(cid)
    assert list(repo.blocks.iter_multihashes()) == []


def test_a_shard_folder_removed_from_outside_is_made_again(repo: Repo) -> None:
    first = cid_of_block(b"first")
    repo.blocks.put(first, b"first")
    shard = repo.blocks.path_of(bytes(first.digest)).parent
    # Another block of the same shard (one in about a thousand blocks is).
    for n in range(100_000):
        data = f"second {n}".encode()
        second = cid_of_block(data)
        if repo.blocks.path_of(bytes(second.digest)).parent == shard:
            break
    else:
        pytest.fail("no block of the same shard in 100000 tries")
    for child in shard.iterdir():
        child.unlink()
    shard.rmdir()
    assert repo.blocks.put(second, data)
    assert repo.blocks.get(second) == data


def test_corrupt_block_is_never_served_and_can_be_restored(repo: Repo) -> None:
    cid = cid_of_block(b"precious bytes")
    repo.blocks.put(cid, b"precious bytes")
    path = repo.blocks.path_of(bytes(cid.digest))
    path.write_bytes(b"precious bytez")
    with pytest.raises(IntegrityError, match="corrupt"):
        repo.blocks.get(cid)
    # set aside, so the next read is a clean miss and a good copy can be stored again
    with pytest.raises(BlockNotFound):
        repo.blocks.get(cid)
    assert [b.cid for b in repo.blocks.bad_blocks()] == [cid_str(cid)]
    assert repo.blocks.put(cid, b"precious bytes")
    assert repo.blocks.get(cid) == b"precious bytes"
    # the bad copy stays for inspection until it is removed on purpose
    report = repo.verify()
    assert not report.ok and [b.cid for b in report.corrupt] == [cid_str(cid)]
    assert repo.verify(remove_bad_blocks=True).ok
    assert repo.blocks.get(cid) == b"precious bytes"


def test_verify_remove_deletes_corrupt_blocks(repo: Repo) -> None:
    cid = cid_of_block(b"abc")
    repo.blocks.put(cid, b"abc")
    repo.blocks.path_of(bytes(cid.digest)).write_bytes(b"abd")
    report = repo.verify(remove_bad_blocks=True)
    assert [b.cid for b in report.removed] == [cid_str(cid)] and report.ok
    assert not repo.blocks.has(cid) and repo.blocks.bad_blocks() == []


def test_v0_and_v1_of_the_same_bytes_share_one_block(repo: Repo) -> None:
    node = Importer(repo.blocks).add_bytes(b"hello world\n")
    v1 = node.cid_obj.set(version=1)
    assert repo.blocks.get(v1) == repo.blocks.get(node.cid_obj)


def test_pins_survive_a_new_repo_instance(backend: HFCacheBackend) -> None:
    cid = backend.add_bytes(b"durable")
    again = Repo(backend.repo.path)
    assert [cid_str(p.cid) for p in again.pins] == [cid]
    assert again.gc().removed == 0


def test_pinning_a_dag_with_a_missing_block_names_it(backend: HFCacheBackend) -> None:
    options = ImportOptions(chunk_size=1024)
    cid = backend.add_bytes(os.urandom(10_000), pin=False, options=options)
    leaf = backend.repo.blocks
    victim = next(p for mh, p in leaf.iter_multihashes()
                  if cid_str(cid_of_block(p.read_bytes(), version=0, codec="dag-pb")) != cid)
    victim_cid = cid_of_block(victim.read_bytes(), version=0, codec="dag-pb")
    victim.unlink()
    with pytest.raises(BlockNotFound) as info:
        backend.pin(cid)
    assert info.value.cid == cid_str(victim_cid)
    assert list(backend.repo.pins) == []


def test_gc_keeps_pinned_dags_and_reports_what_it_freed(backend: HFCacheBackend) -> None:
    keep = backend.add_bytes(os.urandom(600_000))
    drop = backend.add_bytes(os.urandom(600_000), pin=False)
    direct = backend.block_put(b"direct pin")
    backend.pin(direct, recursive=False)
    before = backend.repo.stat()
    report = backend.repo.gc()
    assert report.removed == 4 and report.freed > 600_000  # 3 leaves + root of `drop`
    assert backend.cat(keep) and backend.block_get(direct) == b"direct pin"
    with pytest.raises(BlockNotFound):
        backend.cat(drop)
    assert backend.repo.stat().blocks == before.blocks - 4
    backend.unpin(keep)
    with pytest.raises(PinNotFound):
        backend.unpin(keep)


def test_gc_waits_for_an_add_in_another_process(backend: HFCacheBackend) -> None:
    # The other process holds the writer lock between storing blocks and pinning them;
    # GC here must block until then and must not sweep those blocks.
    script = textwrap.dedent(f"""
        import os, sys
        from ipfs_mcp.backends.repo.repository import GCReport, Repo
        from ipfs_mcp.backends.core.importer import Importer
        repo = Repo({str(backend.repo.path)!r})
        with repo.writing():
            node = Importer(repo.blocks).add_bytes(os.urandom(2_000_000))
            print(node.cid_obj, flush=True)
            sys.stdin.readline()  # hold the lock until told to go on
            repo.pins.add(node.cid_obj, "recursive")
    """)
    with subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None and proc.stdin is not None
        cid = proc.stdout.readline().strip()
        waiting = threading.Event()
        result: list[GCReport] = []
        worker = threading.Thread(
            target=lambda: result.append(backend.repo.gc(on_wait=waiting.set)))
        worker.start()
        # GC says it is waiting only when the lock is held by someone else; a GC that
        # did not wait for the add never sets this and the test fails at the deadline.
        assert waiting.wait(timeout=30), "GC did not wait for the add in flight"
        assert result == []
        proc.stdin.write("go\n")
        proc.stdin.flush()
        worker.join(timeout=60)
        assert not worker.is_alive(), "GC still blocked after the add released the lock"
        assert proc.wait(timeout=30) == 0
    assert result[0].removed == 0 and result[0].kept == len(list(
        backend.repo.blocks.iter_multihashes()))
    assert len(backend.cat(cid)) == 2_000_000


def test_kill_9_mid_add_leaves_a_consistent_repo(backend: HFCacheBackend, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * ADD_BATCH_BYTES))
    # Past the second batch's cut, which waits for the first batch's commit: some blocks are
    # in place, and more are in flight, when the kill comes.
    midway = 2 * ADD_BATCH_BYTES + (1 << 20)
    script = textwrap.dedent(f"""
        from ipfs_mcp.backends.repo.repository import GCReport, Repo
        from ipfs_mcp.backends.hf_cache import HFCacheBackend
        b = HFCacheBackend(Repo({str(backend.repo.path)!r}))
        def progress(n, seen=[0]):
            seen[0] += n
            if seen[0] >= {midway} and seen[0] - n < {midway}:
                print("midway", flush=True)
        b.add_path({str(big)!r}, progress=progress)
    """)
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                          text=True) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "midway"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    repo = Repo(backend.repo.path)
    assert repo.verify().ok  # no torn block under a real key
    assert list(repo.pins) == []  # nothing half-pinned
    assert repo.stat().blocks > 0
    report = repo.gc()
    assert report.removed > 0 and repo.stat().blocks == 0
    # a half-written temp file may remain; it is young, so GC leaves it (it could belong to
    # a live writer) until it is stale
    repo.blocks.clean_tmp(stale_after=0)
    assert list(repo.blocks.tmp_dir.iterdir()) == []
    # the same add, done again, completes and matches a fresh import
    again = HFCacheBackend(repo).add_path(big)
    assert again.root == Importer().add_path(big).root


def test_two_processes_add_into_one_repo_at_once(backend: HFCacheBackend, tmp_path: Path) -> None:
    shared = os.urandom(3_000_000)  # both add these blocks: same keys, racing renames
    files = []
    for i in range(2):
        path = tmp_path / f"f{i}.bin"
        path.write_bytes(shared + os.urandom(1_000_000))
        files.append(path)
    script = textwrap.dedent(f"""
        import sys
        from ipfs_mcp.backends.repo.repository import GCReport, Repo
        from ipfs_mcp.backends.hf_cache import HFCacheBackend
        from ipfs_mcp.backends.core.cids import cid_str
        b = HFCacheBackend(Repo({str(backend.repo.path)!r}))
        print(cid_str(b.add_path(sys.argv[1]).root))
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(f)], stdout=subprocess.PIPE,
                              text=True) for f in files]
    cids = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        cids.append(out.strip())
    repo = Repo(backend.repo.path)
    assert repo.verify().ok
    assert sorted(cid_str(p.cid) for p in repo.pins) == sorted(cids)
    for cid, path in zip(cids, files, strict=True):
        assert HFCacheBackend(repo).cat(cid) == path.read_bytes()


def test_verify_handles_other_hash_functions(repo: Repo) -> None:
    from multiformats import CID, multihash

    cid = CID("base32", 1, "raw", multihash.digest(b"abc", "blake2b-256"))
    repo.blocks.put(cid, b"abc")
    assert repo.verify().ok and repo.verify().checked == 1
    repo.blocks.path_of(bytes(cid.digest)).write_bytes(b"abd")
    assert [b.cid for b in repo.verify().corrupt] == [cid_str(cid)]


def test_pinning_a_chain_deeper_than_any_real_dag_is_refused(tmp_path: Path) -> None:
    from ipfs_mcp.backends.core import dagpb, limits
    from ipfs_mcp.backends.errors import DagTooLarge

    repo = Repo(tmp_path / "repo", fsync=False)  # thousands of tiny blocks: no fsync each
    cid = cid_of_block(b"leaf", version=1, codec="raw")
    repo.blocks.put(cid, b"leaf")
    for _ in range(limits.MAX_DAG_DEPTH + 1):
        block = dagpb.encode_node([dagpb.encode_link(bytes(cid), "", 4)], None)
        cid = cid_of_block(block, version=1, codec="dag-pb")
        repo.blocks.put(cid, block)
    with pytest.raises(DagTooLarge, match="levels deep"):
        repo.pin(cid)
    assert list(repo.pins) == []
    assert repo.gc().removed == limits.MAX_DAG_DEPTH + 2  # all of it was garbage
