"""The two Kademlia instances of Kubo's dual DHT, on one host.

::

    half  protocol id           its table admits a peer we reach at   records it sends carry
    LAN   /ipfs/lan/kad/1.0.0   a loopback or private address         every address of ours
    WAN   /ipfs/kad/1.0.0       a public address (or a DNS name)      our public ones only

Each half is py-libp2p's ``KadDHT`` with its own routing table and provider store. The LAN
half sees the host through :class:`LanHost`, which speaks the LAN id wherever the library
names the Amino one (its streams offer the Amino id second, so a nearby py-libp2p peer that
knows only that one is still asked). Each table admits only the peers its half is for
(:func:`admit_only`), however the library meets them (an inbound stream, a lookup's
answer, a random walk), judged by where we reach them: the remote end of our connection,
or else the addresses we know. A peer reachable both ways sits in both tables.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from libp2p.abc import IHost
from libp2p.custom_types import TProtocol
from libp2p.kad_dht.kad_dht import KadDHT
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo

from ipfs_mcp.backends.core.ip_scope import host_of_multiaddr

from .dual_routing import KAD_PROTOCOL, LAN_KAD_PROTOCOL, is_far, is_nearby

log = logging.getLogger(__name__)


class LanHost:
    """``host`` as the LAN half sees it: the Amino id read as the LAN id."""

    def __init__(self, host: IHost) -> None:
        self._host = host

    def __getattr__(self, name: str) -> Any:
        return getattr(self._host, name)

    async def new_stream(self, peer_id: ID, protocol_ids: Sequence[TProtocol]) -> Any:
        ids = [_lan(p) for p in protocol_ids]
        if TProtocol(LAN_KAD_PROTOCOL) in ids:
            ids.append(TProtocol(KAD_PROTOCOL))
        return await self._host.new_stream(peer_id, ids)

    def set_stream_handler(self, protocol_id: TProtocol, handler: Any) -> None:
        self._host.set_stream_handler(_lan(protocol_id), handler)

    def remove_stream_handler(self, protocol_id: TProtocol) -> None:
        self._host.remove_stream_handler(_lan(protocol_id))


def _lan(protocol: TProtocol) -> TProtocol:
    return TProtocol(LAN_KAD_PROTOCOL) if str(protocol) == KAD_PROTOCOL else protocol


def nearby(hosts: Sequence[str]) -> bool:
    """Whether we reach a peer at any loopback or private address (the LAN table's)."""
    return any(is_nearby(h) for h in hosts)


def far(hosts: Sequence[str]) -> bool:
    """Whether we reach a peer at any public address or DNS name (the WAN table's)."""
    return any(is_far(h) for h in hosts)


def reach_hosts(host: IHost, peer: ID, addrs: Sequence[object] = ()) -> list[str]:
    """Where we reach ``peer``: our connections' remote ends, or else ``addrs``, or else
    the addresses the peerstore holds."""
    hosts: list[str] = []
    for conn in host.get_network().get_connections(peer):
        remote = getattr(conn.muxed_conn, "get_remote_address", lambda: None)()
        if remote:
            hosts.append(str(remote[0]))
    if hosts:
        return hosts
    if not addrs:
        try:
            addrs = host.get_peerstore().addrs(peer)
        except Exception:  # the peerstore raises for a peer it knows no address of
            addrs = []
    return [h for h in (host_of_multiaddr(str(a)) for a in addrs) if h]


def admit_only(dht: KadDHT, host: IHost, fits: Callable[[Sequence[str]], bool]) -> None:
    """Let ``dht``'s routing table take a peer only when ``fits`` where we reach it."""
    table = dht.routing_table
    add = table.add_peer

    async def add_if_it_fits(peer_obj: PeerInfo | ID, **kwargs: Any) -> bool:
        peer = peer_obj.peer_id if isinstance(peer_obj, PeerInfo) else peer_obj
        addrs = peer_obj.addrs if isinstance(peer_obj, PeerInfo) else ()
        if not fits(reach_hosts(host, peer, addrs)):
            return False
        return bool(await add(peer_obj, **kwargs))

    table.add_peer = add_if_it_fits  # type: ignore[method-assign]


def dual_dhts(host: IHost, mode: Any) -> tuple[KadDHT, KadDHT]:
    """The LAN and the WAN half on ``host``, each admitting only its own peers."""
    lan = KadDHT(LanHost(host), mode)  # type: ignore[arg-type]
    wan = KadDHT(host, mode)
    admit_only(lan, host, nearby)
    admit_only(wan, host, far)
    return lan, wan
