"""A bounded repo (``--repo-max``): past the watermark the coldest unpinned blocks go; pinned,
hot and leased blocks stay; a fetch that cannot fit is refused before its first byte.

Real repos on a tmp folder, bounded in bytes. The network is stood in for by a fetcher that
serves a second real repo and counts what it is asked (the thing under test is the bound).
"""

from __future__ import annotations

import io
import os
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from multiformats import CID

from ipfs_mcp.backends.core import car
from ipfs_mcp.backends.core.cids import cid_str, parse_cid
from ipfs_mcp.backends.errors import BlockNotFound, RepoFull
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.repo.eviction import HeatTable, RepoBound
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.backends.settings import BackendSettings

KIB = 1024
MIB = 1024 * KIB


def bounded(path: Path, max_bytes: int, *, memory: int = 0) -> HFCacheBackend:
    return HFCacheBackend(Repo(path, fsync=False, bound=RepoBound(max_bytes),
                               memory_bytes=memory))


def stored(repo: Repo, cid: str) -> bool:
    return repo.blocks.path_of(bytes(parse_cid(cid).digest)).exists()


def blocks_size(repo: Repo) -> int:
    return sum(p.stat().st_size for _, p in repo.blocks.iter_multihashes())


def test_past_the_watermark_cold_blocks_go_and_pinned_and_hot_ones_stay(tmp_path: Path) -> None:
    home = bounded(tmp_path / "repo", 4 * MIB, memory=1 * MIB)
    repo = home.repo
    pinned = home.add_bytes(os.urandom(200 * KIB), pin=True)
    # Twelve single-block files, unpinned: 2.9 MB in all, under the 3.6 MB watermark.
    cached = [home.add_bytes(os.urandom(200 * KIB), pin=False) for _ in range(12)]
    assert all(stored(repo, c) for c in cached)
    hot = cached[:3]
    for _ in range(3):
        for cid in hot:
            home.cat(cid)
    # More content past the watermark: the coldest (read never, stored first) go.
    newer = [home.add_bytes(os.urandom(200 * KIB), pin=False) for _ in range(8)]

    assert stored(repo, pinned)
    assert all(stored(repo, c) for c in hot)
    gone = [c for c in cached[3:] if not stored(repo, c)]
    assert gone, "nothing cold was evicted"
    assert gone == cached[3:3 + len(gone)], "the oldest cold blocks go first"
    assert stored(repo, newer[-1])
    tiers = repo.tiers()
    assert tiers.disk_bytes == blocks_size(repo) <= 4 * MIB * 0.9
    assert tiers.evicted_blocks == len(gone) and tiers.evicted_bytes >= len(gone) * 200 * KIB
    assert tiers.memory is not None and tiers.memory.hits >= 3  # the third read of each
    assert repo.verify().ok


def test_a_reader_holding_a_lease_never_sees_a_block_evicted_under_it(tmp_path: Path) -> None:
    """Real threads: one exports a 1 MiB unpinned file over and over while another adds
    enough that every unleased unpinned block must go."""
    home = bounded(tmp_path / "repo", 4 * MIB)
    repo = home.repo
    data = os.urandom(1 * MIB)
    root = home.add_bytes(data, pin=False)
    leased = threading.Event()
    done = threading.Event()
    failures: list[BaseException] = []
    reads = 0

    def reader() -> None:
        nonlocal reads
        try:
            with repo.lease(parse_cid(root)):
                leased.set()
                while not done.is_set() and reads < 10_000:
                    assert home.cat(root) == data
                    reads += 1
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            failures.append(exc)
            leased.set()

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        assert leased.wait(10)
        for _ in range(8):
            home.add_bytes(os.urandom(1536 * KIB), pin=False)
        # Room for 3.2 MiB needs the leased MiB too: refused, not taken from the reader.
        with pytest.raises(RepoFull):
            home.add_bytes(os.urandom(3200 * KIB), pin=False)
    finally:
        done.set()
        thread.join(30)
    assert not thread.is_alive()
    assert not failures, failures
    assert reads > 0
    assert repo.tiers().evicted_blocks >= 7  # the earlier adds went, the leased file stayed
    dag = _dag(repo, root)
    assert all(stored(repo, cid_str(c)) for c in dag)
    # Unleased, the same file can go: the same add now fits.
    home.add_bytes(os.urandom(3200 * KIB), pin=False)
    assert not all(stored(repo, cid_str(c)) for c in dag)
    assert repo.verify().ok


