"""The Router object: selection once and thread-safe, probes outside any shared lock, read
fallback that names who answered, writes that never switch, backends closed on shutdown.
Every backend here is a real embedded repo; the registered factories only count or wait."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from ipfs_mcp.backends.errors import BackendUnavailable, BlockNotFound
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.backends.router import BackendRegistry, Router, RouterDeps
from ipfs_mcp.backends.settings import BackendSettings


class ClosingBackend(HFCacheBackend):
    """A real embedded backend that records being closed."""

    closed = 0

    def close(self) -> None:
        ClosingBackend.closed += 1


def registry(tmp_path: Path, **factories) -> BackendRegistry:
    settings = BackendSettings.from_env({"HF_HOME": str(tmp_path / "home"),
                                         "ENABLE_IPFS_KIT": "0", "KUBO_CMD": "absent-ipfs"})
    return BackendRegistry(RouterDeps(settings=settings), factories)


def test_concurrent_selection_builds_the_backend_once(tmp_path: Path) -> None:
    built: list[int] = []
    gate = threading.Event()

    def factory(deps: RouterDeps) -> HFCacheBackend:
        gate.wait(10)  # everyone arrives while the first build is still probing
        built.append(1)
        return HFCacheBackend(Repo(tmp_path / "one"))

    router = Router(registry(tmp_path, mine=factory), "mine")
    seen: list[object] = []
    threads = [threading.Thread(target=lambda: seen.append(router.primary)) for _ in range(8)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(10)
    assert len(built) == 1 and len(seen) == 8 and len({id(b) for b in seen}) == 1


def test_a_slow_probe_does_not_hold_up_other_backends(tmp_path: Path) -> None:
    release = threading.Event()
    entered = threading.Event()

    def slow(deps: RouterDeps) -> HFCacheBackend:
        entered.set()
        release.wait(30)
        return HFCacheBackend(Repo(tmp_path / "slow"))

    reg = registry(tmp_path, slow=slow)
    worker = threading.Thread(target=lambda: reg.build("slow"))
    worker.start()
    try:
        assert entered.wait(10)
        # While "slow" is still probing, another backend builds at once.
        assert reg.build("hf_cache").name == "hf_cache"
        assert worker.is_alive()
    finally:
        release.set()
        worker.join(10)


def test_reads_fall_back_and_say_who_answered(tmp_path: Path) -> None:
    other = HFCacheBackend(Repo(tmp_path / "other"))
    cid = other.add_bytes(b"only over there")
    router = Router(registry(tmp_path, other=lambda deps: other))
    assert router.cat(cid) == b"only over there"
    report = router.last_read()
    assert report is not None and report.backend == "other"
    assert "hf_cache" in report.failed and "not found" in report.failed["hf_cache"]


def test_writes_never_switch_and_fallback_can_be_turned_off(tmp_path: Path) -> None:
    other = HFCacheBackend(Repo(tmp_path / "other"))
    cid = other.add_bytes(b"elsewhere")
    router = Router(registry(tmp_path, other=lambda deps: other))
    written = router.add_bytes(b"here")
    assert router.primary.name == "hf_cache" and router.primary.cat(written) == b"here"
    with pytest.raises(BlockNotFound):
        other.cat(written)  # the write went to the primary only
    strict = BackendSettings.from_env({"HF_HOME": str(tmp_path / "home"),
                                       "IPFS_READ_FALLBACK": "0", "ENABLE_IPFS_KIT": "0"})
    no_fallback = Router(BackendRegistry(RouterDeps(settings=strict),
                                         {"other": lambda deps: other}))
    with pytest.raises(BlockNotFound):
        no_fallback.cat(cid)


def test_close_closes_every_backend_built(tmp_path: Path) -> None:
    ClosingBackend.closed = 0
    router = Router(registry(tmp_path, a=lambda d: ClosingBackend(Repo(tmp_path / "a")),
                             b=lambda d: ClosingBackend(Repo(tmp_path / "b"))), "a")
    router.primary  # noqa: B018 - builds "a"
    router.registry.build("b")
    router.close()
    assert ClosingBackend.closed == 2
    assert router.registry.built() == []


def test_an_explicit_choice_that_fails_is_an_error_not_a_switch(tmp_path: Path) -> None:
    def broken(deps: RouterDeps) -> HFCacheBackend:
        raise BackendUnavailable("its daemon is down")

    router = Router(registry(tmp_path, broken=broken), "broken")
    with pytest.raises(BackendUnavailable, match="chosen but is unavailable: its daemon"):
        router.add_bytes(b"must not land elsewhere")
