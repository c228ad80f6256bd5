"""Our py-libp2p node as the :class:`~ipfs_mcp.backends.network.Network` of the tools.

The node starts in the background (see :mod:`.state`); until it is up its place is held by
a :class:`~ipfs_mcp.server.state.NodeSlot`. Each call waits for the start, bounded, then
asks the node, or raises :class:`NodeNotRunning` with the reason there is none. Only used
beside the embedded backend: where Kubo is the backend, Kubo is the node.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import anyio.to_thread
from multiformats import CID

from ipfs_mcp.backends.errors import IpfsMcpError, NetworkError, NodeNotRunning
from ipfs_mcp.backends.names import NameSystem
from ipfs_mcp.backends.network import (
    AnnounceReport,
    NetworkSnapshot,
    PeerRecord,
    ProviderRecord,
)
from ipfs_mcp.backends.retrieval.delegated_routing import DelegatedRouting, RoutedProvider
from ipfs_mcp.tools.network import HOW_TO_START, announce_scope

if TYPE_CHECKING:
    from ipfs_mcp.p2p.node import P2PNode


class NodeHolder(Protocol):
    status: str

    async def wait(self) -> P2PNode | None: ...


class NodeNetwork:
    name = "ipfs-mcp p2p node"

    def __init__(self, slot: NodeHolder, *, bootstrap: Sequence[str] = (),
                 routing: DelegatedRouting | None = None,
                 repo_path: Path | None = None) -> None:
        self.slot = slot
        self.bootstrap = tuple(bootstrap)
        self.routing = routing  # delegated routers, asked beside the DHT
        self.repo_path = repo_path  # where the node's identity and keys are
        self._names: NameSystem | None = None

    @property
    def names(self) -> NameSystem | None:
        """The node's NameSystem (IPNS with its keys, its DHT and the delegated routers);
        None without a repo to keep keys in. Made on first use: it imports libp2p."""
        if self._names is None and self.repo_path is not None:
            from ipfs_mcp.p2p.names import NamesWhenRunning

            self._names = NamesWhenRunning(
                self._node, self.repo_path,
                routers=[self.routing] if self.routing is not None else [])
        return self._names

    def status(self) -> str:
        return self.slot.status

    async def _node(self) -> P2PNode:
        node = await self.slot.wait()
        if node is None:
            raise NodeNotRunning(f"P2P node is not running ({self.slot.status}); "
                                 f"{HOW_TO_START}")
        return node

    async def find_providers(self, cid: CID, count: int) -> list[ProviderRecord]:
        """DHT providers merged with the delegated routers' (DHT first); a failure of one
        side is an error only when the other found nothing either."""
        node = await self._node()
        dht_error: IpfsMcpError | None = None
        try:
            found = await node.find_providers(cid, count)
        except IpfsMcpError as exc:
            found, dht_error = [], exc
        routed: list[RoutedProvider] = []
        router_errors: dict[str, str] = {}
        if self.routing is not None:
            routing = self.routing
            routed, router_errors = await anyio.to_thread.run_sync(
                lambda: routing.providers(cid, count), abandon_on_cancel=True)
        if dht_error is not None and not routed:
            detail = "; ".join(f"{u}: {e}" for u, e in router_errors.items())
            raise NetworkError(f"{dht_error}{'; delegated routers: ' + detail if detail else ''}"
                               ) from dht_error
        stats = {s.peer_id: s for s in node.peer_stats()}
        out: dict[str, ProviderRecord] = {}
        for info in found[:count]:
            known = stats.get(info.peer_id)
            out[info.peer_id] = ProviderRecord(
                info.peer_id, tuple(info.addrs), score=info.score,
                connected=known.connected if known else False,
                latency=known.latency if known else None)
        for record in routed:
            if record.peer_id not in out:
                known = stats.get(record.peer_id)
                out[record.peer_id] = ProviderRecord(
                    record.peer_id, record.addrs, connected=known.connected if known else False,
                    latency=known.latency if known else None)
        return list(out.values())[:count]

    async def connect(self, multiaddr: str) -> str:
        return await (await self._node()).connect_peer(multiaddr)

    async def announce(self, cid: CID) -> AnnounceReport:
        node = await self._node()
        records = await node.announce_content(cid)
        return AnnounceReport(records, announce_scope(node.stats().routing_table_size,
                                                      self.bootstrap))

    async def snapshot(self) -> NetworkSnapshot:
        node = await self._node()
        stats = node.stats()
        peers = tuple(PeerRecord(
            peer_id=p.peer_id, addrs=tuple(p.addrs), connected=p.connected, agent=p.agent,
            bitswap_protocol=p.bitswap_protocol, latency=p.latency, bytes_sent=p.bytes_sent,
            bytes_received=p.bytes_received, blocks_sent=p.blocks_sent,
            blocks_received=p.blocks_received, bad_blocks=p.bad_blocks, score=p.reputation,
            successes=p.successes, failures=p.failures, success_rate=p.success_rate)
            for p in stats.peers)
        return NetworkSnapshot(
            node=self.name, peer_id=stats.peer_id, addrs=tuple(stats.addrs), peers=peers,
            role=stats.role, dht_mode=stats.dht_mode,
            routing_table_size=stats.routing_table_size,
            reachability=node.peers.reachability.status,
            bandwidth_in=stats.bandwidth.total_in, bandwidth_out=stats.bandwidth.total_out,
            bandwidth_rate_in=stats.bandwidth.rate_in,
            bandwidth_rate_out=stats.bandwidth.rate_out,
            blocks_sent=sum(p.blocks_sent for p in stats.peers),
            blocks_received=sum(p.blocks_received for p in stats.peers),
            network_fetches=stats.cache_misses, network_fetches_ok=stats.handled,
            network_fetches_failed=stats.failed, providers_found=stats.providers_found,
            success_rate=stats.success_rate,
            average_retrieval_time=stats.average_retrieval_time,
            bytes_retrieved=stats.bytes_retrieved, failed_discoveries=stats.failed_discoveries,
            reprovided=stats.reprovided, relay_reservations=stats.relay_reservations,
            relay_circuits=stats.relay_circuits)
