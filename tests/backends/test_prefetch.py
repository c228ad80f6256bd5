"""Content that is not here is written out as its blocks arrive, not after the whole DAG:
the output's writes overlap the transfer (``backends/prefetch.py``).

Real nodes on 127.0.0.1. One provider holds all but a file's last leaf; a second holds only
that leaf, and its blockstore is gated by the test: every read of it waits until the test
releases it. Writing from arriving blocks shows as bytes written to the output while that
leaf is held; reading only after the whole DAG would write nothing until the gate opens,
and the test's deadline would end it.
"""

from __future__ import annotations

import os
import threading
from dataclasses import replace
from pathlib import Path

import pytest
import trio
from multiformats import CID

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.core.dag import links_of
from ipfs_mcp.backends.errors import BlockNotFound
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.repo.blockstore import Blockstore
from ipfs_mcp.p2p import BitswapConfig
from tests.p2p.nodes import FAST, add_bytes, node_at, repo_at

pytestmark = pytest.mark.anyio
DEADLINE = 20  # under the gate's own 30 s hold, so a writer that waits for it fails here
PATIENT = replace(FAST, bitswap=BitswapConfig(want_timeout=30.0, send_timeout=5.0,
                                               bad_peer_timeout=30.0))


class HoldingStore(Blockstore):
    """A real blockstore that holds every read of one block (the file's last leaf) until
    released: the transfer cannot end before the test says so."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, fsync=False)
        self.held: CID | None = None
        self.release = threading.Event()

    def get(self, cid: CID) -> bytes:
        if cid == self.held:
            self.release.wait(timeout=30)
        return super().get(cid)


async def test_the_output_is_written_while_the_dag_still_arrives(tmp_path: Path) -> None:
    data = os.urandom(24 * 256 * 1024)  # 24 leaves under a root
    a_repo = repo_at(tmp_path / "a")
    root = add_bytes(a_repo, data)
    last = links_of(root, a_repo.blocks.get(root))[-1]
    # Provider A has all but the last leaf; provider C has only that one and holds its
    # reads until released, so none of A's blocks waits behind it.
    holding = HoldingStore(tmp_path / "c-blocks")
    holding.put(last, a_repo.blocks.get(last))
    holding.held = last
    a_repo.blocks.path_of(bytes(last.digest)).unlink()
    b_repo = repo_at(tmp_path / "b")
    out = tmp_path / "out" / "data.bin"
    out.parent.mkdir()
    written_while_held = trio.Event()
    written = []

    def progress(nbytes: int) -> None:  # called in the export's worker thread
        written.append(nbytes)
        if not holding.release.is_set():
            trio.from_thread.run_sync(written_while_held.set)

    with trio.fail_after(DEADLINE):
        async with node_at(tmp_path / "a", blockstore=a_repo.blocks) as a, \
                node_at(tmp_path / "c", blockstore=holding) as c, \
                node_at(tmp_path / "b", PATIENT, blockstore=b_repo.blocks) as b:
            await b.connect_peer(a.addrs[0])
            await b.connect_peer(c.addrs[0])
            backend = HFCacheBackend(b_repo, fetcher=b.fetcher())
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.to_thread.run_sync, lambda: backend.get_to_path(
                    cid_str(root), output_path=out, progress=progress))
                # The last leaf is held: whatever reaches the output now was written
                # from blocks that arrived before the DAG was whole.
                await written_while_held.wait()
                held_bytes = sum(written)
                holding.release.set()
    assert 0 < held_bytes < len(data)
    assert out.read_bytes() == data
    assert b_repo.verify().ok


async def test_arriving_blocks_are_handed_to_the_output_not_read_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(24 * 256 * 1024)  # 24 leaves, 6 MiB: within the hand-off's bound
    a_repo = repo_at(tmp_path / "a")
    root = add_bytes(a_repo, data)
    leaves = {bytes(c.digest) for c in links_of(root, a_repo.blocks.get(root))}
    b_repo = repo_at(tmp_path / "b")
    out = tmp_path / "out" / "data.bin"
    out.parent.mkdir()
    # Every block the reading side reads back from its disk (the real read, recorded).
    read_back: list[bytes] = []
    real_get = Blockstore.get

    def recording_get(store: Blockstore, cid: CID) -> bytes:
        block = real_get(store, cid)
        if store is b_repo.blocks:
            read_back.append(bytes(cid.digest))
        return block

    monkeypatch.setattr(Blockstore, "get", recording_get)
    with trio.fail_after(DEADLINE):
        async with node_at(tmp_path / "a", blockstore=a_repo.blocks) as a, \
                node_at(tmp_path / "b", blockstore=b_repo.blocks) as b:
            await b.connect_peer(a.addrs[0])
            backend = HFCacheBackend(b_repo, fetcher=b.fetcher())
            await trio.to_thread.run_sync(lambda: backend.get_to_path(
                cid_str(root), output_path=out))
    assert out.read_bytes() == data
    assert len(leaves) == 24
    assert leaves.isdisjoint(read_back)  # each leaf went from its put to the output
    assert b_repo.verify().ok  # and every one is stored


async def test_a_failed_transfer_under_an_arriving_read_is_not_found_and_leaves_nothing(
        tmp_path: Path) -> None:
    data = os.urandom(8 * 256 * 1024)
    a_repo = repo_at(tmp_path / "a")
    root = add_bytes(a_repo, data)
    # The provider loses a leaf: the DAG fetch fails on it, and so does the read.
    lost = next(p for _, p in a_repo.blocks.iter_multihashes() if p.stat().st_size > 256_000)
    lost.unlink()
    b_repo = repo_at(tmp_path / "b")
    out = tmp_path / "out" / "data.bin"
    out.parent.mkdir()
    with trio.fail_after(DEADLINE):
        async with node_at(tmp_path / "a", blockstore=a_repo.blocks) as a, \
                node_at(tmp_path / "b", blockstore=b_repo.blocks) as b:
            await b.connect_peer(a.addrs[0])
            backend = HFCacheBackend(b_repo, fetcher=b.fetcher())
            with pytest.raises(BlockNotFound):
                await trio.to_thread.run_sync(lambda: backend.get_to_path(
                    cid_str(root), output_path=out))
    assert list(out.parent.iterdir()) == []  # no output, no temp file
    assert not [t for t in threading.enumerate() if t.name.startswith("prefetch-")]
