"""Network tools over the P2P node: find providers, connect, announce, peer stats.

The node (``ipfs_mcp.p2p.P2PNode``) is a component handed in by the server; it is None
when the node is not running, and ``why`` then says why. Tools that need it raise
:class:`BackendUnavailable` with that reason; nothing here invents peers or providers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from multiformats import CID

from ipfs_mcp.backends.cids import cid_str, parse_cid
from ipfs_mcp.backends.errors import BackendUnavailable, InvalidInput, IpfsMcpError

from .models import (
    AnnounceResult,
    CacheCounters,
    ConnectResult,
    NetworkStats,
    PeerInfo,
    PeerStatsResult,
    Provider,
    ProvidersResult,
)

if TYPE_CHECKING:
    from ipfs_mcp.p2p.node import NodeStats, PeerStat, ProviderInfo

HOW_TO_START = ("start the server with `ipfs-mcp serve --listen /ip4/0.0.0.0/tcp/4001` "
                "(add --bootstrap MULTIADDR to join a network)")


class P2PNode(Protocol):
    """What the tools use of ``ipfs_mcp.p2p.P2PNode`` (kept as a protocol so that importing
    the tools does not import libp2p)."""

    @property
    def peer_id(self) -> str: ...

    @property
    def addrs(self) -> list[str]: ...

    async def find_providers(self, cid: CID | str, count: int | None = None,
                             timeout: float | None = None) -> list[ProviderInfo]: ...

    async def connect_peer(self, addr: str, *, timeout: float = 15.0) -> str: ...

    async def announce_content(self, cid: CID | str, *,
                               recursive: bool | None = None) -> int: ...

    def peer_stats(self, peer_id: str | None = None) -> list[PeerStat]: ...

    def stats(self) -> NodeStats: ...


def require_node(node: P2PNode | None, why: str = "") -> P2PNode:
    """The node, or a clear error that it is not running.

    Raises:
        BackendUnavailable: no node.
    """
    if node is None:
        reason = f" ({why})" if why else ""
        raise BackendUnavailable(f"P2P node is not running{reason}; {HOW_TO_START}")
    return node


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


async def find_providers(node: P2PNode | None, cid: str, *, count: int = 5,
                         why: str = "") -> ProvidersResult:
    """Peers that provide ``cid``, best first by reputation.

    Raises:
        InvalidCID, BackendUnavailable (no node), NetworkError (lookup failed or timed out).
    """
    parsed = parse_cid(cid)
    running = require_node(node, why)
    count = max(1, min(count, 50))
    found = await running.find_providers(parsed, count)
    stats = {s.peer_id: s for s in running.peer_stats()}
    providers = []
    for info in found[:count]:
        known = stats.get(info.peer_id)
        providers.append(Provider(
            peer_id=info.peer_id, addrs=list(info.addrs), score=info.score,
            latency_ms=_ms(known.latency) if known else None,
            connected=known.connected if known else False,
            is_self=info.peer_id == running.peer_id))
    return ProvidersResult(cid=cid_str(parsed), providers=providers, count=len(providers))


async def connect_peer(node: P2PNode | None, multiaddr: str, *, why: str = ""
                       ) -> ConnectResult:
    """Dial a peer by multiaddr (ending in /p2p/PEER_ID) and wait until it is identified.

    Raises:
        BackendUnavailable (no node), InvalidInput (bad multiaddr), NetworkError.
    """
    running = require_node(node, why)
    addr = multiaddr.strip()
    if "/p2p/" not in addr and "/ipfs/" not in addr:
        raise InvalidInput(f"{addr!r} has no peer id: the address must end in /p2p/PEER_ID "
                           "(peer_stats on the other node lists its full addresses)")
    peer_id = await running.connect_peer(addr)
    return ConnectResult(peer_id=peer_id, addrs=[addr], connected=True)


def announce_scope(routing_table_size: int, bootstrap: Sequence[str]) -> str:
    """Where a provider record went, in words: it only reaches the DHT peers we know."""
    if routing_table_size == 0:
        return ("this node's own provider store only: no DHT peers are known yet, so peers "
                "that connect to this node can fetch it but nobody else can discover it "
                "(connect_peer to a peer, or configure --bootstrap)")
    if not bootstrap:
        return (f"the {routing_table_size} DHT peer(s) this node knows; no bootstrap peers "
                "are configured, so it does not reach a wider network")
    return f"the DHT ({routing_table_size} peers in the routing table)"


async def announce(node: P2PNode | None, cid: str, *, role: str = "worker",
                   bootstrap: Sequence[str] = (), why: str = "") -> AnnounceResult:
    """Publish a provider record for ``cid``.

    Raises:
        InvalidCID, BackendUnavailable (no node), InvalidInput (a leecher announces
        nothing), BlockNotFound (not local), NetworkError.
    """
    parsed = parse_cid(cid)
    running = require_node(node, why)
    if role == "leecher":
        raise InvalidInput("this node's role is leecher, which announces nothing; restart it "
                           "with --role worker (or master) to provide content")
    count = await running.announce_content(parsed)
    scope = announce_scope(running.stats().routing_table_size, bootstrap)
    return AnnounceResult(cid=cid_str(parsed), announced=True, records=count, scope=scope)


async def announce_quietly(node: P2PNode | None, cid: str, *, role: str = "worker",
                           bootstrap: Sequence[str] = (), why: str = "") -> tuple[bool, str]:
    """Announce after a store. A failure is reported in the result, not raised: the
    content was stored and pinned either way."""
    try:
        result = await announce(node, cid, role=role, bootstrap=bootstrap, why=why)
    except IpfsMcpError as exc:
        return False, f"not announced: {exc}"
    return True, f"announced to {result.scope}"


def cache_counters(backend: Any) -> CacheCounters | None:
    counters = getattr(backend, "counters", None)
    if counters is None:
        return None
    return CacheCounters(hits=counters.hits, misses=counters.misses, fetched=counters.fetched)


def network_stats(node: P2PNode) -> NetworkStats:
    stats = node.stats()
    peers = [PeerInfo(peer_id=p.peer_id, addrs=list(p.addrs), agent=p.agent,
                      connected=p.connected, bitswap_protocol=p.bitswap_protocol,
                      latency_ms=_ms(p.latency), blocks_sent=p.blocks_sent,
                      blocks_received=p.blocks_received, bytes_sent=p.bytes_sent,
                      bytes_received=p.bytes_received, bad_blocks=p.bad_blocks,
                      score=p.reputation)
             for p in stats.peers]
    return NetworkStats(
        peer_id=stats.peer_id, listen_addrs=list(stats.addrs), role=stats.role,
        dht_mode=stats.dht_mode, connected_peers=sum(1 for p in peers if p.connected),
        peers=peers, routing_table_size=stats.routing_table_size,
        bandwidth_in=stats.bytes_received_total, bandwidth_out=stats.bytes_sent_total,
        ledger_blocks_sent=sum(p.blocks_sent for p in stats.peers),
        ledger_blocks_received=sum(p.blocks_received for p in stats.peers),
        network_fetches=stats.cache_misses, network_fetches_ok=stats.handled,
        network_fetches_failed=stats.failed, providers_found=stats.providers_found)


async def peer_stats(node: P2PNode | None, backend: Any, *, why: str = "") -> PeerStatsResult:
    """The node's identity, peers and traffic, plus the backend and its cache counters.

    The local part is always there. When the node is not running the network part is
    absent and ``network_status`` says why; nothing is made up in its place.
    """
    name = getattr(backend, "name", type(backend).__name__)
    if node is None:
        return PeerStatsResult(backend=name, cache=cache_counters(backend),
                               network_status=f"not running: {why or 'no node'}")
    return PeerStatsResult(backend=name, cache=cache_counters(backend),
                           network=network_stats(node), network_status="running")