def _dag(repo: Repo, root: str) -> list[CID]:
    from ipfs_mcp.backends.core.dag import walk

    return [cid for cid, _ in walk(parse_cid(root), repo.blocks.get)]


class PeerRepo:
    """The network, stood in for by a second real repo: every block fetched is verified
    and stored here (as the fetcher protocol says), and each request is counted."""

    def __init__(self, peer: Repo, into: Repo) -> None:
        self.peer = peer
        self.into = into
        self.blocks_asked: list[CID] = []
        self.dags_asked: list[CID] = []

    def fetch_block(self, cid: CID, cancel: threading.Event | None = None) -> bytes:
        self.blocks_asked.append(cid)
        data = self.peer.blocks.get(cid)
        self.into.blocks.put(cid, data)
        return data

    def fetch_dag(self, root: CID, cancel: threading.Event | None = None) -> None:
        self.dags_asked.append(root)
        from ipfs_mcp.backends.core.dag import walk

        for cid, data in walk(root, self.peer.blocks.get):
            self.into.blocks.put(cid, data)


def test_a_fetch_too_large_for_the_bound_is_refused_before_the_first_byte(
        tmp_path: Path) -> None:
    peer = HFCacheBackend(Repo(tmp_path / "peer", fsync=False))
    big = peer.add_bytes(os.urandom(3 * MIB))
    repo = Repo(tmp_path / "repo", fsync=False, bound=RepoBound(2 * MIB))
    network = PeerRepo(peer.repo, repo)
    home = HFCacheBackend(repo, fetcher=network)
    pinned = home.add_bytes(os.urandom(512 * KIB), pin=True)
    before = {m for m, _ in repo.blocks.iter_multihashes()}

    with pytest.raises(RepoFull) as refused:
        home.get_to_path(big, output_path=tmp_path / "out")
    message = str(refused.value)
    # What is needed (the declared 3 MiB less the root it has), what is free, the bound.
    assert 3 * MIB - 4 * KIB < refused.value.needed < 3 * MIB
    assert f"needs {refused.value.needed} bytes" in message
    assert f"at most {refused.value.free} can be made free" in message
    assert "bound of 2097152 bytes" in message and "--repo-max" in message
    assert refused.value.free < refused.value.needed
    # Only the root was asked for (its declared size is what refused it); no DAG fetch.
    assert network.blocks_asked == [parse_cid(big)] and network.dags_asked == []
    after = {m for m, _ in repo.blocks.iter_multihashes()}
    assert after - before == {bytes(parse_cid(big).digest)}
    assert not (tmp_path / "out").exists()
    with pytest.raises(RepoFull):
        home.pin(big)
    assert network.dags_asked == []
    assert repo.tiers().refused == 2
    assert stored(repo, pinned)


