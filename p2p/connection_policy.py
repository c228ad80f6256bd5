"""The node's connections: no dial that nobody asked for, and limits that hold.

py-libp2p's swarm runs an ``AutoConnector`` that dials peerstore peers (every address the
DHT, provider records, identify and mDNS taught it) at start, every 30 s and after each
disconnect, until it holds (low+high)/2 connections. A leecher would dial dozens of peers
it never asked for. :func:`install_connection_policy` puts a :class:`ConnectionPolicy` in
the connector's place: the swarm starts it as it would the connector, and it dials nothing.
Dials happen only when a part of the node asks for a peer (a fetch, a DHT lookup, a
``--peer``, a bootstrap or mDNS peer).

It prunes instead, once a period (a :class:`~.periods.Ticker`: a 30 s
:class:`~.periods.Period` in a node, one a test drives) and whenever the swarm counts a new connection, as Kubo's connection manager does:

- above the high water mark, peers are disconnected down to the low one, fewest open
  streams first, then the longest known; a peer first seen less than the grace period ago
  is spared, and so is one the swarm's tag store protects;
- a peer that opened no stream and held none open for ``idle_after`` seconds is
  disconnected, the longest idle
  first, down to the low water mark: below it a node keeps even idle peers (its bootstrap
  peers, say), since it will not dial new ones on its own.

Identify's streams do not count as open: py-libp2p 0.8.1 leaves them (and streams whose
protocol was never agreed) in the connection's list after the exchange, so counting them
would keep every peer busy forever. Ages are read from a :data:`Clock` (``time.monotonic`` in a node), so a test can drive both
the periods and the time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio
from libp2p.abc import INetStream, INetwork
from libp2p.peer.id import ID

from ._net import NET_ERRORS, ConnectionEvents
from .periods import Period, PeriodCount, Ticker

log = logging.getLogger(__name__)

Clock = Callable[[], float]

# Streams that say nothing about whether a peer is in use (see the module docstring).
_NOT_ACTIVITY = frozenset({None, "/ipfs/id/1.0.0", "/ipfs/id/push/1.0.0"})


@dataclass(frozen=True)
class ConnectionLimits:
    """Kubo's ``Swarm.ConnMgr`` knobs, plus how long a peer may sit with no stream open."""

    low: int
    high: int
    grace: float  # seconds a new peer is never pruned
    idle_after: float  # seconds without an open stream before a peer (above low) is dropped


class ConnectionPolicy:
    """Stands where py-libp2p's AutoConnector stood: it never dials, and it prunes.

    Components come in built: the limits, the period and the clock.
    """

    def __init__(self, limits: ConnectionLimits, ticker: Ticker | None = None,
                 clock: Clock = time.monotonic) -> None:
        self.limits = limits
        self.ticker: Ticker = ticker or Period()
        self.clock = clock
        self.periods = PeriodCount()
        self.pruned = 0  # peers disconnected by this policy
        self._first_seen: dict[ID, float] = {}
        self._idle_since: dict[ID, float] = {}
        self._swarm: Any = None
        self.events = _Events(self._seen, self._gone, self._active)
        # What the swarm reads from its connector (swarm._schedule_auto_connect).
        self._is_connecting = False

    # -- the AutoConnector's interface, as the swarm uses it ----------------------------
    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def run_background_task(self, nursery: trio.Nursery) -> None:
        nursery.start_soon(self._run_periods)

    async def maybe_connect(self) -> None:
        """The connector's dial round: nobody asked, so nothing is dialled."""
        log.debug("p2p: not dialling peerstore peers to reach a connection count")

    def record_disconnect(self, peer_id: ID) -> None:
        return None

    def record_successful_connection(self, peer_id: ID) -> None:
        return None

    def record_failed_connection(self, peer_id: ID) -> None:
        return None

    def set_discovery_callback(self, callback: object) -> None:
        return None

    # -- pruning --------------------------------------------------------------------------
    def attach(self, swarm: Any) -> None:
        self._swarm = swarm
        swarm.register_notifee(self.events)

    def _seen(self, peer_id: ID) -> None:
        now = self.clock()
        self._first_seen.setdefault(peer_id, now)
        self._idle_since.setdefault(peer_id, now)

    def _active(self, peer_id: ID) -> None:
        self._idle_since[peer_id] = self.clock()

    def _gone(self, network: INetwork, peer_id: ID) -> None:
        if not network.get_connections(peer_id):
            self._first_seen.pop(peer_id, None)
            self._idle_since.pop(peer_id, None)

    async def _run_periods(self) -> None:
        while True:
            await self.ticker.wait()
            await self.prune()
            self.periods.done()

    async def prune(self) -> None:
        """Disconnect idle peers, then peers above the high water mark (see the module
        docstring); each disconnect is logged, a failing one too."""
        if self._swarm is None:
            return
        now = self.clock()
        streams = self._open_streams()
        for peer in streams:
            self._seen(peer)
            if streams[peer]:
                self._idle_since[peer] = now
        idle = sorted((p for p in streams if now - self._idle_since[p] >= self.limits.idle_after
                       and not self._protected(p)), key=lambda p: self._idle_since[p])
        idle = idle[:max(0, len(streams) - self.limits.low)]
        excess = len(streams) - len(idle) - self.limits.high
        crowded: list[ID] = []
        if excess > 0:
            surplus = len(streams) - len(idle) - self.limits.low
            candidates = sorted(
                (p for p in streams if p not in idle and not self._protected(p)
                 and now - self._first_seen[p] >= self.limits.grace),
                key=lambda p: (streams[p], self._first_seen[p]))
            crowded = candidates[:surplus]
        for peer, why in [*((p, "idle") for p in idle), *((p, "above the high water mark")
                                                          for p in crowded)]:
            log.debug("p2p: disconnecting %s (%s)", peer, why)
            try:
                await self._swarm.close_peer(peer)
                self.pruned += 1
            except NET_ERRORS as exc:
                log.debug("p2p: disconnecting %s failed: %r", peer, exc)

    def _open_streams(self) -> dict[ID, int]:
        counts: dict[ID, int] = {}
        for peer, conns in self._swarm.get_connections_map().items():
            counts[peer] = sum(1 for conn in conns for stream in conn.get_streams()
                               if stream.get_protocol() not in _NOT_ACTIVITY)
        return counts

    def _protected(self, peer: ID) -> bool:
        tags = getattr(self._swarm, "tag_store", None)
        return bool(tags is not None and tags.is_protected(peer))


class _Events(ConnectionEvents):
    """Connection events, plus each stream opened (either side), as activity."""

    def __init__(self, on_connected: Callable[[ID], object],
                 on_disconnected: Callable[[INetwork, ID], object],
                 on_stream: Callable[[ID], object]) -> None:
        super().__init__(on_connected, on_disconnected)
        self._on_stream = on_stream

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        self._on_stream(stream.muxed_conn.peer_id)


def install_connection_policy(swarm: Any, policy: ConnectionPolicy) -> None:
    """Put ``policy`` where ``swarm`` keeps its auto-connector and its pruner.

    Call before the swarm runs: it starts its connector's background task on entry.
    """
    swarm.auto_connector = policy
    pruner = getattr(swarm, "connection_pruner", None)
    if pruner is not None:  # the swarm's own trigger (a new connection) prunes our way
        pruner.maybe_prune_connections = policy.prune
    policy.attach(swarm)
