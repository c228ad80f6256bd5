"""A DAG with several providers is fetched from all of them at once.

Every provider is one of our own nodes on 127.0.0.1 with a real repo. The slow and the
stalling providers are deliberately faulty through their block source only (a blockstore
that waits on each read, or holds reads after a few), and the tests are named for it.
The tests wait on events (the fetcher's ledger, the fetch itself), never on a clock.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import trio
from libp2p.custom_types import TProtocol
from multiformats import CID

from ipfs_mcp.backends.core.cids import cid_of_block
from ipfs_mcp.backends.errors import BlockNotFound, DagTooLarge
from ipfs_mcp.backends.repo.blockstore import Blockstore
from ipfs_mcp.p2p import P2PNode
from ipfs_mcp.p2p.bitswap.message import PROTOCOLS
from ipfs_mcp.p2p.bitswap.session import Session

from .nodes import PATIENT, GatedStore, add_bytes, node_at, repo_at
from .test_faulty_peers import assert_clean_store, seed_good_record

pytestmark = pytest.mark.anyio

BLOCK = 262144
# The paced provider reads one block per this many the others deliver.
SLOWER = 8


class PacedStore(Blockstore):
    """A real blockstore that reads a block only for a tick the test hands out: a slow
    provider whose pace is set by the fetch's own events (see :func:`pace`), so it is
    slow against the others however fast or loaded the machine is.

    The engine reads blocks in a worker thread, so the wait slows this peer alone."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, fsync=False)
        self.ticks = threading.Semaphore(0)

    def get(self, cid: CID) -> bytes:
        self.ticks.acquire(timeout=120)  # bounded; the test's own bound is shorter
        return super().get(cid)


async def pace(fetcher: P2PNode, slow: PacedStore, fast: list[str], every: int) -> None:
    """Give ``slow`` one read to start with, and one more each time the ``fast`` providers
    have together delivered ``every`` blocks to ``fetcher`` (its ledger says when)."""
    given = 0
    while True:
        changed = fetcher.bitswap.changed
        delivered = sum(fetcher.bitswap.ledger(peer).blocks_received for peer in fast)
        due = 1 + delivered // every
        if due > given:
            slow.ticks.release(due - given)
            given = due
        await changed.wait()


def provide(tmp_path: Path, names: list[str], data: bytes) -> CID:
    root = None
    for name in names:
        root = add_bytes(repo_at(tmp_path / name), data)
    assert root is not None
    return root


async def connect_all(fetcher: P2PNode, providers: list[P2PNode]) -> None:
    for node in providers:
        await fetcher.connect_peer(node.addrs[0])


async def until_received(fetcher: P2PNode, peer_id: str, blocks: int) -> None:
    """Return once the fetcher's ledger shows ``blocks`` blocks from ``peer_id``."""
    while fetcher.bitswap.ledger(peer_id).blocks_received < blocks:
        await fetcher.bitswap.changed.wait()


async def test_three_equal_providers_each_deliver(tmp_path: Path) -> None:
    data = os.urandom(8 * 1024 * 1024 + 1234)  # 33 leaves and a root
    root = provide(tmp_path, ["a", "b", "c"], data)
    with trio.fail_after(60):
        async with node_at(tmp_path / "a") as a, node_at(tmp_path / "b") as b, \
                node_at(tmp_path / "c") as c, node_at(tmp_path / "f") as fetcher:
            await connect_all(fetcher, [a, b, c])
            report = await fetcher.retrieve_content(root)

            assert report.fetched == report.blocks == 34
            assert report.bytes_fetched > len(data)
            assert set(report.by_peer) == {a.peer_id, b.peer_id, c.peer_id}
            for node in (a, b, c):
                ledger = fetcher.bitswap.ledger(node.peer_id)
                assert ledger.blocks_received == report.by_peer[node.peer_id] > 0
                # ... and the provider's own ledger agrees on what it sent us.
                assert node.bitswap.ledger(fetcher.peer_id).blocks_sent >= \
                    ledger.blocks_received
            assert sum(report.by_peer.values()) == 34
    assert_clean_store(tmp_path / "f", root, data, 34)


