"""The ``cluster`` backend against a real 3-peer IPFS Cluster 1.1.6, each peer with its own
Kubo 0.43: replication as asked, reads that survive a stopped Kubo, clear failures."""

from __future__ import annotations

import os
import random
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.core.importer import Importer, ImportOptions
from ipfs_mcp.backends.errors import DaemonUnreachable, InvalidInput, PinNotFound
from ipfs_mcp.backends.remote.cluster import ClusterBackend, ClusterPinStatus, make_cluster_backend
from ipfs_mcp.backends.settings import BackendSettings

from .cluster import Cluster, ClusterPeer
from .startup import record_start


def ours(data: bytes, options: ImportOptions | None = None) -> str:
    return cid_str(Importer(None, options).add_bytes(data).cid_obj)


def backend_for(peer: ClusterPeer) -> ClusterBackend:
    return ClusterBackend.connect(peer.rest_url, kubo_api=peer.proxy_url, timeout=60)


@pytest.fixture
def cluster(cluster3: Cluster) -> Iterator[ClusterBackend]:
    backend = backend_for(cluster3.peers[0])
    try:
        yield backend
    finally:
        backend.close()


def _kubo_pins(peer: ClusterPeer, cid: str) -> bool:
    answer = peer.kubo.rpc("pin/ls", type="recursive")
    keys = answer.get("Keys") or {} if isinstance(answer, dict) else {}
    return cid in keys


def test_stored_content_is_pinned_on_the_number_of_peers_asked(cluster: ClusterBackend,
                                                                cluster3: Cluster) -> None:
    data = os.urandom(700_000)
    cid = cluster.add_bytes(data, name="two copies", replication_min=2, replication_max=2)
    assert cid == ours(data)  # the cluster's CID is our importer's
    status = cluster.pin_status(cid)[0]
    assert status.name == "two copies" and len(status.pinned_on()) == 2
    by_id = {p.peer_id: p for p in cluster3.peers}
    holders = [by_id[pid] for pid in status.pinned_on()]
    others = [p for p in cluster3.peers if p not in holders]
    assert all(_kubo_pins(p, cid) for p in holders)  # really pinned in those Kubos
    assert not any(_kubo_pins(p, cid) for p in others)
    assert {cid_str(p.cid): p.name for p in cluster.pins()}[cid] == "two copies"
    assert cluster.cat(cid, offset=1000, length=5000) == data[1000:6000]

    everywhere = cluster.add_bytes(os.urandom(5000), replication_min=3, replication_max=3)
    assert len(cluster.pin_status(everywhere)[0].pinned_on()) == 3


@pytest.mark.parametrize("options", [ImportOptions(cid_version=1),
                                     ImportOptions(chunk_size=4096, raw_leaves=True),
                                     ImportOptions(chunk_size=2048, trickle=True),
                                     ImportOptions(cid_version=1, chunker="buzhash")],
                         ids=["v1", "chunk4096-raw", "trickle", "buzhash"])
def test_import_options_reach_the_cluster_and_give_our_cids(cluster: ClusterBackend,
                                                             options: ImportOptions) -> None:
    data = random.Random(f"cluster-{options}").randbytes(300_000)
    assert cluster.add_stream(_Stream(data), options=options, replication_min=1,
                              replication_max=1) == ours(data, options)


