"""The ``Network`` protocol: what the network tools ask of "the node".

Where the backend is the embedded repo, the node is our own py-libp2p node (the server
adapts it, ``ipfs_mcp.server.node_network``). Where the backend is Kubo (or a cluster in
front of Kubo), the node is that Kubo daemon, reached through its RPC
(:mod:`.kubo_network`): no second node runs beside it over an empty repo.

Every method is async and bounded by the implementation's own timeouts. Records are frozen
dataclasses; nothing here is invented: a field the node cannot report is None.

Errors: ``NodeNotRunning`` (our node is not up, and why), ``DaemonUnreachable`` (Kubo
does not answer), ``Timeout``, ``NetworkError``, ``InvalidInput`` (a bad multiaddr),
``BlockNotFound`` (announcing content that is not local).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from multiformats import CID


@dataclass(frozen=True)
class ProviderRecord:
    peer_id: str
    addrs: tuple[str, ...]
    score: float | None = None  # our reputation score, where the node keeps one
    connected: bool = False
    latency: float | None = None  # mean seconds per block from this peer, if measured


@dataclass(frozen=True)
class PeerRecord:
    peer_id: str
    addrs: tuple[str, ...]
    connected: bool = True
    agent: str | None = None
    bitswap_protocol: str | None = None
    latency: float | None = None
    bytes_sent: int | None = None
    bytes_received: int | None = None
    blocks_sent: int | None = None
    blocks_received: int | None = None
    bad_blocks: int | None = None
    score: float | None = None
    successes: int | None = None  # as a provider to us: blocks delivered
    failures: int | None = None  # wants it failed
    success_rate: float | None = None


@dataclass(frozen=True)
class NetworkSnapshot:
    """The node's identity, peers and traffic, as the node itself reports them."""

    node: str  # what answered: "ipfs-mcp p2p node" or "kubo <version> at <url>"
    peer_id: str
    addrs: tuple[str, ...]
    peers: tuple[PeerRecord, ...]
    role: str | None = None
    dht_mode: str | None = None
    routing_table_size: int | None = None
    reachability: str | None = None  # AutoNAT's: public, private or unknown
    bandwidth_in: int | None = None
    bandwidth_out: int | None = None
    blocks_sent: int | None = None
    blocks_received: int | None = None
    network_fetches: int | None = None
    network_fetches_ok: int | None = None
    network_fetches_failed: int | None = None
    providers_found: int | None = None
    bandwidth_rate_in: float | None = None  # bytes per second, recent
    bandwidth_rate_out: float | None = None
    success_rate: float | None = None  # of the retrievals that needed the network
    average_retrieval_time: float | None = None  # seconds, over the successful ones
    bytes_retrieved: int | None = None
    failed_discoveries: int | None = None
    reprovided: int | None = None  # CIDs announced from the pins since start
    relay_reservations: int | None = None  # as a relay service (None: not relaying)
    relay_circuits: int | None = None


@dataclass(frozen=True)
class AnnounceReport:
    records: int  # CIDs announced
    scope: str  # where the records went, in words


@runtime_checkable
class Network(Protocol):
    name: str

    async def find_providers(self, cid: CID, count: int) -> list[ProviderRecord]:
        """Providers of ``cid``, best first, at most ``count``."""
        ...

    async def connect(self, multiaddr: str) -> str:
        """Dial ``multiaddr`` (ending in /p2p/ID); the peer id once connected."""
        ...

    async def announce(self, cid: CID) -> AnnounceReport:
        """Publish a provider record for ``cid`` (which must be local)."""
        ...

    async def snapshot(self) -> NetworkSnapshot:
        """Identity, peers, routing and traffic, now."""
        ...

    def status(self) -> str:
        """"running", or why the node is not (without waiting)."""
        ...
