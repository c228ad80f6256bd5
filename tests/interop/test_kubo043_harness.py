"""The Go-built peers themselves: the build cache, Kubo 0.43's test configuration, the
3-peer cluster, and that every process is gone after close."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from . import gobuild
from .cluster import Cluster
from .kubo_daemon import KuboDaemon


def test_a_second_build_reuses_the_cached_binary(kubo043_binary: Path) -> None:
    before = kubo043_binary.stat()
    again = gobuild.kubo_binary()
    assert again == kubo043_binary
    assert again.stat().st_mtime_ns == before.st_mtime_ns  # not rebuilt
    assert again.parent.name.startswith(f"kubo-{gobuild.KUBO_VERSION}-")
    leftovers = [p.name for p in gobuild.GOBIN_DIR.iterdir() if p.name.startswith(".kubo")]
    assert leftovers == []  # builds happen in temporary folders that are renamed or removed


def test_interop_skip_fails_when_interop_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gobuild, "_REQUIRE_INTEROP", False)
    with pytest.raises(pytest.skip.Exception, match="no go here"):
        gobuild.interop_skip("no go here")
    monkeypatch.setattr(gobuild, "_REQUIRE_INTEROP", True)
    with pytest.raises(pytest.fail.Exception, match="no go here.*IPFS_MCP_REQUIRE_INTEROP"):
        gobuild.interop_skip("no go here")


def test_missing_go_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH, so no go
    monkeypatch.setattr(gobuild, "GOBIN_DIR", tmp_path / "empty-cache")
    with pytest.raises(gobuild.GoMissing, match="Go is not installed"):
        gobuild.go_install("example.com/none/cmd/x", "v0.0.1", "x")


def test_kubo_runs_the_loopback_test_configuration(kubo043: KuboDaemon) -> None:
    info = kubo043.rpc("id")
    assert info["AgentVersion"].startswith("kubo/0.43.1/")
    assert info["Addresses"] and all(a.startswith("/ip4/127.0.0.1/tcp/")
                                     for a in info["Addresses"])
    assert "/ipfs/lan/kad/1.0.0" in info["Protocols"]
    config = kubo043.config()
    assert config["Bootstrap"] == []
    assert config["Discovery"]["MDNS"]["Enabled"] is False
    assert config["Routing"]["LoopbackAddressesOnLanDHT"] is True
    assert config["AutoConf"]["Enabled"] is False
    assert config["Addresses"]["API"] == "/ip4/127.0.0.1/tcp/0"
    assert kubo043.api_url.startswith("http://127.0.0.1:")
    assert not kubo043.api_url.endswith(":0")
    assert kubo043.gateway_url.startswith("http://127.0.0.1:")
    cid = kubo043.add_bytes(b"hello world\n")
    assert cid == "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
    assert kubo043.rpc("cat", arg=cid) == b"hello world\n"


def test_two_daemons_connect_and_close_ends_their_processes(
        kubo043_factory: Callable[..., KuboDaemon]) -> None:
    a, b = kubo043_factory(), kubo043_factory()
    assert a.api_url != b.api_url and a.peer_id != b.peer_id
    a.connect(b.dial_addr)
    b.wait_for_peer(a.peer_id)
    cid = a.add_bytes(os.urandom(3000))
    assert b.rpc("cat", arg=cid, timeout=30) == a.rpc("cat", arg=cid)
    pids = [a._proc.proc.pid, b._proc.proc.pid]
    a.close()
    b.close()
    assert not a.alive and not b.alive
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_restarted_daemon_keeps_its_identity_and_content(
        kubo043_factory: Callable[..., KuboDaemon]) -> None:
    kubo = kubo043_factory()
    cid = kubo.add_bytes(b"kept across restarts\n")
    peer_id = kubo.peer_id
    kubo.stop()
    assert not kubo.alive
    kubo.start()
    assert kubo.peer_id == peer_id
    assert kubo.rpc("cat", arg=cid) == b"kept across restarts\n"


def test_three_peer_cluster_each_with_its_own_kubo(cluster3: Cluster) -> None:
    kubo_ids = {peer.kubo.peer_id for peer in cluster3.peers}
    assert len(kubo_ids) == 3
    for peer in cluster3.peers:
        assert set(peer.peer_ids()) == {p.peer_id for p in cluster3.peers}
        info = peer.get("id")
        assert info["ipfs"]["id"] == peer.kubo.peer_id
        assert info["version"].startswith("1.1.6")
        assert peer.rest_url.startswith("http://127.0.0.1:")
    config = json.loads((cluster3.peers[0].path / "service.json").read_text())
    assert config["consensus"]["crdt"]["trusted_peers"] == ["*"]


def test_cluster_close_stops_every_process(kubo043_binary: Path, tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / "c", peers=2, start_timeout=90)
    procs = [p._proc.proc for p in cluster.peers if p._proc is not None]
    procs += [p.kubo._proc.proc for p in cluster.peers]
    assert len(procs) == 4 and all(p.poll() is None for p in procs)
    cluster.close()
    assert all(p.poll() is not None for p in procs)
