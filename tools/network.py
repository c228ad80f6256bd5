"""Network tools over the node: find providers, connect, announce, peer stats.

The node is a :class:`~ipfs_mcp.backends.network.Network` handed in by the server: our
P2P node beside the embedded repo, or the Kubo daemon that is the backend. It is None
when there is no node at all (``why`` then says why). Nothing here invents peers or
providers; a number the node does not report stays null.
"""

from __future__ import annotations

from collections.abc import Sequence

from ipfs_mcp.backends.backend import Backend
from ipfs_mcp.backends.core.cids import cid_str, parse_cid
from ipfs_mcp.backends.errors import DialRefused, InvalidInput, IpfsMcpError, NodeNotRunning
from ipfs_mcp.backends.network import Network, NetworkSnapshot

from .models import (
    AnnounceResult,
    CacheCounters,
    ConnectResult,
    NetworkStats,
    PeerInfo,
    PeerStatsResult,
    Provider,
    ProvidersResult,
    RepoTiers,
)

HOW_TO_START = ("start the server with `ipfs-mcp serve --listen /ip4/0.0.0.0/tcp/4001` "
                "(add --bootstrap MULTIADDR to join a network)")
DIAL_SCOPE_SETTING = ("the user sets the dial scope when starting the server: "
                      "--dial-scope loopback|lan|public or IPFS_MCP_DIAL_SCOPE")


def require_node(node: Network | None, why: str = "") -> Network:
    """The node, or a clear error that there is none.

    Raises:
        NodeNotRunning: no node.
    """
    if node is None:
        reason = f" ({why})" if why else ""
        raise NodeNotRunning(f"P2P node is not running{reason}; {HOW_TO_START}")
    return node


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


def _rounded(rate: float | None) -> float | None:
    return None if rate is None else round(rate, 1)


async def find_providers(node: Network | None, cid: str, *, count: int = 5,
                         why: str = "") -> ProvidersResult:
    """Peers that provide ``cid``, best first.

    Raises:
        InvalidCID, NodeNotRunning, NetworkError (lookup failed), Timeout.
    """
    parsed = parse_cid(cid)
    running = require_node(node, why)
    count = max(1, min(count, 50))
    found = await running.find_providers(parsed, count)
    me = (await running.snapshot()).peer_id
    providers = [Provider(peer_id=p.peer_id, addrs=list(p.addrs), score=p.score,
                          latency_ms=_ms(p.latency), connected=p.connected,
                          is_self=p.peer_id == me)
                 for p in found[:count]]
    return ProvidersResult(cid=cid_str(parsed), providers=providers, count=len(providers))


async def connect_peer(node: Network | None, multiaddr: str, *, why: str = ""
                       ) -> ConnectResult:
    """Dial a peer by multiaddr (ending in /p2p/PEER_ID) and wait until it is connected.

    An address outside the node's dial scope is refused before anything is dialled, with the
    reason and the setting; a failed dial says only "could not connect to PEER".

    Raises:
        NodeNotRunning, InvalidInput (bad multiaddr), DialRefused (outside the dial scope),
        NetworkError.
    """
    running = require_node(node, why)
    addr = multiaddr.strip()
    if "/p2p/" not in addr and "/ipfs/" not in addr:
        raise InvalidInput(f"{addr!r} has no peer id: the address must end in /p2p/PEER_ID "
                           "(peer_stats on the other node lists its full addresses)")
    try:
        peer_id = await running.connect(addr)
    except DialRefused as exc:
        raise DialRefused(f"{exc}; {DIAL_SCOPE_SETTING}") from None
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


async def announce(node: Network | None, cid: str, *, role: str = "worker",
                   why: str = "") -> AnnounceResult:
    """Publish a provider record for ``cid``.

    Raises:
        InvalidCID, NodeNotRunning, InvalidInput (a leecher announces nothing),
        BlockNotFound (not local), NetworkError.
    """
    parsed = parse_cid(cid)
    running = require_node(node, why)
    if role == "leecher":
        raise InvalidInput("this node's role is leecher, which announces nothing; restart it "
                           "with --role worker (or master) to provide content")
    report = await running.announce(parsed)
    return AnnounceResult(cid=cid_str(parsed), announced=True, records=report.records,
                          scope=report.scope)


