"""The seed router API and honest backend selection."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ipfs_mcp.backends import router
from ipfs_mcp.backends.car import read_car
from ipfs_mcp.backends.cids import cid_str
from ipfs_mcp.backends.errors import AllBackendsFailed, BackendUnavailable, InvalidInput
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.repo import Repo


def test_default_is_hf_cache_and_says_why_others_were_skipped() -> None:
    sel = router.selection()
    assert sel.backend == "hf_cache"
    assert "not installed" in sel.skipped["ipfs_kit"]
    assert "hf_cache" in sel.skipped["kubo"]


def test_seed_api_round_trip(tmp_path: Path) -> None:
    cid = router.add_bytes(b"hello world\n")
    assert cid == "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
    assert router.cat(cid) == b"hello world\n"
    block = router.block_put(b"raw block")
    assert router.block_get(block) == b"raw block"
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_bytes(b"aaa\n")
    (tmp_path / "d" / "b.txt").write_bytes(b"bbb\n")
    root = router.add_path(tmp_path / "d")
    assert root == "Qmbf84Ab1zsAStesz6Q7CTHJWKhZyMd9KtYPqrxEvFuBsF"
    assert [e.name for e in router.ls(root)] == ["a.txt", "b.txt"]
    router.get_to_path(root, output_path=tmp_path / "out")
    assert (tmp_path / "out" / "b.txt").read_bytes() == b"bbb\n"
    roots, blocks = read_car(io.BytesIO(router.dag_export(root)))
    assert [cid_str(r) for r in roots] == [root] and len(list(blocks)) == 3
    router.unpin(root)
    router.pin(root)


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