async def test_throttled_provider_gets_fewer_wants(tmp_path: Path) -> None:
    """One of three providers reads a block only after the other two have delivered
    ``SLOWER`` between them (its own fault): its pace is an eighth of theirs by count of
    events, not by a clock. The session spreads wants by measured rate, so it is asked for
    far fewer blocks than the even third that counting peers would give it."""
    data = os.urandom(16 * 1024 * 1024)  # 64 leaves and a root
    root = provide(tmp_path, ["fast1", "fast2", "slow"], data)
    slow_store = PacedStore(tmp_path / "slow")
    with trio.fail_after(90):
        async with node_at(tmp_path / "fast1") as fast1, node_at(tmp_path / "fast2") as fast2, \
                node_at(tmp_path / "slow", blockstore=slow_store) as slow, \
                node_at(tmp_path / "f", PATIENT) as fetcher, trio.open_nursery() as nursery:
            try:
                await connect_all(fetcher, [slow, fast1, fast2])
                nursery.start_soon(pace, fetcher, slow_store, [fast1.peer_id, fast2.peer_id],
                                   SLOWER)
                report = await fetcher.retrieve_content(root)
                nursery.cancel_scope.cancel()
            finally:
                slow_store.ticks.release(1000)  # its held reads end, so that it can shut down

            assert report.fetched == report.blocks == 65
            assert sum(report.by_peer.values()) == 65
            # What each provider was asked for (want-have and want-block, re-issues too),
            # as its own ledger counted it.
            asked = {node.peer_id: node.bitswap.ledger(fetcher.peer_id).wants_received
                     for node in (fast1, fast2, slow)}
            assert asked[slow.peer_id] > 0  # it was asked
            # Spread by measured rate: the slow provider is asked for less than half of
            # the third it would get by count alone.
            assert 6 * asked[slow.peer_id] < sum(asked.values()), (asked, report.by_peer)
            slow_blocks = report.by_peer.get(slow.peer_id, 0)
            assert fetcher.bitswap.ledger(slow.peer_id).blocks_received == slow_blocks
    assert_clean_store(tmp_path / "f", root, data, 65)


async def test_stalling_provider_loses_its_wants_before_the_want_timeout(
        tmp_path: Path) -> None:
    """A provider serves two blocks and then holds every read (its own fault).

    The fetcher's wants never time out (``PATIENT``), and the held reads outlast the test's
    bound: the fetch can only finish because the stalled wants are re-issued to the others
    from the stalling peer's own measured pace (counted in ``report.reissued``), and the
    copies it still owes are cancelled."""
    data = os.urandom(16 * 1024 * 1024)
    root = provide(tmp_path, ["a", "b", "stall"], data)
    served = trio.Event()
    gated = GatedStore(tmp_path / "stall", after=2, served=served)
    with trio.fail_after(60):
        async with node_at(tmp_path / "a") as a, node_at(tmp_path / "b") as b, \
                node_at(tmp_path / "stall", blockstore=gated) as stall, \
                node_at(tmp_path / "f", PATIENT) as fetcher:
            try:
                await connect_all(fetcher, [stall, a, b])
                seed_good_record(fetcher, stall.peer_id)  # it is asked first, and often
                report = await fetcher.retrieve_content(root)

                assert report.fetched == report.blocks == 65
                assert served.is_set() and gated.count > 2  # it did stall on a want
                assert report.by_peer.get(stall.peer_id, 0) <= 2
                # Its wants were asked of the others because of its own pace, not a timeout.
                assert report.reissued.get(stall.peer_id, 0) >= 1
                assert sum(report.by_peer.values()) == 65
                # The wants it still held were withdrawn once the others' copies came.
                ledger = stall.bitswap.ledger(fetcher.peer_id)
                while ledger.cancels_received == 0:
                    await stall.bitswap.changed.wait()
            finally:
                gated.release.set()  # let its held reads end, so that it can shut down
    assert_clean_store(tmp_path / "f", root, data, 65)