async def announce_quietly(node: Network | None, cid: str, *, role: str = "worker",
                           why: str = "") -> tuple[bool, str]:
    """Announce after a store. A failure is reported in the result, not raised: the
    content was stored and pinned either way."""
    try:
        result = await announce(node, cid, role=role, why=why)
    except IpfsMcpError as exc:
        return False, f"not announced: {exc}"
    return True, f"announced to {result.scope}"


def cache_counters(backend: Backend) -> CacheCounters | None:
    counters = backend.counters
    if counters is None:
        return None
    return CacheCounters(hits=counters.hits, misses=counters.misses, fetched=counters.fetched)


def repo_tiers(backend: Backend) -> RepoTiers | None:
    """The embedded repo's tier figures; None for a backend without one."""
    if backend.repo is None:
        return None
    t = backend.repo.tiers()
    m = t.memory
    return RepoTiers(disk_bytes=t.disk_bytes, disk_max=t.disk_max, watermark=t.watermark,
                     memory_bytes=m.bytes if m else None, memory_max=m.max_bytes if m else None,
                     memory_hits=m.hits if m else None, memory_misses=m.misses if m else None,
                     memory_hit_rate=round(m.hit_rate, 4) if m else None,
                     evicted_blocks=t.evicted_blocks, evicted_bytes=t.evicted_bytes,
                     refused=t.refused)


def network_stats(snap: NetworkSnapshot) -> NetworkStats:
    peers = [PeerInfo(peer_id=p.peer_id, addrs=list(p.addrs), agent=p.agent,
                      connected=p.connected, bitswap_protocol=p.bitswap_protocol,
                      latency_ms=_ms(p.latency), blocks_sent=p.blocks_sent,
                      blocks_received=p.blocks_received, bytes_sent=p.bytes_sent,
                      bytes_received=p.bytes_received, bad_blocks=p.bad_blocks,
                      score=p.score, successes=p.successes, failures=p.failures,
                      success_rate=p.success_rate)
             for p in snap.peers]
    return NetworkStats(
        node=snap.node, peer_id=snap.peer_id, listen_addrs=list(snap.addrs), role=snap.role,
        dht_mode=snap.dht_mode, connected_peers=sum(1 for p in peers if p.connected),
        peers=peers, routing_table_size=snap.routing_table_size,
        reachability=snap.reachability,
        bandwidth_in=snap.bandwidth_in, bandwidth_out=snap.bandwidth_out,
        ledger_blocks_sent=snap.blocks_sent, ledger_blocks_received=snap.blocks_received,
        network_fetches=snap.network_fetches, network_fetches_ok=snap.network_fetches_ok,
        network_fetches_failed=snap.network_fetches_failed,
        providers_found=snap.providers_found, failed_discoveries=snap.failed_discoveries,
        success_rate=snap.success_rate,
        average_retrieval_ms=_ms(snap.average_retrieval_time),
        bytes_retrieved=snap.bytes_retrieved,
        bandwidth_rate_in=_rounded(snap.bandwidth_rate_in),
        bandwidth_rate_out=_rounded(snap.bandwidth_rate_out),
        relay_reservations=snap.relay_reservations, relay_circuits=snap.relay_circuits)


async def peer_stats(node: Network | None, backend: Backend, *, why: str = ""
                     ) -> PeerStatsResult:
    """The node's identity, peers and traffic, plus the backend and its cache counters.

    The local part is always there. When there is no node the network part is absent and
    ``network_status`` says why; nothing is made up in its place.
    """
    local = PeerStatsResult(backend=backend.name, cache=cache_counters(backend),
                            tiers=repo_tiers(backend), network_status="")
    if node is None:
        return local.model_copy(update={"network_status": f"not running: {why or 'no node'}"})
    try:
        snap = await node.snapshot()
    except NodeNotRunning:
        return local.model_copy(update={"network_status": f"not running: {node.status()}"})
    return local.model_copy(update={"network": network_stats(snap),
                                    "network_status": "running"})
