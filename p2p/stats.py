"""What the node reports about itself and its peers, as frozen data, and the bandwidth
meter that counts every byte its connections carry.

Bandwidth is counted as Kubo's ``ipfs stats bw`` counts it: at the connection, below
noise and yamux, so it includes every protocol (bitswap, the DHT, identify, ping) and
their framing and encryption. A protocol's own counters (bitswap's ledgers) count only
its messages or block bytes, so ``bandwidth`` is never below them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from libp2p.abc import IHost
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.network.swarm import Swarm
from libp2p.peer.id import ID

from .bitswap.engine import Bitswap
from .peers import Peers
from .reputation import ProviderReputation


@dataclass(frozen=True)
class PeerStat:
    peer_id: str
    addrs: tuple[str, ...]
    agent: str | None
    connected: bool
    bitswap_protocol: str | None
    latency: float | None  # mean seconds from asking to receiving a block
    bytes_sent: int
    bytes_received: int
    blocks_sent: int
    blocks_received: int
    bad_blocks: int
    reputation: float
    # As a provider to us: its outcomes, over every path we fetched from it.
    successes: int = 0  # blocks it delivered
    failures: int = 0  # wants it failed (timed out, refused, bad blocks weigh more)
    success_rate: float | None = None  # successes / (successes + failures)


@dataclass(frozen=True)
class Bandwidth:
    """Bytes through every connection since the node started, and the recent rate
    (bytes per second, exponentially weighted over :data:`RATE_WINDOW` seconds)."""

    total_in: int
    total_out: int
    rate_in: float
    rate_out: float


@dataclass(frozen=True)
class NodeStats:
    peer_id: str
    addrs: tuple[str, ...]
    role: str
    dht_mode: str
    cache_misses: int  # retrievals that needed the network
    handled: int  # of which succeeded
    failed: int
    success_rate: float | None
    bytes_retrieved: int
    average_retrieval_time: float | None
    providers_found: int
    failed_discoveries: int
    announced: int  # CIDs announced automatically after retrievals (role policy)
    failed_announcements: int
    routing_table_size: int
    bytes_sent_total: int  # bitswap messages, both directions
    bytes_received_total: int
    peers: tuple[PeerStat, ...]
    bandwidth: Bandwidth = Bandwidth(0, 0, 0.0, 0.0)
    reprovide_rounds: int = 0  # rounds announcing the pinned roots (at start, then periodic)
    reprovided: int = 0  # CIDs announced by those rounds
    # As a Circuit Relay v2 service (None: the node does not relay): slots held, circuits open.
    relay_reservations: int | None = None
    relay_circuits: int | None = None
    # Peers in each half of the dual DHT's routing tables (None: one table, not split).
    dht_lan_peers: int | None = None
    dht_wan_peers: int | None = None


def peer_stats(host: IHost, peers: Peers, bitswap: Bitswap, reputation: ProviderReputation,
               peer_id: str | ID | None = None) -> list[PeerStat]:
    """One peer's stats, or those of every peer we exchanged with, know or are connected to."""
    connected = {str(p) for p in host.get_connected_peers()}
    keys = [str(peer_id)] if peer_id is not None else sorted(
        set(bitswap.ledgers()) | connected | set(reputation.known()))
    store = host.get_peerstore()
    out = []
    for key in keys:
        ledger = bitswap.ledger(key)
        record = reputation.record(key)
        try:
            addrs = tuple(str(a) for a in store.addrs(ID.from_base58(key)))
        except Exception:  # unknown to the peerstore
            addrs = ()
        out.append(PeerStat(
            peer_id=key, addrs=addrs, agent=peers.agent(key),
            connected=key in connected,
            bitswap_protocol=bitswap.peer_protocol(key),
            latency=record.mean_latency,
            bytes_sent=ledger.bytes_sent, bytes_received=ledger.bytes_received,
            blocks_sent=ledger.blocks_sent, blocks_received=ledger.blocks_received,
            bad_blocks=ledger.bad_blocks, reputation=record.score,
            successes=record.successes, failures=record.failures,
            success_rate=_rate(record.successes, record.failures)))
    return out


