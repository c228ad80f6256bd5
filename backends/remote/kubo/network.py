"""Kubo as the node: the :class:`~ipfs_mcp.backends.network.Network` protocol over a daemon.

Where the backend is Kubo (RPC or CLI), the network tools speak for that daemon: its
identity and addresses (``id``), peers (``swarm/peers``), dials (``swarm/connect``),
provider lookups (``routing/findprovs``), announcements (``routing/provide``) and traffic
(``stats/bw``, ``bitswap/stat``). Nothing of ours runs beside it.

The daemon's calls are blocking (httpx or a child process), so they run in worker threads;
each is bounded by the backend's own timeout. A cancelled caller stops waiting at once
(the thread finishes by itself within that bound).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import anyio.to_thread
from multiformats import CID

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.errors import InvalidInput
from ipfs_mcp.backends.network import AnnounceReport, NetworkSnapshot, PeerRecord, ProviderRecord

_T = TypeVar("_T")


class KuboNode(Protocol):
    """What a Kubo backend exposes of its daemon (both the RPC and the CLI backend)."""

    def id(self, *, timeout: float | None = None) -> dict[str, Any]: ...

    def swarm_peers(self) -> list[tuple[str, str]]: ...

    def swarm_connect(self, multiaddr: str) -> None: ...

    def provide(self, cid: str, *, recursive: bool = False) -> int: ...

    def find_providers(self, cid: str, *, limit: int = 20, timeout: float | None = None
                       ) -> list[Any]: ...

    def stats_bw(self) -> dict[str, Any]: ...

    def bitswap_stat(self) -> dict[str, Any]: ...

    def routing_table_size(self) -> int | None: ...


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


class KuboNetwork:
    """The daemon behind a Kubo backend, as the node the network tools talk to."""

    def __init__(self, node: KuboNode, label: str) -> None:
        self.node = node
        self.name = label

    async def _call(self, fn: Callable[[], _T]) -> _T:
        return await anyio.to_thread.run_sync(fn, abandon_on_cancel=True)

    def status(self) -> str:
        return "running"

    async def find_providers(self, cid: CID, count: int) -> list[ProviderRecord]:
        found = await self._call(lambda: self.node.find_providers(cid_str(cid), limit=count))
        connected = {pid for pid, _ in await self._call(self.node.swarm_peers)}
        return [ProviderRecord(p.peer_id, tuple(p.addrs), connected=p.peer_id in connected)
                for p in found[:count]]

    async def connect(self, multiaddr: str) -> str:
        addr = multiaddr.strip()
        peer = addr.rsplit("/p2p/", 1)[-1] if "/p2p/" in addr else ""
        if not peer or "/" in peer:
            raise InvalidInput(f"{addr!r} has no peer id: the address must end in /p2p/PEER_ID")
        await self._call(lambda: self.node.swarm_connect(addr))
        return peer

    async def announce(self, cid: CID) -> AnnounceReport:
        records = await self._call(lambda: self.node.provide(cid_str(cid)))
        size = await self._call(self.node.routing_table_size)
        scope = (f"Kubo's routing ({size} DHT peers known to the daemon)" if size is not None
                 else "Kubo's routing")
        return AnnounceReport(records=records, scope=scope)

    async def snapshot(self) -> NetworkSnapshot:
        info = await self._call(self.node.id)
        peers = await self._call(self.node.swarm_peers)
        bw = await self._call(self.node.stats_bw)
        bitswap = await self._call(self.node.bitswap_stat)
        table = await self._call(self.node.routing_table_size)
        by_peer: dict[str, list[str]] = {}
        for pid, addr in peers:
            by_peer.setdefault(pid, []).append(addr)
        return NetworkSnapshot(
            node=f"{self.name} ({info.get('AgentVersion', '?')})",
            peer_id=str(info.get("ID", "")),
            addrs=tuple(str(a) for a in info.get("Addresses") or ()),
            peers=tuple(PeerRecord(pid, tuple(addrs)) for pid, addrs in sorted(by_peer.items())),
            role="kubo", routing_table_size=table,
            bandwidth_in=_int(bw.get("TotalIn")), bandwidth_out=_int(bw.get("TotalOut")),
            blocks_sent=_int(bitswap.get("BlocksSent")),
            blocks_received=_int(bitswap.get("BlocksReceived")))
