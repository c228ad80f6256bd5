"""Dialling the peers that mDNS finds on the local network.

py-libp2p's mDNS service (``new_host(enable_mDNS=True)``, on zeroconf) announces our
listen addresses and records the peers it hears in the peerstore, but it dials nobody:
it only emits a "peer discovered" event on the process-wide ``peerDiscovery`` bus, from
zeroconf's own thread. :class:`MdnsDialer` subscribes to that bus while the node runs and
hands each discovery to the node's trio loop, which connects to (and identifies) the peer
as :meth:`P2PNode.connect_peer` would. A process may run several nodes; each dialer
ignores its own node and peers already connected.

The library announces its listen addresses as they are, so a node listening on
``/ip4/0.0.0.0/...`` would tell its LAN to dial 0.0.0.0, that is, themselves.
:func:`announce_interface_addrs` makes it announce each interface's address instead, as
go-libp2p does; loopback is left out, since no other machine can dial it.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable, Iterable

import ifaddr
import trio
from libp2p.discovery.events.peerDiscovery import peerDiscovery
from libp2p.host.basic_host import BasicHost
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo

from ipfs_mcp.backends.errors import NetworkError

log = logging.getLogger(__name__)

# Bounds one dial to a discovered peer; mDNS repeats its announcements, so a peer missed
# now is met at the next one.
DIAL_TIMEOUT = 10.0


class MdnsDialer:
    """Connects to peers from the discovery bus, on ``nursery``'s loop.

    ``connect(info)`` dials and identifies one peer within :data:`DIAL_TIMEOUT`, raising
    ``NetworkError`` when it cannot; ``me`` and ``connected()`` say whom to skip.
    """

    def __init__(self, me: ID, nursery: trio.Nursery,
                 connect: Callable[[PeerInfo], Awaitable[None]],
                 connected: Callable[[], list[ID]]) -> None:
        self._me = me
        self._nursery = nursery
        self._connect = connect
        self._connected = connected
        self._token = trio.lowlevel.current_trio_token()
        self._dialling: set[ID] = set()
        self._active = False

    def __enter__(self) -> MdnsDialer:
        self._active = True
        peerDiscovery.register_peer_discovered_handler(self._discovered)
        return self

    def __exit__(self, *exc: object) -> None:
        self._active = False
        peerDiscovery.unregister_peer_discovered_handler(self._discovered)

    def _discovered(self, info: PeerInfo) -> None:
        # Called from zeroconf's thread (or, for bootstrap peers, from the loop itself):
        # run_sync_soon is safe from both.
        try:
            self._token.run_sync_soon(self._schedule, info)
        except trio.RunFinishedError:
            pass  # the node's loop has ended

    def _schedule(self, info: PeerInfo) -> None:
        peer = info.peer_id
        if not self._active or peer == self._me or peer in self._dialling:
            return
        if peer in self._connected():
            return
        self._dialling.add(peer)
        self._nursery.start_soon(self._dial, info)

    async def _dial(self, info: PeerInfo) -> None:
        try:
            await self._connect(info)
            log.info("p2p: connected to %s, found by mDNS", info.peer_id)
        except NetworkError as exc:  # an unreachable LAN peer is normal; mDNS repeats
            log.info("p2p: mDNS peer %s unreachable: %s", info.peer_id, exc)
        finally:
            self._dialling.discard(info.peer_id)


def interface_ipv4s() -> list[str]:
    """This machine's IPv4 addresses, loopback and link-local left out."""
    out: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if not isinstance(ip.ip, str):  # IPv6 entries are (address, flow, scope)
                continue
            addr = ipaddress.IPv4Address(ip.ip)
            if not (addr.is_loopback or addr.is_link_local) and ip.ip not in out:
                out.append(ip.ip)
    return out


def expand_unspecified(addrs: Iterable[str], ips: list[str]) -> list[str]:
    """``addrs`` with each ``/ip4/0.0.0.0/...`` replaced by one address per ``ips``."""
    out: list[str] = []
    for addr in addrs:
        if addr.startswith("/ip4/0.0.0.0/"):
            rest = addr[len("/ip4/0.0.0.0"):]
            out.extend(f"/ip4/{ip}{rest}" for ip in ips)
        else:
            out.append(addr)
    return list(dict.fromkeys(out))


def announce_interface_addrs(host: BasicHost) -> None:
    """Make the host's mDNS service announce interface addresses, not 0.0.0.0."""
    if host.mDNS is None:
        return
    broadcaster = host.mDNS.broadcaster
    resolve = broadcaster._resolve_host_addrs

    def resolve_expanded() -> list[str]:
        return expand_unspecified(resolve(), interface_ipv4s())

    broadcaster._resolve_host_addrs = resolve_expanded  # type: ignore[method-assign]