def test_a_fetch_that_fits_once_cold_blocks_go_evicts_them_first(tmp_path: Path) -> None:
    peer = HFCacheBackend(Repo(tmp_path / "peer", fsync=False))
    wanted_data = os.urandom(1 * MIB)
    wanted = peer.add_bytes(wanted_data)
    repo = Repo(tmp_path / "repo", fsync=False, bound=RepoBound(2 * MIB))
    home = HFCacheBackend(repo, fetcher=PeerRepo(peer.repo, repo))
    cold = [home.add_bytes(os.urandom(400 * KIB), pin=False) for _ in range(4)]
    cold_blocks = [c for root in cold for c in _dag(repo, root)]
    home.get_to_path(wanted, output_path=tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == wanted_data
    assert not all(stored(repo, cid_str(c)) for c in cold_blocks)
    assert blocks_size(repo) <= 2 * MIB
    assert repo.verify().ok


def test_an_add_that_cannot_fit_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    home = bounded(tmp_path / "repo", 1 * MIB)
    home.add_bytes(os.urandom(600 * KIB), pin=True)
    with pytest.raises(RepoFull):
        home.add_bytes(os.urandom(600 * KIB), pin=True)
    assert home.repo.tiers().disk_bytes == blocks_size(home.repo) < 700 * KIB


def test_heat_is_rebuilt_from_the_blocks_on_disk_after_a_restart(tmp_path: Path) -> None:
    home = bounded(tmp_path / "repo", 4 * MIB)
    # Single-block files of one size: their heat differs only by age.
    cids = [home.add_bytes(os.urandom(200 * KIB), pin=False) for _ in range(15)]
    reopened = bounded(tmp_path / "repo", 2 * MIB)
    assert reopened.repo.tiers().disk_bytes == blocks_size(reopened.repo)
    reopened.add_bytes(os.urandom(100 * KIB), pin=False)  # past the new, smaller bound
    assert blocks_size(reopened.repo) <= 2 * MIB * 0.9
    assert stored(reopened.repo, cids[-1]) and not stored(reopened.repo, cids[0])


def test_the_bound_comes_from_the_environment() -> None:
    env = {"HF_HOME": "/nonexistent", "IPFS_MCP_REPO_MAX": "50G",
           "IPFS_MCP_REPO_WATERMARK": "80%", "IPFS_MCP_MEMORY_TIER": "16M"}
    settings = BackendSettings.from_env(env)
    assert (settings.repo_max, settings.repo_watermark, settings.memory_tier_bytes) == (
        50 << 30, 0.8, 16 << 20)
    assert BackendSettings.from_env({"HF_HOME": "/x"}).repo_max is None
    assert BackendSettings.from_env({"HF_HOME": "/x",
                                     "IPFS_MCP_MEMORY_TIER": "0"}).memory_tier_bytes == 0
    for bad in ({"IPFS_MCP_REPO_MAX": "lots"}, {"IPFS_MCP_REPO_WATERMARK": "150%"},
                {"IPFS_MCP_REPO_WATERMARK": "0"}):
        with pytest.raises(ValueError):
            BackendSettings.from_env({"HF_HOME": "/x", **bad})


def test_a_block_missing_from_an_unleased_evicted_dag_is_a_plain_miss(tmp_path: Path) -> None:
    home = bounded(tmp_path / "repo", 1 * MIB)
    first = home.add_bytes(os.urandom(500 * KIB), pin=False)
    home.add_bytes(os.urandom(500 * KIB), pin=False)
    home.add_bytes(os.urandom(500 * KIB), pin=False)
    with pytest.raises(BlockNotFound):
        home.cat(first)


def test_roles_set_the_tiers_and_settings_override_them(tmp_path: Path) -> None:
    from ipfs_mcp.server.config import ServerSettings

    env = {"HF_HOME": "/nonexistent"}
    leecher = ServerSettings.load(env, role="leecher").backend
    worker = ServerSettings.load(env).backend
    assert leecher.repo_max == 4 << 30 and leecher.memory_tier_bytes == 16 << 20
    assert worker.repo_max is None and worker.memory_tier_bytes == 64 << 20
    assert ServerSettings.load(env, role="master").backend.memory_tier_bytes == 256 << 20
    mine = ServerSettings.load({**env, "IPFS_MCP_REPO_MAX": "1G",
                                "IPFS_MCP_MEMORY_TIER": "0"}, role="leecher").backend
    assert (mine.repo_max, mine.memory_tier_bytes) == (1 << 30, 0)
    flags = ServerSettings.load(env, role="leecher", repo_max=2 << 30, repo_watermark=0.5,
                                memory_tier=1 << 20).backend
    assert (flags.repo_max, flags.repo_watermark, flags.memory_tier_bytes) == (
        2 << 30, 0.5, 1 << 20)
    repo = Repo.from_settings(replace(flags, hf_home=tmp_path))
    assert repo.path == tmp_path / "ipfs" and repo.bound == RepoBound(2 << 30, 0.5)
    assert repo.blocks.memory is not None and repo.blocks.memory.max_bytes == 1 << 20


@pytest.mark.anyio
async def test_peer_stats_show_the_tier_sizes_hit_rates_and_evictions(tmp_path: Path) -> None:
    from ipfs_mcp.tools.network import peer_stats

    home = bounded(tmp_path / "repo", 1 * MIB, memory=256 * KIB)
    cids = [home.add_bytes(os.urandom(300 * KIB), pin=False) for _ in range(4)]
    for _ in range(3):
        home.cat(cids[-1])
    stats = await peer_stats(None, home, why="none in this test")
    tiers = stats.tiers
    assert tiers is not None
    assert tiers.disk_max == 1 * MIB and tiers.watermark == 0.9
    assert tiers.disk_bytes == blocks_size(home.repo)
    assert tiers.evicted_blocks > 0 and tiers.evicted_bytes > 0
    assert tiers.memory_max == 256 * KIB and tiers.memory_hits and tiers.memory_misses
    assert tiers.memory_hit_rate == round(tiers.memory_hits / (
        tiers.memory_hits + tiers.memory_misses), 4)
    assert stats.network_status == "not running: none in this test"


def test_the_serve_flags_set_the_bound_and_the_memory_tier(tmp_path: Path) -> None:
    import argparse

    from ipfs_mcp.server.serve import add_arguments, settings_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--repo-max", "2G", "--repo-watermark", "75%",
                              "--memory-tier", "8M", "--role", "leecher"])
    backend = settings_from_args(args).backend
    assert (backend.repo_max, backend.repo_watermark, backend.memory_tier_bytes) == (
        2 << 30, 0.75, 8 << 20)
    with pytest.raises(SystemExit):
        parser.parse_args(["--repo-watermark", "2"])


