"""Periods for the node's recurring work (pruning connections, refreshing the routing table,
republishing records).

Each recurring task waits on a :class:`Ticker` passed in: :class:`Period` in a node, one
the test drives in tests, so a test runs "several periods" as a count, never as time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import trio


class Ticker(Protocol):
    async def wait(self) -> None:
        """Return when the next period begins."""
        ...


@dataclass(frozen=True)
class Period:
    """A period of ``seconds`` on trio's clock."""

    seconds: float = 30.0

    async def wait(self) -> None:
        await trio.sleep(self.seconds)


class PeriodCount:
    """How many periods a recurring task has completed, with a way to wait for more."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = trio.Event()  # set (and replaced) after each period

    def done(self) -> None:
        self.count += 1
        self._changed.set()
        self._changed = trio.Event()

    async def reach(self, count: int) -> None:
        """Return once ``count`` periods have completed (bound it with a deadline)."""
        while self.count < count:
            await self._changed.wait()


# A round run while no DHT peer was known put its records in our own store only (peers that
# ask us find them, nobody else): the next round then runs as soon as the routing table has
# a peer, which is checked this often.
PEER_CHECK = 2.0


async def publishing_rounds(run_round: Callable[[], Awaitable[object]], interval: float,
                            dht_peers: Callable[[], int], *,
                            peer_check: float = PEER_CHECK) -> None:
    """Run ``run_round`` now, then every ``interval`` seconds, until cancelled; a round run
    while ``dht_peers()`` was 0 runs again as soon as it is not (for the reprovider and the
    IPNS republisher: what they put with no peer reached no one)."""
    while True:
        alone = dht_peers() == 0
        await run_round()
        deadline = trio.current_time() + interval
        while trio.current_time() < deadline:
            if alone and dht_peers() > 0:
                break
            await trio.sleep(min(peer_check if alone else interval,
                                 max(0.0, deadline - trio.current_time())))
