"""Refreshing the routing table by random walks, as Kubo's DHT does every 10 minutes.

Once a period (a :class:`~.periods.Ticker`), the node looks up the peers closest to a
random key. The lookup asks the peers it knows, and those name peers it did not know; every
DHT server among them that it reached joins the routing table. A table that held only a
bootstrap peer so fills with the network's servers, and stale entries are found out.

Bounded: one lookup per period, each within ``timeout`` seconds, and at most ``max_new``
peers added from one walk. py-libp2p's own refresher (``RTRefreshManager``) sleeps on a fixed
timer and falls back to dialling peerstore peers; this one is driven by its ticker and adds
only peers the walk actually heard from.
"""

from __future__ import annotations

import logging
import os

import trio
from libp2p.abc import IHost
from libp2p.kad_dht.kad_dht import KadDHT
from libp2p.peer.id import ID

from ._net import NET_ERRORS
from .periods import Period, PeriodCount, Ticker

log = logging.getLogger(__name__)

REFRESH_PERIOD = 600.0  # Kubo's routing table refresh interval


class RandomWalk:
    """Random-walk refresh of ``dht``'s routing table; run :meth:`run` in a nursery."""

    def __init__(self, dht: KadDHT, ticker: Ticker | None = None, *,
                 timeout: float = 30.0, max_new: int = 20,
                 kad_protocols: tuple[str, ...] = ()) -> None:
        self.dht = dht
        self.ticker: Ticker = ticker or Period(REFRESH_PERIOD)
        self.timeout = timeout
        self.max_new = max_new
        self.kad_protocols = kad_protocols
        self.periods = PeriodCount()
        self.added = 0  # peers this refresher put in the routing table, in all

    async def run(self) -> None:
        while True:
            await self.ticker.wait()
            await self.walk()
            self.periods.done()

    async def walk(self) -> int:
        """One lookup of a random key; how many new peers joined the routing table."""
        host: IHost = self.dht.host
        found: list[ID] = []
        with trio.move_on_after(self.timeout):
            try:
                found = await self.dht.peer_routing.find_closest_peers_network(os.urandom(32))
            except NET_ERRORS as exc:
                log.debug("routing: random walk failed: %r", exc)
        table = self.dht.routing_table
        added = 0
        for peer in found:
            if added >= self.max_new:
                break
            if peer == host.get_id() or table.peer_in_table(peer) or not self._server(host, peer):
                continue
            if await self.dht.add_peer(peer, skip_server_mode_check=True):
                added += 1
        self.added += added
        log.debug("routing: random walk met %d peers, %d joined the table (%d in it)",
                  len(found), added, table.size())
        return added

    def _server(self, host: IHost, peer: ID) -> bool:
        """Whether ``peer`` said (in identify) that it serves the DHT."""
        try:
            protocols = host.get_peerstore().get_protocols(peer)
        except Exception:  # the peerstore raises for a peer it never identified
            return False
        return any(p in protocols for p in self.kad_protocols)
