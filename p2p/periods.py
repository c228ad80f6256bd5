"""Periods for the node's recurring work (pruning connections, refreshing the routing table).

Each recurring task waits on a :class:`Ticker` passed in: :class:`Period` in a node, one
the test drives in tests, so a test runs "several periods" as a count, never as time.
"""

from __future__ import annotations

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
