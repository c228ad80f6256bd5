"""Cancelling a fetch stops its network work promptly and leaves nothing half-done.

The provider is one of our own nodes with a deliberately slow block source (``GatedStore``:
it serves the root and one leaf, then holds every further read until the test releases
it), so a fetch from it is reliably caught in the middle. The fetcher is patient (its want
timeout is an hour), so nothing but the cancellation can end that fetch or withdraw its
wants: the test waits on events only, and no clock decides whether it passes. The checks
are on what the peers themselves saw: the provider's wantlist for the fetcher and the
CANCEL entries it counted, the fetcher's own wantlist and retrieval counters (a cancelled
fetch, no failed one, no want lost to a timeout), its pins, and a second fetch over the
same connection.
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import CancelledError
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
from multiformats import CID

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.core.exporter import Exporter
from ipfs_mcp.p2p import Bitswap, P2PNode

from .nodes import PATIENT, GatedStore, add_bytes, node_at, repo_at

pytestmark = pytest.mark.anyio

SIZE = 7 * 262144  # seven leaves and a root


async def until(engine: Bitswap, holds: Callable[[], bool]) -> None:
    """Wait, message by message, until ``holds()``; the caller bounds the wait."""
    while not holds():
        await engine.changed.wait()


async def _slow_fetch_caught_midway(provider: P2PNode, fetcher: P2PNode,
                                    served: trio.Event) -> list[object]:
    """Wait until the slow provider holds the fetcher's wants; return what is wanted."""
    await served.wait()
    await until(provider.bitswap,
                lambda: len(provider.bitswap.peer_wantlist(fetcher.peer_id)) >= 2)
    wanted = fetcher.bitswap.wantlist()
    assert len(wanted) >= 2  # several leaves are out, none has arrived
    return wanted  # type: ignore[return-value]


async def _assert_wants_withdrawn(provider: P2PNode, fetcher: P2PNode, wanted: list[object]
                                  ) -> None:
    counters = fetcher.fetching.counters
    while not counters.cancelled:
        await counters.changed.wait()
    # Ended by the cancellation: not failed, and no want was lost to a timeout meanwhile.
    assert (counters.cancelled, counters.failed, counters.handled) == (1, 0, 0)
    assert fetcher.reputation.record(provider.peer_id).failures == 0
    assert fetcher.bitswap.wantlist() == []  # every want record was released
    # The provider hears CANCEL for each open want, and forgets them.
    await until(provider.bitswap,
                lambda: provider.bitswap.peer_wantlist(fetcher.peer_id) == [])
    ledger = provider.bitswap.ledger(fetcher.peer_id)
    # Every want the provider received was either served or withdrawn by a CANCEL (a want
    # the fetcher had queued but not yet sent when it was cancelled is never sent at all).
    assert ledger.cancels_received >= 2
    assert ledger.cancels_received + ledger.blocks_sent >= ledger.wants_received


async def _refetch_works(pair: Pair) -> None:
    """The same connection still carries a complete fetch, and nobody was penalised."""
    provider, fetcher = pair.provider, pair.fetcher
    pair.gated.release.set()
    assert provider.peer_id in {str(p) for p in fetcher.connected_peers()}
    report = await fetcher.fetch_dag(pair.root, pin=True)
    assert report.blocks == 8
    assert fetcher.bitswap.ledger(provider.peer_id).bad_blocks == 0
    assert fetcher.reputation.record(provider.peer_id).bad_blocks == 0
    repo = repo_at(pair.path)
    assert Exporter(repo.blocks.get).read(pair.root) == pair.data
    assert [p.cid for p in repo.pins] == [pair.root]


@dataclass
class Pair:
    provider: P2PNode
    fetcher: P2PNode
    gated: GatedStore
    served: trio.Event
    root: CID
    data: bytes
    path: Path  # the fetcher's repo


@asynccontextmanager
async def slow_provider_and_fetcher(tmp_path: Path) -> AsyncIterator[Pair]:
    data = os.urandom(SIZE)
    root = add_bytes(repo_at(tmp_path / "slow"), data)
    served = trio.Event()
    gated = GatedStore(tmp_path / "slow", after=2, served=served)
    async with node_at(tmp_path / "slow", blockstore=gated) as provider, \
            node_at(tmp_path / "f", PATIENT) as fetcher:
        try:
            await fetcher.connect_peer(provider.addrs[0])
            yield Pair(provider, fetcher, gated, served, root, data, tmp_path / "f")
        finally:
            gated.release.set()  # before the provider stops: its reader threads wait


async def test_cancelled_fetch_from_a_deliberately_slow_peer_withdraws_its_wants(
        tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with slow_provider_and_fetcher(tmp_path) as pair, \
                trio.open_nursery() as nursery:
            provider, fetcher = pair.provider, pair.fetcher
            scope = trio.CancelScope()
            ended = trio.Event()

            async def fetch() -> None:
                try:
                    with scope:
                        await fetcher.fetch_dag(pair.root, pin=True)
                finally:
                    ended.set()

            nursery.start_soon(fetch)
            wanted = await _slow_fetch_caught_midway(provider, fetcher, pair.served)
            scope.cancel()
            await ended.wait()  # the fetch, its session and its lookup are over
            await _assert_wants_withdrawn(provider, fetcher, wanted)
            assert scope.cancelled_caught
            assert list(repo_at(pair.path).pins) == []  # nothing half-pinned
            await _refetch_works(pair)


async def test_cancel_token_stops_a_fetch_running_in_a_worker_thread(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with slow_provider_and_fetcher(tmp_path) as pair, \
                trio.open_nursery() as nursery:
            provider, fetcher = pair.provider, pair.fetcher
            cancel = threading.Event()
            outcome: list[BaseException | None] = []
            ended = trio.Event()

            def blocking_fetch() -> None:
                try:
                    fetcher.fetcher().fetch_dag(pair.root, cancel)
                    outcome.append(None)
                except BaseException as exc:  # reported to the test, then checked
                    outcome.append(exc)

            async def in_thread() -> None:
                await trio.to_thread.run_sync(blocking_fetch)
                ended.set()

            nursery.start_soon(in_thread)
            wanted = await _slow_fetch_caught_midway(provider, fetcher, pair.served)
            cancel.set()
            await ended.wait()
            await _assert_wants_withdrawn(provider, fetcher, wanted)
            assert len(outcome) == 1 and isinstance(outcome[0], CancelledError)
            assert str(outcome[0]) == f"fetching {cid_str(pair.root)} was cancelled"
            assert list(repo_at(pair.path).pins) == []
            await _refetch_works(pair)
