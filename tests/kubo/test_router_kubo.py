"""The router with Kubo in play: selection from the environment, the seed API over RPC,
read fallback in both directions (and saying who answered), no silent write fallback."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from interop.kubo_daemon import KuboDaemon

from ipfs_mcp.backends import router
from ipfs_mcp.backends.core.cids import cid_of_block, cid_str
from ipfs_mcp.backends.errors import AllBackendsFailed, BlockNotFound
from ipfs_mcp.backends.remote.kubo.backend import KuboBackend
from ipfs_mcp.backends.remote.kubo.http_transport import HTTPTransport


@pytest.fixture
def kubo_env(kubo: KuboDaemon, monkeypatch: pytest.MonkeyPatch) -> KuboDaemon:
    monkeypatch.setenv("IPFS_API", kubo.api_url)
    # Reads of blocks the daemon lacks wait this long before falling back.
    monkeypatch.setenv("IPFS_API_TIMEOUT", "1.5")
    router.reset()
    return kubo


def test_seed_api_over_kubo_rpc(kubo_env: KuboDaemon, monkeypatch: pytest.MonkeyPatch,
                                tmp_path: Path, seed_api_round_trip) -> None:
    monkeypatch.setenv("IPFS_BACKEND", "kubo")
    monkeypatch.setenv("IPFS_API_TIMEOUT", "30")
    router.reset()
    sel = router.selection()
    assert (sel.backend, sel.reason) == ("kubo", "chosen explicitly")
    chosen = router.get_backend()
    assert isinstance(chosen, KuboBackend) and isinstance(chosen.transport, HTTPTransport)
    seed_api_round_trip(tmp_path)
    assert router.cat("QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o") == b"hello world\n"
    assert router.last_read() == router.ReadReport("cat", "kubo", {})


def test_reads_fall_back_from_kubo_to_hf_cache_and_say_who_answered(
        kubo_env: KuboDaemon, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IPFS_BACKEND", "kubo")
    router.reset()
    data = b"only in the embedded repo " + random.randbytes(32)
    cid = router.add_bytes(data, backend="hf_cache")
    assert router.cat(cid) == data
    report = router.last_read()
    assert report is not None and report.backend == "hf_cache"
    assert "kubo" in report.failed and cid in report.failed["kubo"]
    assert router.get_backend().name == "kubo"  # the selection did not change


def test_reads_fall_back_from_hf_cache_to_kubo(kubo_env: KuboDaemon, tmp_path: Path) -> None:
    rpc = KuboBackend.over_http(kubo_env.api_url)
    data = random.randbytes(300_000)
    cid = rpc.add_bytes(data)
    assert router.selection().backend == "hf_cache"  # first in preference; works
    assert router.cat(cid) == data
    report = router.last_read()
    assert report is not None and report.backend == "kubo" and "hf_cache" in report.failed
    assert router.ls(cid)[0].size == len(data)
    assert router.last_read().backend == "kubo"  # type: ignore[union-attr]
    rpc.close()


def test_read_fallback_can_be_turned_off(kubo_env: KuboDaemon,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IPFS_READ_FALLBACK", "0")
    router.reset()
    rpc = KuboBackend.over_http(kubo_env.api_url)
    cid = rpc.add_bytes(b"on the daemon only " + random.randbytes(16))
    with pytest.raises(BlockNotFound):
        router.cat(cid)
    rpc.close()


def test_a_read_that_fails_everywhere_names_every_backend(kubo_env: KuboDaemon) -> None:
    missing = cid_str(cid_of_block(b"nowhere at all " + random.randbytes(16)))
    with pytest.raises(AllBackendsFailed) as info:
        router.block_get(missing)
    assert {"hf_cache", "kubo"} <= set(info.value.errors)


def test_backend_health_probes_each_backend(kubo_env: KuboDaemon) -> None:
    health = {h.name: h for h in router.backend_health()}
    assert health["kubo"].ok and health["hf_cache"].ok
    assert not health["ipfs_kit"].ok and "ipfs_kit_py" in health["ipfs_kit"].detail
