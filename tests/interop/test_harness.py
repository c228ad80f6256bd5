"""The real-node harness itself: embedded Kubo and Helia start offline on loopback, move
blocks over bitswap in both directions, time out cleanly, and leave no process behind."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .helia import HeliaNode
from .kubo import InteropError, InteropTimeout, KuboNode
from .trees import same_tree

pytestmark = pytest.mark.interop

# A CID nobody has: the sha2-256 of these bytes, as a raw block.
MISSING = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


def _tree(root: Path, rng: random.Random) -> Path:
    (root / "sub dir").mkdir(parents=True)
    (root / "a.bin").write_bytes(rng.randbytes(700_000))
    (root / "sub dir" / "ünï.txt").write_bytes(b"hello\n")
    (root / "empty").write_bytes(b"")
    return root


def test_kubo_node_offline_on_loopback(kubo_node: KuboNode, tmp_path: Path) -> None:
    assert kubo_node.peer_id.startswith("Qm")
    assert kubo_node.addrs and all(a.startswith("/ip4/127.0.0.1/tcp/") for a in kubo_node.addrs)
    assert kubo_node.dial_addr.endswith(f"/p2p/{kubo_node.peer_id}")
    assert kubo_node.peers() == []  # no bootstrap, no mDNS
    cid = kubo_node.add_bytes(b"hello world\n")
    assert cid == "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
    assert cid in kubo_node.pins()
    assert kubo_node.fetch(cid, timeout=10) == b"hello world\n"
    with pytest.raises(InteropTimeout):
        kubo_node.fetch(MISSING, timeout=0.5)
    assert kubo_node.alive  # a timeout leaves the node usable
    assert kubo_node.fetch(cid, timeout=10) == b"hello world\n"


def test_helia_node_offline_on_loopback(helia_node: HeliaNode) -> None:
    assert helia_node.peer_id.startswith("12D3KooW")
    assert all(a.startswith("/ip4/127.0.0.1/tcp/") for a in helia_node.addrs)
    assert helia_node.peers() == []
    cid = helia_node.add_bytes(b"hello world\n", cid_version=1)
    assert cid == "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
    assert helia_node.has(cid)
    assert helia_node.fetch(cid, timeout=10) == b"hello world\n"
    with pytest.raises(InteropTimeout):
        helia_node.block_get(MISSING, timeout=0.5)
    assert helia_node.alive


def test_bitswap_both_ways(kubo_node: KuboNode, helia_node: HeliaNode, tmp_path: Path) -> None:
    rng = random.Random(5)
    # Helia -> Kubo: a multi-block CIDv1 file, a folder, and a bare raw block
    big = tmp_path / "big.bin"
    big.write_bytes(rng.randbytes(1_500_000))
    helia_file = helia_node.add(big, cid_version=1)
    helia_dir = helia_node.add(_tree(tmp_path / "from-helia", rng), cid_version=1)
    raw = helia_node.block_put(b"a raw block")
    kubo_node.connect(helia_node.dial_addr)
    helia_node.wait_for_peer(kubo_node.peer_id)
    assert kubo_node.fetch(helia_file, timeout=20) == big.read_bytes()
    same_tree(tmp_path / "from-helia", kubo_node.download(helia_dir, tmp_path / "k-out",
                                                           timeout=20))
    assert kubo_node.fetch(raw, timeout=20) == b"a raw block"
    # Kubo -> Helia: CIDv0 with dag-pb leaves
    kubo_dir = kubo_node.add(_tree(tmp_path / "from-kubo", rng))
    kubo_file = kubo_node.add_bytes(rng.randbytes(600_000))
    helia_node.download(kubo_dir, tmp_path / "h-out", timeout=20)
    same_tree(tmp_path / "from-kubo", tmp_path / "h-out")
    assert len(helia_node.fetch(kubo_file, timeout=20)) == 600_000
    pinned = helia_node.pin(kubo_dir, timeout=20)
    assert kubo_dir in pinned


def test_helia_dials_kubo(kubo_node: KuboNode, helia_node: HeliaNode) -> None:
    assert helia_node.dial(kubo_node.dial_addr) == kubo_node.peer_id
    kubo_node.wait_for_peer(helia_node.peer_id)
    cid = kubo_node.add_bytes(b"kubo to helia\n")
    assert helia_node.fetch(cid, timeout=20) == b"kubo to helia\n"


def test_processes_end_on_close(kubo_factory: Callable[..., KuboNode],
                                helia_factory: Callable[..., HeliaNode]) -> None:
    kubo, helia = kubo_factory(), helia_factory()
    procs = [kubo._proc.proc, helia._proc.proc]
    kubo.close()
    helia.close()
    assert all(p.poll() is not None for p in procs)
    kubo.close()  # idempotent
    with pytest.raises(InteropError):
        kubo.peers()


def test_kubo_killed_while_a_download_hangs(kubo_factory: Callable[..., KuboNode]) -> None:
    kubo = kubo_factory()
    with pytest.raises(InteropTimeout):
        kubo.fetch(MISSING, timeout=0.3)
    proc = kubo._proc.proc
    kubo.close()  # the hung download must not keep the process alive
    assert proc.poll() is not None


def test_helia_dht_finds_kubo_as_provider(kubo_node: KuboNode,
                                          helia_factory: Callable[..., HeliaNode]) -> None:
    """Kubo provides what it adds to the DHT; a Helia DHT server it is connected to
    learns and returns the record."""
    helia = helia_factory(dht=True)
    kubo_node.connect(helia.dial_addr)
    helia.wait_for_peer(kubo_node.peer_id)
    cid = kubo_node.add_bytes(b"provided by kubo\n")
    deadline = time.monotonic() + 20  # Kubo provides from a queue, shortly after the add
    found: list[str] = []
    while kubo_node.peer_id not in found:
        assert time.monotonic() < deadline, f"Kubo never showed up as a provider: {found}"
        found = [p["peer_id"] for p in helia.find_providers(cid, timeout=5)]
        if kubo_node.peer_id not in found:
            time.sleep(0.1)