def _rate(successes: int, failures: int) -> float | None:
    tried = successes + failures
    return successes / tried if tried else None


# -- bandwidth ---------------------------------------------------------------------------

RATE_WINDOW = 10.0  # seconds: the time constant of the rate's exponential average


class _Direction:
    """A total and an exponentially decayed byte count, whose ratio to the window is the
    rate: a burst counts fully at once and fades over about RATE_WINDOW seconds, as Kubo's
    meters do, without keeping a history of samples."""

    __slots__ = ("total", "_decayed", "_at")

    def __init__(self, now: float) -> None:
        self.total = 0
        self._decayed = 0.0
        self._at = now

    def _decay(self, now: float) -> None:
        if now > self._at:
            self._decayed *= math.exp(-(now - self._at) / RATE_WINDOW)
            self._at = now

    def add(self, n: int, now: float) -> None:
        self._decay(now)
        self.total += n
        self._decayed += n

    def rate(self, now: float) -> float:
        self._decay(now)
        return self._decayed / RATE_WINDOW


class BandwidthMeter:
    """Counts bytes in and out of the node's connections (see :func:`meter_connections`).

    Lives on the event loop, where the connections are read and written.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        now = clock()
        self._in = _Direction(now)
        self._out = _Direction(now)

    def received(self, n: int) -> None:
        self._in.add(n, self._clock())

    def sent(self, n: int) -> None:
        self._out.add(n, self._clock())

    def snapshot(self) -> Bandwidth:
        now = self._clock()
        return Bandwidth(self._in.total, self._out.total, self._in.rate(now),
                         self._out.rate(now))


def meter_connections(network: object) -> BandwidthMeter:
    """The meter counting every byte of every TCP connection ``network`` upgrades from now
    on (installed once per network: a second node over the same host shares it, rather
    than count each byte twice).

    The swarm's raw connection is the layer under noise: its reads and writes are the
    bytes on the wire. Another network implementation, or another connection type (QUIC),
    is left uncounted rather than guessed at.
    """
    installed = getattr(network, "_ipfs_mcp_bandwidth", None)
    if isinstance(installed, BandwidthMeter):
        return installed
    meter = BandwidthMeter()
    if not isinstance(network, Swarm):
        return meter
    network._ipfs_mcp_bandwidth = meter  # type: ignore[attr-defined]
    outbound = network.upgrade_outbound_raw_conn
    inbound = network.upgrade_inbound_raw_conn

    async def upgrade_outbound(raw_conn: object, *args: object) -> object:
        return await outbound(_metered(raw_conn, meter), *args)  # type: ignore[arg-type]

    async def upgrade_inbound(raw_conn: object, *args: object) -> object:
        return await inbound(_metered(raw_conn, meter), *args)  # type: ignore[arg-type]

    network.upgrade_outbound_raw_conn = upgrade_outbound  # type: ignore[method-assign,assignment]
    network.upgrade_inbound_raw_conn = upgrade_inbound  # type: ignore[method-assign,assignment]
    return meter


def _metered(raw_conn: object, meter: BandwidthMeter) -> object:
    if not isinstance(raw_conn, RawConnection):
        return raw_conn
    read: Callable[[int | None], Awaitable[bytes]] = raw_conn.read
    write: Callable[[bytes], Awaitable[None]] = raw_conn.write

    async def metered_read(n: int | None = None) -> bytes:
        data = await read(n)
        meter.received(len(data))
        return data

    async def metered_write(data: bytes) -> None:
        await write(data)
        meter.sent(len(data))

    # On the instance: noise reads and writes the raw connection through these names.
    raw_conn.read = metered_read  # type: ignore[method-assign]
    raw_conn.write = metered_write  # type: ignore[method-assign]
    return raw_conn
