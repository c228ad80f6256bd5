"""What the node reports about itself and its peers, as frozen data."""

from __future__ import annotations

from dataclasses import dataclass

from libp2p.abc import IHost
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
            bad_blocks=ledger.bad_blocks, reputation=record.score))
    return out
