"""``/routing/v1`` answered from our own node: its provider store and DHT, its peerstore, and
our own record for the blocks we hold.

:class:`NodeProviders` is the :class:`~.source.ProviderLookup` that ``ipfs-mcp serve
--gateway`` hands the gateway. For a CID whose block is here, our own record comes first:
our peer id, with protocol ``transport-ipfs-gateway-http`` and this gateway's ``/http`` (or,
with TLS, ``/tls/http``) addresses, and, while the P2P node runs, ``transport-bitswap``
with its libp2p addresses. Then come the providers the node's DHT knows or finds (never
ourselves). ``/routing/v1/peers/{id}`` answers our own addresses, or what the node's
peerstore, routing table and DHT walk know of the peer; ``/routing/v1/ipns/{name}`` the
record of the name the node's DHT holds.

The node starts in the background and may never run (``--no-p2p``, a failed start): it is
reached through a :class:`NodeHolder` and waited for, bounded; without it, only our own
gateway record is answered. Every lookup bounds its own time (the endpoint's bound is the
last resort, and it would drop our own record with the rest).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
from multiformats import CID

from ipfs_mcp.backends.errors import IpfsMcpError

from .source import PeerRecord, ProviderRecord

if TYPE_CHECKING:
    from ipfs_mcp.p2p.node import P2PNode

__all__ = ["BITSWAP", "GATEWAY_HTTP", "BlockHas", "NodeHolder", "NodeProviders",
           "http_multiaddr", "http_multiaddrs", "repo_peer_id"]

log = logging.getLogger("ipfs_mcp.gateway")

BITSWAP = "transport-bitswap"
GATEWAY_HTTP = "transport-ipfs-gateway-http"
NODE_WAIT = 5.0  # seconds a lookup waits for a node still starting
# Seconds a DHT walk may take before we answer with what we have: under the 15 s Kubo 0.43
# gives each delegated router, so a slow walk never costs a client our own record.
DHT_TIMEOUT = 10.0


class NodeHolder(Protocol):
    """Our P2P node as it becomes available (the server's ``NodeSlot``): None when it is
    not running, or did not come up within ``timeout``."""

    async def wait(self, timeout: float = ...) -> P2PNode | None: ...


class BlockHas(Protocol):
    """Whether a block is here (the repo's blockstore); called from a worker thread."""

    def has(self, cid: CID) -> bool: ...


def http_multiaddr(url: str) -> str | None:
    """The multiaddr of a gateway URL (``http://127.0.0.1:8080`` ->
    ``/ip4/127.0.0.1/tcp/8080/http``; ``https`` -> ``.../tls/http``), or None for a wildcard
    bind (0.0.0.0, ::), which names no address a client could dial (see
    :func:`http_multiaddrs`)."""
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port
    if host is None or port is None or parts.scheme not in ("http", "https"):
        return None
    if host in ("0.0.0.0", "::"):
        return None
    if ":" in host:
        family = "ip6"
    elif host.replace(".", "").isdigit():
        family = "ip4"
    else:
        family = "dns"
    tail = "tls/http" if parts.scheme == "https" else "http"
    return f"/{family}/{host}/tcp/{port}/{tail}"


def _interface_hosts(ipv6: bool) -> list[str]:
    """This machine's addresses: IPv4, and IPv6 too for a ``::`` bind (link-local ones
    left out: they need a zone no record can carry)."""
    import ifaddr

    hosts: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                hosts.append(ip.ip)
            elif ipv6 and not ip.ip[0].lower().startswith("fe80"):
                hosts.append(f"[{ip.ip[0]}]")
    return list(dict.fromkeys(hosts))


def http_multiaddrs(urls: Sequence[str]) -> tuple[str, ...]:
    """The multiaddrs of the gateway's bound URLs; a wildcard bind (``--gateway-public``
    on 0.0.0.0 or ::) stands for each of this machine's addresses."""
    out: list[str] = []
    for url in urls:
        parts = urlsplit(url)
        if parts.hostname in ("0.0.0.0", "::") and parts.port is not None:
            for host in _interface_hosts(ipv6=parts.hostname == "::"):
                out.append(http_multiaddr(f"{parts.scheme}://{host}:{parts.port}") or "")
        else:
            out.append(http_multiaddr(url) or "")
    return tuple(dict.fromkeys(a for a in out if a))


def repo_peer_id(repo_path: Path) -> str:
    """The peer id of the repo's node identity (created on first use, as the node would):
    our records carry it whether or not the P2P node runs. Blocking (imports libp2p)."""
    from libp2p.peer.id import ID

    from ipfs_mcp.p2p.identity import load_or_create_identity

    return ID.from_pubkey(load_or_create_identity(repo_path).public_key).to_base58()


def _without_peer(addr: str) -> str:
    """A record's addresses name no peer: the record's ID does."""
    head, sep, _ = addr.partition("/p2p/")
    return head if sep else addr


def _transports(node: P2PNode, peer_id: str) -> tuple[str, ...]:
    """``transport-bitswap`` when the peer told us (identify) it speaks bitswap; else
    nothing, which the spec reads as "unknown"."""
    from libp2p.peer.id import ID

    try:
        protocols = node.host.get_peerstore().get_protocols(ID.from_base58(peer_id))
    except Exception:  # the peerstore raises for peers it never saw
        return ()
    return (BITSWAP,) if any(str(p).startswith("/ipfs/bitswap") for p in protocols) else ()


class NodeProviders:
    """A :class:`~.source.ProviderLookup` over our node and our repo.

    Args:
        node: the node, as it comes up (None while it never will).
        blocks: what we hold; a CID whose block is here gets our own record.
        peer_id: our peer id (:func:`repo_peer_id`), known even without a node.
        http_addrs: this gateway's multiaddrs; set once it is bound (:meth:`serve_at`).
    """

    def __init__(self, node: NodeHolder, blocks: BlockHas, peer_id: str, *,
                 http_addrs: Sequence[str] = (), dht_timeout: float = DHT_TIMEOUT) -> None:
        self.node = node
        self.blocks = blocks
        self.peer_id = peer_id
        self.http_addrs = tuple(http_addrs)
        self.dht_timeout = dht_timeout

    def serve_at(self, urls: Sequence[str]) -> None:
        """The gateway's bound URLs (port 0 resolved), announced as ``/http`` addresses."""
        self.http_addrs = http_multiaddrs(urls)

    def _own(self, node: P2PNode | None) -> ProviderRecord:
        addrs: list[str] = list(self.http_addrs)
        if node is not None and node.running:
            # The node's own retrieval gateway (an /http multiaddr), as DHT records carry it.
            addrs.extend(a for a in node.http_addrs if a not in addrs)
        protocols: list[str] = [GATEWAY_HTTP] if addrs else []
        if node is not None and node.running:
            addrs.extend(_without_peer(a) for a in node.addrs)
            protocols.append(BITSWAP)
        return ProviderRecord(self.peer_id, tuple(addrs), tuple(protocols))

    async def find_providers(self, cid: CID, limit: int) -> list[ProviderRecord]:
        node = await self.node.wait(NODE_WAIT)
        out: list[ProviderRecord] = []
        if await anyio.to_thread.run_sync(self.blocks.has, cid):
            own = self._own(node)
            if own.addrs:
                out.append(own)
        if node is None or not node.running:
            return out[:limit]
        try:
            found = await node.find_providers(cid, limit, timeout=self.dht_timeout)
        except IpfsMcpError as exc:  # a failed or slow walk: answer what we have
            log.info("routing: DHT providers of %s: %s", cid, exc)
            found = []
        for info in found:
            if info.peer_id != self.peer_id:
                out.append(ProviderRecord(info.peer_id,
                                          tuple(_without_peer(a) for a in info.addrs),
                                          _transports(node, info.peer_id)))
        return out[:limit]

    async def find_peer(self, peer_id: str) -> list[PeerRecord]:
        node = await self.node.wait(NODE_WAIT)
        if peer_id == self.peer_id:
            own = self._own(node)
            return [PeerRecord(own.peer_id, own.addrs, own.protocols)] if own.addrs else []
        if node is None or not node.running:
            return []
        from libp2p.peer.id import ID

        from ipfs_mcp.p2p._net import NET_ERRORS
        from ipfs_mcp.p2p.routing import KadContentRouting

        if not isinstance(node.routing, KadContentRouting):
            return []
        info = None
        # The routing table, then the peerstore, then a DHT walk (py-libp2p's order).
        with anyio.move_on_after(self.dht_timeout):
            try:
                info = await node.routing.dht.find_peer(ID.from_base58(peer_id))
            except NET_ERRORS as exc:
                log.info("routing: DHT peer %s: %r", peer_id, exc)
        if info is None or not info.addrs:
            return []
        return [PeerRecord(peer_id, tuple(_without_peer(str(a)) for a in info.addrs),
                           _transports(node, peer_id))]

    async def ipns_record(self, name: str) -> bytes | None:
        """The record of ``name`` our node's DHT holds (one it published or was given);
        none while the node is not running."""
        node = await self.node.wait(NODE_WAIT)
        from ipfs_mcp.backends.core.ipns import dht_key
        from ipfs_mcp.p2p.ipns_dht import held_record
        from ipfs_mcp.p2p.routing import KadContentRouting

        if node is None or not node.running or not isinstance(node.routing, KadContentRouting):
            return None
        record = held_record(node.routing.dht, dht_key(name))
        return record.raw if record is not None else None
