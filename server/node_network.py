"""Our py-libp2p node as the :class:`~ipfs_mcp.backends.network.Network` of the tools.

The node starts in the background (see :mod:`.state`); until it is up its place is held by
a :class:`~ipfs_mcp.server.state.NodeSlot`. Each call waits for the start, bounded, then
asks the node, or raises :class:`NodeNotRunning` with the reason there is none. Only used
beside the embedded backend: where Kubo is the backend, Kubo is the node.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from multiformats import CID

from ipfs_mcp.backends.errors import NodeNotRunning
from ipfs_mcp.backends.network import (
    AnnounceReport,
    NetworkSnapshot,
    PeerRecord,
    ProviderRecord,
)
from ipfs_mcp.tools.network import HOW_TO_START, announce_scope

if TYPE_CHECKING:
    from ipfs_mcp.p2p.node import P2PNode


class NodeHolder(Protocol):
    status: str

    async def wait(self) -> P2PNode | None: ...


class NodeNetwork:
    name = "ipfs-mcp p2p node"

    def __init__(self, slot: NodeHolder, *, bootstrap: Sequence[str] = ()) -> None:
        self.slot = slot
        self.bootstrap = tuple(bootstrap)

    def status(self) -> str:
        return self.slot.status

    async def _node(self) -> P2PNode:
        node = await self.slot.wait()
        if node is None:
            raise NodeNotRunning(f"P2P node is not running ({self.slot.status}); "
                                 f"{HOW_TO_START}")
        return node

    async def find_providers(self, cid: CID, count: int) -> list[ProviderRecord]:
        node = await self._node()
        found = await node.find_providers(cid, count)
        stats = {s.peer_id: s for s in node.peer_stats()}
        out = []
        for info in found[:count]:
            known = stats.get(info.peer_id)
            out.append(ProviderRecord(info.peer_id, tuple(info.addrs), score=info.score,
                                      connected=known.connected if known else False,
                                      latency=known.latency if known else None))
        return out

    async def connect(self, multiaddr: str) -> str:
        return await (await self._node()).connect_peer(multiaddr)

    async def announce(self, cid: CID) -> AnnounceReport:
        node = await self._node()
        records = await node.announce_content(cid)
        return AnnounceReport(records, announce_scope(node.stats().routing_table_size,
                                                      self.bootstrap))

    async def snapshot(self) -> NetworkSnapshot:
        stats = (await self._node()).stats()
        peers = tuple(PeerRecord(
            peer_id=p.peer_id, addrs=tuple(p.addrs), connected=p.connected, agent=p.agent,
            bitswap_protocol=p.bitswap_protocol, latency=p.latency, bytes_sent=p.bytes_sent,
            bytes_received=p.bytes_received, blocks_sent=p.blocks_sent,
            blocks_received=p.blocks_received, bad_blocks=p.bad_blocks, score=p.reputation)
            for p in stats.peers)
        return NetworkSnapshot(
            node=self.name, peer_id=stats.peer_id, addrs=tuple(stats.addrs), peers=peers,
            role=stats.role, dht_mode=stats.dht_mode,
            routing_table_size=stats.routing_table_size,
            bandwidth_in=stats.bytes_received_total, bandwidth_out=stats.bytes_sent_total,
            blocks_sent=sum(p.blocks_sent for p in stats.peers),
            blocks_received=sum(p.blocks_received for p in stats.peers),
            network_fetches=stats.cache_misses, network_fetches_ok=stats.handled,
            network_fetches_failed=stats.failed, providers_found=stats.providers_found)
