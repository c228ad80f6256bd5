"""kill -9 during GC, pin or verify leaves pins and blocks consistent.

A child Python process works on a real repo and says on its stdout when it is in the middle
of an operation. At some kill points it then stops and waits, so the kill lands exactly
there; at others it keeps looping, so the kill lands wherever the operation has got to. The
parent waits for the word (with a deadline, never a sleep), sends SIGKILL, and checks the
repo: every pin file is whole, every pinned DAG is complete, and verify passes.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ipfs_mcp.backends.core.cids import cid_str, parse_cid
from ipfs_mcp.backends.core.importer import ImportOptions
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.repo.repository import Repo

DEADLINE = 120.0  # seconds for the child to reach its kill point (a slow, shared machine)

CHILD = textwrap.dedent("""
    import os, sys
    from ipfs_mcp.backends.hf_cache import HFCacheBackend
    from ipfs_mcp.backends.core.importer import ImportOptions
    from ipfs_mcp.backends.repo.repository import Repo

    repo = Repo(sys.argv[1])
    backend = HFCacheBackend(repo)
    scenario = sys.argv[2]
    V0_SMALL = ImportOptions(chunk_size=1024)  # dag-pb leaves: a pin reads every block

    def say(word):
        sys.stdout.write(word + "\\n")
        sys.stdout.flush()

    def stop_here(word):
        say(word)
        sys.stdin.readline()  # the parent kills us here; it never writes
        raise SystemExit("not killed")

    def after(count, word, pause):
        seen = [0]
        def hook(_n=0):
            seen[0] += 1
            if seen[0] == count:
                stop_here(word) if pause else say(word)
        return hook

    if scenario == "gc-mid-sweep":
        for i in range(300):
            backend.block_put(os.urandom(64))
        repo.gc(progress=after(50, "mid-gc", pause=True))
    elif scenario == "gc-loop":
        previous = None
        for i in range(10_000):
            backend.add_bytes(os.urandom(40_000), pin=False, options=V0_SMALL)
            pinned = backend.add_bytes(os.urandom(40_000), options=V0_SMALL)
            if previous is not None:
                backend.unpin(previous)
            previous = pinned
            say(f"gc {i}")
            repo.gc()
    elif scenario == "pin-mid-walk":
        root = backend.add_bytes(os.urandom(60_000), pin=False, options=V0_SMALL)
        load = after(20, "mid-pin", pause=True)
        def loader(cid):
            load()
            return repo.blocks.get(cid)
        from multiformats import CID
        repo.pin(CID.decode(root), load=loader)
    elif scenario == "pin-loop":
        previous = None
        for i in range(10_000):
            root = backend.add_bytes(os.urandom(30_000), pin=False, options=V0_SMALL)
            say(f"pin {i}")
            backend.pin(root, name=f"round {i}")
            if previous is not None:
                backend.unpin(previous)
            previous = root
    elif scenario == "verify-mid-rehash":
        repo.verify(progress=after(40, "mid-verify", pause=True))
    elif scenario == "verify-loop":
        for i in range(10_000):
            cid = backend.block_put(os.urandom(64))
            from multiformats import CID
            path = repo.blocks.path_of(bytes(CID.decode(cid).digest))
            path.write_bytes(b"flipped")
            say(f"verify {i}")
            repo.verify(remove_bad_blocks=i % 2 == 0)
    else:
        raise SystemExit(f"unknown scenario {scenario}")
    raise SystemExit("ran out of work before the kill")