async def test_provider_disconnecting_mid_fetch_loses_nothing(tmp_path: Path) -> None:
    data = os.urandom(16 * 1024 * 1024)
    root = provide(tmp_path, ["a", "b", "quitter"], data)
    quitter_scope = trio.CancelScope()
    quitter_gone = trio.Event()
    plug_pulled = trio.Event()

    async def run_quitter(*, task_status: trio.TaskStatus[P2PNode]) -> None:
        with quitter_scope:
            async with node_at(tmp_path / "quitter") as node:
                task_status.started(node)
                await trio.sleep_forever()
        quitter_gone.set()

    with trio.fail_after(60):
        async with node_at(tmp_path / "a") as a, node_at(tmp_path / "b") as b, \
                node_at(tmp_path / "f") as fetcher, trio.open_nursery() as nursery:
            quitter: P2PNode = await nursery.start(run_quitter)
            quitter_id = quitter.peer_id
            await connect_all(fetcher, [quitter, a, b])

            async def pull_the_plug() -> None:
                await until_received(fetcher, quitter_id, 4)
                assert fetcher.bitswap.wantlist()  # the fetch is still under way
                plug_pulled.set()
                quitter_scope.cancel()  # its node closes, and with it its host

            nursery.start_soon(pull_the_plug)
            report = await fetcher.retrieve_content(root)
            assert plug_pulled.is_set()
            await quitter_gone.wait()

            assert report.fetched == report.blocks == 65
            assert sum(report.by_peer.values()) == 65
            assert 4 <= report.by_peer.get(quitter_id, 0) < 65
            assert report.by_peer.get(a.peer_id, 0) > 0 and report.by_peer.get(b.peer_id, 0) > 0
            assert quitter_id not in {str(p) for p in fetcher.connected_peers()}
    assert_clean_store(tmp_path / "f", root, data, 65)


async def test_walk_is_bounded_in_blocks(tmp_path: Path) -> None:
    data = os.urandom(8 * BLOCK)  # eight leaves and a root
    root = provide(tmp_path, ["p"], data)
    with trio.fail_after(30):
        async with node_at(tmp_path / "p") as provider, node_at(tmp_path / "f") as fetcher:
            await fetcher.connect_peer(provider.addrs[0])
            session = Session(fetcher.bitswap, fetcher.connected_peers())
            with pytest.raises(DagTooLarge, match="more than 5 blocks"):
                await session.fetch_dag(root, max_blocks=5)
            # The same walk within its bound finishes; nothing fetched before was lost.
            report = await Session(fetcher.bitswap, fetcher.connected_peers()).fetch_dag(
                root, max_blocks=9)
            assert report.blocks == 9
    assert_clean_store(tmp_path / "f", root, data, 9)


async def test_provider_whose_send_to_us_failed_still_serves_us(tmp_path: Path) -> None:
    """A send from the provider to us fails while the connection stays up (we speak no
    bitswap for a moment); our wants afterwards must still be answered, not dropped."""
    data = os.urandom(3 * BLOCK)
    root = provide(tmp_path, ["p"], data)
    with trio.fail_after(30):
        async with node_at(tmp_path / "p") as provider, node_at(tmp_path / "f") as fetcher:
            await fetcher.connect_peer(provider.addrs[0])
            mux = fetcher.host.get_mux()
            handlers = {proto: mux.handlers[TProtocol(proto)] for proto in PROTOCOLS}
            for proto in PROTOCOLS:
                fetcher.host.remove_stream_handler(TProtocol(proto))
            # The provider wants a block from us: its stream to us cannot be negotiated.
            with pytest.raises(BlockNotFound):
                await provider.fetch_block(cid_of_block(b"only a want"), timeout=3)
            assert fetcher.peer_id in {str(p) for p in provider.connected_peers()}
            for proto, handler in handlers.items():
                fetcher.host.set_stream_handler(TProtocol(proto), handler)

            report = await fetcher.retrieve_content(root)
            assert report.by_peer == {provider.peer_id: report.blocks}
    assert_clean_store(tmp_path / "f", root, data, report.blocks)