def test_adding_a_folder_larger_than_the_bound_is_refused_before_any_block(
        tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    for i in range(3):
        (folder / f"part{i}.bin").write_bytes(os.urandom(400 * KIB))
    home = bounded(tmp_path / "repo", 1 * MIB)
    with pytest.raises(RepoFull) as refused:
        home.add_path(folder)
    assert refused.value.needed == 1200 * KIB
    assert blocks_size(home.repo) == 0
    (folder / "part2.bin").unlink()
    home.add_path(folder)  # 800 KiB fits
    assert home.repo.verify().ok


class PausingStream(io.BytesIO):
    """A CAR export's output that stops at its second write (the first block) until the test
    says go: the export is mid-DAG, its lease held, while eviction runs."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.paused = threading.Event()
        self.go = threading.Event()

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.writes += 1
        if self.writes == 2:
            self.paused.set()
            if not self.go.wait(20):
                raise TimeoutError("the test never let the export go on")
        return super().write(data)


def test_eviction_of_everything_evictable_mid_export_leaves_the_exported_dag(
        tmp_path: Path) -> None:
    home = bounded(tmp_path / "repo", 8 * MIB)
    root = home.add_bytes(os.urandom(1 * MIB), pin=False)
    others = [home.add_bytes(os.urandom(300 * KIB), pin=False) for _ in range(3)]
    dag = _dag(home.repo, root)
    others_blocks = sum(len(_dag(home.repo, c)) for c in others)
    out = PausingStream()
    failures: list[BaseException] = []

    def export() -> None:
        try:
            home.dag_export(root, out)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            failures.append(exc)
            out.paused.set()

    thread = threading.Thread(target=export)
    thread.start()
    try:
        assert out.paused.wait(20)
        assert home.repo.evictor is not None
        report = home.repo.evictor.evict_to(0)  # all that may go, mid-export
    finally:
        out.go.set()
        thread.join(30)
    assert not thread.is_alive() and not failures, failures
    assert report.removed == others_blocks and not any(stored(home.repo, c) for c in others)
    roots, blocks = car.read_car(io.BytesIO(out.getvalue()))
    assert roots == [parse_cid(root)] and [c for c, _ in blocks] == dag
    # The lease was all that kept it: released, the same sweep takes the DAG.
    assert home.repo.evictor.evict_to(0).removed == len(dag)
    assert home.repo.verify().ok


def test_the_router_opens_the_embedded_repo_with_its_bound(tmp_path: Path) -> None:
    from ipfs_mcp.backends.router import Router

    settings = BackendSettings.from_env({"HF_HOME": str(tmp_path), "IPFS_BACKEND": "hf_cache",
                                         "IPFS_MCP_REPO_MAX": "1M",
                                         "IPFS_MCP_MEMORY_TIER": "64K"})
    router = Router.from_settings(settings)
    repo = router.repo
    assert repo is not None and repo.bound == RepoBound(1 * MIB)
    router.add_bytes(os.urandom(600 * KIB), pin=True)
    with pytest.raises(RepoFull):
        router.add_bytes(os.urandom(600 * KIB), pin=True)
    tiers = repo.tiers()
    assert tiers.refused == 1 and tiers.memory is not None and tiers.memory.max_bytes == 64 * KIB


def test_heat_ages_a_block_once_hot_and_then_left_untouched() -> None:
    """GDSF's clock: each eviction raises it, so a block read often long ago ends below
    blocks touched once since."""
    heat = HeatTable()
    size = 256 * KIB
    old = b"old"
    heat.stored(old, size)
    for _ in range(3):
        heat.read(old, size)  # frequency 4
    chosen = []
    for n in range(10):
        heat.stored(b"new%d" % n, size)
        priority, coldest, _ = heat.coldest(lambda multihash, stamp: False)[0]
        heat.evicted(priority)
        heat.forget(coldest)
        chosen.append(coldest)
        if coldest == old:
            break
    assert chosen[0] != old  # hot at first: a block touched once goes before it
    assert chosen[-1] == old and len(chosen) <= 6  # aged out a few evictions later