def test_a_tree_through_the_cluster(cluster: ClusterBackend, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_bytes(b"aaa\n")
    (tree / "sub" / "b.bin").write_bytes(os.urandom(300_000))
    result = cluster.add_path(tree, replication_min=2, replication_max=2)
    assert result.root == Importer(None).add_path(tree).root
    assert {e.name for e in cluster.ls(cid_str(result.root))} == {"a.txt", "sub"}
    out = tmp_path / "out"
    cluster.get_to_path(cid_str(result.root), output_path=out)
    assert (out / "sub" / "b.bin").read_bytes() == (tree / "sub" / "b.bin").read_bytes()


def test_pin_and_unpin_with_a_name_and_replication(cluster: ClusterBackend) -> None:
    data = os.urandom(2000)
    cid = cluster.kubo.add_bytes(data, pin=False)  # only in the first peer's Kubo
    pin = cluster.pin(cid, name="pinned later", replication_min=2, replication_max=3)
    assert (cid_str(pin.cid), pin.name) == (cid, "pinned later")
    assert len(cluster.pin_status(cid)[0].pinned_on()) >= 2
    assert cluster.unpin(cid) == ["recursive"]
    assert cid not in {cid_str(p.cid) for p in cluster.pins()}
    with pytest.raises(PinNotFound):
        cluster.unpin(cid)


def test_options_the_cluster_has_no_parameter_for_are_refused(cluster: ClusterBackend) -> None:
    for options in (ImportOptions(max_links=10), ImportOptions(max_hamt_fanout=16)):
        with pytest.raises(InvalidInput, match="Cluster's /add has no parameter"):
            cluster.add_bytes(b"x", options=options)


def test_with_one_kubo_stopped_content_is_readable_and_status_names_the_down_peer(
        kubo043_binary: Path, cluster_binaries: tuple[Path, Path], tmp_path: Path) -> None:
    with Cluster(tmp_path / "c") as own:
        record_start("3-peer cluster (for the stopped-Kubo test)", own.start_seconds)
        first = own.peers[0]
        backend = backend_for(first)
        data = os.urandom(900_000)
        cid = backend.add_bytes(data, replication_min=2, replication_max=2)
        holders = backend.pin_status(cid)[0].pinned_on()
        # Stop a holder's Kubo that is not the one reads go through.
        victim = next(p for p in own.peers if p.peer_id in holders and p is not first)
        victim.kubo.stop()
        assert backend.cat(cid) == data  # through the first peer's Kubo, verified
        status = _wait_for_failure(backend, cid, victim.peer_id, timeout=60)
        down = {p.peer_id: p for p in status.failing()}
        assert victim.peer_id in down
        assert victim.name in f"{down[victim.peer_id].peer_name} {down[victim.peer_id].error}"
        assert victim.name in backend.health()  # health says which peer is down
        backend.close()


def _wait_for_failure(backend: ClusterBackend, cid: str, peer_id: str, *,
                      timeout: float) -> ClusterPinStatus:
    """The pin's status once ``peer_id`` reports an error for it (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        status = backend.pin_status(cid)[0]
        if peer_id in [p.peer_id for p in status.failing()]:
            return status
        if time.monotonic() >= deadline:
            raise AssertionError(f"no error from {peer_id} within {timeout} s: {status}")
        time.sleep(0.2)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_cluster_names_the_url_tried(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    settings = BackendSettings(hf_home=tmp_path, hf_hub_cache=tmp_path / "hub",
                               ipfs_cluster_api=url, ipfs_api_timeout=3)
    with pytest.raises(DaemonUnreachable) as info:
        make_cluster_backend(settings)
    assert url in str(info.value) and "IPFS_CLUSTER_API" in str(info.value)


class _Stream:
    """A file-like stream of ``data`` handed out in odd-sized pieces."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._pos = 0

    def read(self, n: int = -1) -> bytes:
        n = len(self._data) - self._pos if n < 0 else min(n, 77_777)
        piece = bytes(self._data[self._pos:self._pos + n])
        self._pos += len(piece)
        return piece


@pytest.mark.anyio
async def test_mcp_store_and_pin_take_a_replication_factor_on_the_cluster(
        cluster3: Cluster, tmp_path: Path) -> None:
    import anyio
    from mcp import Client

    from ipfs_mcp.server.app import build_server
    from ipfs_mcp.server.config import ServerSettings
    from ipfs_mcp.tools import models

    peer = cluster3.peers[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPFS_")}
    env.update(HF_HOME=str(tmp_path / "home"), IPFS_BACKEND="cluster",
               IPFS_CLUSTER_API=peer.rest_url, IPFS_API=peer.proxy_url)
    (tmp_path / "work").mkdir()
    folder = tmp_path / "work" / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(os.urandom(300_000))
    settings = ServerSettings.load(env, allow_roots=[str(tmp_path / "work")])
    with anyio.fail_after(120):
        async with Client(build_server(settings), mode="auto") as client:
            stored = await client.call_tool("store_model", {
                "source": str(folder), "announce": False,
                "replication_min": 2, "replication_max": 2})
            assert not stored.is_error, stored.content
            root = models.StoreResult.model_validate(stored.structured_content).root_cid
            assert len(ClusterBackend.connect(peer.rest_url, kubo_api=peer.proxy_url)
                       .pin_status(root)[0].pinned_on()) == 2
            added = await client.call_tool("add_content", {"text": "everywhere",
                                                           "pin": False})
            cid = added.structured_content["cid"]
            pinned = await client.call_tool("pin", {"cid": cid, "replication_min": 3,
                                                    "replication_max": 3})
            assert not pinned.is_error, pinned.content
            assert all(_kubo_pins(p, cid) for p in cluster3.peers)
