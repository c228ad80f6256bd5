"""The seed router API and honest backend selection."""

from __future__ import annotations

from pathlib import Path

import pytest

from ipfs_mcp.backends import router
from ipfs_mcp.backends.errors import AllBackendsFailed, BackendUnavailable, InvalidInput
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.repo.repository import Repo


def test_default_is_hf_cache_and_says_why_others_were_skipped() -> None:
    sel = router.selection()
    assert sel.backend == "hf_cache"
    assert "not installed" in sel.skipped["ipfs_kit"]
    # The skip says what ipfs-kit-py 0.3.0 really is, and what to use instead.
    assert "mock" in sel.skipped["ipfs_kit"] and "IPFS_BACKEND=cluster" in sel.skipped["ipfs_kit"]
    assert "hf_cache" in sel.skipped["kubo"]


def test_seed_api_round_trip(tmp_path: Path, seed_api_round_trip) -> None:
    seed_api_round_trip(tmp_path)


def test_repo_lives_in_hf_home(isolated_hf_home: Path) -> None:
    router.add_bytes(b"x")
    assert (isolated_hf_home / "ipfs" / "blocks").is_dir()


def test_explicit_backend_that_does_not_work_is_an_error_not_a_switch(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IPFS_BACKEND", "kubo")
    monkeypatch.setenv("KUBO_CMD", "definitely-not-an-ipfs-binary")
    router.reset()
    with pytest.raises(BackendUnavailable, match="not found on PATH"):
        router.add_bytes(b"must not land elsewhere")


def test_unknown_backend_name_lists_known_ones() -> None:
    with pytest.raises(InvalidInput, match="hf_cache"):
        router.get_backend(backend="nope")


def test_no_working_backend_names_every_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENABLE_HF_CACHE", "0")
    monkeypatch.setenv("KUBO_CMD", "definitely-not-an-ipfs-binary")
    router.reset()
    with pytest.raises(AllBackendsFailed) as info:
        router.get_backend()
    assert set(info.value.errors) == {"ipfs_kit", "hf_cache", "kubo"}


def test_register_and_default(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        router.register_ipfs_backend("", lambda deps: HFCacheBackend(Repo(tmp_path)))
    mine = HFCacheBackend(Repo(tmp_path / "mine"))
    router.register_ipfs_backend("mine", lambda deps: mine)
    assert router.get_backend(backend="mine") is mine
    cid = router.add_bytes(b"to mine", backend="mine")
    assert mine.cat(cid) == b"to mine"
    router.set_default_ipfs_backend(mine)
    assert router.get_backend() is mine
    router.set_default_ipfs_backend(None)


def test_router_cache_reuses_instances(monkeypatch: pytest.MonkeyPatch) -> None:
    assert router.get_backend() is router.get_backend()
    monkeypatch.setenv("IPFS_ROUTER_CACHE", "0")
    assert router.get_backend() is not router.get_backend()
