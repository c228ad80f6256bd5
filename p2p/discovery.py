"""Dialling the peers that mDNS finds on the local network.

py-libp2p's mDNS service (``new_host(enable_mDNS=True)``, on zeroconf) announces our
listen addresses and records the peers it hears in the peerstore, but it dials nobody:
it only emits a "peer discovered" event on the process-wide ``peerDiscovery`` bus, from
zeroconf's own thread. :class:`MdnsDialer` subscribes to that bus while the node runs and
hands each discovery to the node's trio loop, which connects to (and identifies) the peer
as :meth:`P2PNode.connect_peer` would. A process may run several nodes; each dialer
ignores its own node and peers already connected.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio
from libp2p.discovery.events.peerDiscovery import peerDiscovery
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