""")


class Child:
    """The child process and a bounded reader of its words."""

    def __init__(self, repo: Path, scenario: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", CHILD, str(repo), scenario],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self._buffer = b""

    def wait_for(self, word: str) -> None:
        """Block until the child prints ``word`` on a line of its own, or fail."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + DEADLINE
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while word.encode() not in self._buffer.split(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0:
                    self.kill()
                    pytest.fail(f"the child never said {word!r}")
                if not selector.select(left):
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    self.proc.wait(timeout=30)
                    assert self.proc.stderr is not None
                    pytest.fail(f"the child exited ({self.proc.returncode}) before saying "
                                f"{word!r}: {self.proc.stderr.read().decode()[-2000:]}")
                self._buffer += chunk

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        assert self.proc.wait(timeout=30) == -signal.SIGKILL
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[Path, str, bytes]:
    """A repo with one pinned folder that no scenario may damage."""
    folder = tmp_path / "keep"
    (folder / "sub").mkdir(parents=True)
    payload = os.urandom(50_000)
    (folder / "sub" / "weights.bin").write_bytes(payload)
    (folder / "README.md").write_bytes(b"# keep\n")
    backend = HFCacheBackend(Repo(tmp_path / "repo"))
    root = backend.add_path(folder, options=ImportOptions(chunk_size=1024))
    return backend.repo.path, cid_str(root.root), payload


def assert_consistent(path: Path, keep: str, payload: bytes) -> Repo:
    """Every pin file whole, every pinned DAG complete, nothing corrupt left behind."""
    repo = Repo(path)
    for kind in ("recursive", "direct"):
        for pin_file in (path / "pins" / kind).glob("*.json"):
            record = json.loads(pin_file.read_text(encoding="utf-8"))  # never half-written
            assert record["cid"] == pin_file.stem and record["type"] == kind
    summary = path / "integrity.json"
    if summary.exists():
        assert set(json.loads(summary.read_text())) >= {"at", "ok", "missing"}
    report = repo.verify()
    assert report.missing == (), report.missing  # no pinned DAG lost a block
    assert report.corrupt == ()  # and no block was torn
    assert keep in {cid_str(p.cid) for p in repo.pins}
    assert HFCacheBackend(repo).cat(f"{keep}/sub/weights.bin") == payload
    return repo


def run_to_kill(path: Path, scenario: str, word: str) -> None:
    child = Child(path, scenario)
    child.wait_for(word)
    child.kill()


def test_kill_9_mid_gc_sweep(seeded: tuple[Path, str, bytes]) -> None:
    path, keep, payload = seeded
    kept = Repo(path).stat().blocks
    run_to_kill(path, "gc-mid-sweep", "mid-gc")
    repo = assert_consistent(path, keep, payload)
    assert repo.stat().blocks == kept + 300 - 50  # killed after the 50th of 300 deletions
    report = repo.gc()
    assert report.removed > 0 and report.missing == ()
    assert_consistent(path, keep, payload)


def test_kill_9_while_gc_runs_in_a_loop(seeded: tuple[Path, str, bytes]) -> None:
    path, keep, payload = seeded
    run_to_kill(path, "gc-loop", "gc 3")
    repo = assert_consistent(path, keep, payload)
    assert len(list(repo.pins)) in (2, 3)  # keep, and one or two rounds (unpin is last)
    repo.gc()
    assert_consistent(path, keep, payload)


def test_kill_9_mid_pin_walk_writes_no_pin(seeded: tuple[Path, str, bytes]) -> None:
    path, keep, payload = seeded
    run_to_kill(path, "pin-mid-walk", "mid-pin")
    repo = assert_consistent(path, keep, payload)
    assert [cid_str(p.cid) for p in repo.pins] == [keep]  # nothing half-pinned
    before = repo.stat().blocks
    assert repo.gc().removed > 0 and repo.stat().blocks < before  # the add was garbage
    assert_consistent(path, keep, payload)


def test_kill_9_while_pinning_in_a_loop(seeded: tuple[Path, str, bytes]) -> None:
    path, keep, payload = seeded
    run_to_kill(path, "pin-loop", "pin 5")
    repo = assert_consistent(path, keep, payload)
    # the loop pins round N, then unpins round N-1: one or two consecutive rounds remain
    rounds = sorted(int(p.name.split()[1]) for p in repo.pins if cid_str(p.cid) != keep)
    assert rounds[0] >= 4 and rounds in ([rounds[0]], [rounds[0], rounds[0] + 1]), rounds
    repo.gc()
    assert_consistent(path, keep, payload)


def test_kill_9_mid_verify(seeded: tuple[Path, str, bytes]) -> None:
    path, keep, payload = seeded
    backend = HFCacheBackend(Repo(path))
    bad = backend.block_put(b"will rot")
    for i in range(60):
        backend.block_put(f"filler {i}".encode())
    backend.repo.blocks.path_of(bytes(parse_cid(bad).digest)).write_bytes(b"rotten")
    run_to_kill(path, "verify-mid-rehash", "mid-verify")
    repo = Repo(path)
    report = repo.verify()
    assert [b.cid for b in report.corrupt] == [bad] and report.missing == ()
    assert not report.ok and repo.integrity().status == "damaged"
    assert repo.verify(remove_bad_blocks=True).ok
    assert_consistent(path, keep, payload)
    assert repo.integrity().status == "ok"


def test_kill_9_while_verifying_in_a_loop(seeded: tuple[Path, str, bytes]) -> None:
    path, keep, payload = seeded
    run_to_kill(path, "verify-loop", "verify 4")
    repo = Repo(path)
    report = repo.verify(remove_bad_blocks=True)
    assert report.missing == () and report.ok
    assert_consistent(path, keep, payload)
