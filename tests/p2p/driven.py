"""Periods and a clock the tests drive, for the node's recurring work (see p2p/periods.py),
and a node built with such components."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.p2p import (
    KadContentRouting,
    NodeConfig,
    P2PNode,
    build_host,
    load_or_create_identity,
)
from ipfs_mcp.p2p.dialing import DialPolicy
from ipfs_mcp.p2p.periods import PeriodCount, Ticker


class DrivenTicker:
    """A period that begins when the test says so."""

    def __init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[None](0)

    async def wait(self) -> None:
        await self._receive.receive()

    async def tick(self) -> None:
        await self._send.send(None)


@dataclass
class Clock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


async def periods(count: PeriodCount, ticker: DrivenTicker, n: int) -> None:
    """Run ``n`` periods of the task that counts its periods in ``count``, each to its end."""
    for _ in range(n):
        done = count.count + 1
        await ticker.tick()
        await count.reach(done)


@asynccontextmanager
async def node_with(path: Path, cfg: NodeConfig, *, dial_policy: DialPolicy | None = None,
                    refresh_period: Ticker | None = None) -> AsyncIterator[P2PNode]:
    """Our node on ``path``'s repo, built from its parts as open_node builds it, with the
    components a test drives: the dial policy (to count dials) and the routing table's
    refresh period."""
    repo = Repo(path, fsync=False)
    dial_policy = dial_policy or cfg.dial_policy()
    host = build_host(load_or_create_identity(path), cfg, dial_policy)
    routing = KadContentRouting.for_host(host, server=cfg.profile.dht_server,
                                         refresh_period=refresh_period)
    async with P2PNode(host, repo.blocks, routing, config=cfg, dial_policy=dial_policy) as node:
        yield node
