"""Random-walk refresh of the routing table, on a period the test drives.

A knows B only; B knows C. Until A's refresher runs, C is nowhere in A's table; one walk
(a lookup of a random key, which asks B, which names C) brings C in. Real nodes on
127.0.0.1; no time passes between periods.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from tests.p2p.driven import DrivenTicker, node_with, periods
from tests.p2p.nodes import FAST, node_at

pytestmark = pytest.mark.anyio


def table_of(node: object) -> set[str]:
    dht = node.routing.dht  # type: ignore[attr-defined]
    return {str(p) for p in dht.routing_table.get_peer_ids()}


async def test_one_random_walk_brings_a_peer_of_a_peer_into_the_table(tmp_path: Path) -> None:
    ticker = DrivenTicker()
    with trio.fail_after(60):
        async with node_at(tmp_path / "c") as c, node_at(tmp_path / "b") as b, \
                node_with(tmp_path / "a", FAST, refresh_period=ticker) as a:
            await b.connect_peer(c.addrs[0])
            await a.connect_peer(b.addrs[0])
            assert table_of(a) == {b.peer_id} and c.peer_id in table_of(b)
            refresher = a.routing.refresher  # type: ignore[attr-defined]
            await periods(refresher.periods, ticker, 1)
            assert c.peer_id in table_of(a)
            assert refresher.periods.count == 1
