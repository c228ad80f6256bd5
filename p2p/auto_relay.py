"""Relay slots found on our own while AutoNAT says private: the public preset's relay client.

As Kubo's AutoRelay: a node that peers cannot dial back reserves a Circuit Relay v2 slot on
relays among the peers it is connected to (those whose identify offers
:data:`~.relay.wire.HOP_PROTOCOL`: Kubo with ``Swarm.RelayService``, our ``master``), until
it holds ``wanted`` reservations; the relay client (relay/client.py) then renews them and
advertises their ``/p2p-circuit`` addresses. Nothing is dialled for it: only peers already
connected are asked.

Bounded: it looks again at each AutoNAT answer (at most ``Reachability.max_asked`` in the
node's life) and asks at most ``max_tries`` relays in all.
"""

from __future__ import annotations

import logging
from typing import Protocol

from libp2p.abc import IHost
from libp2p.peer.id import ID

from ipfs_mcp.backends.errors import IpfsMcpError

from ._net import NET_ERRORS
from .reachability import Reachability
from .relay.wire import HOP_PROTOCOL

log = logging.getLogger(__name__)

WANTED = 2  # reservations to hold: go-libp2p's AutoRelay default (WithNumRelays)
MAX_TRIES = 8  # relays asked in the node's life


class Reserving(Protocol):
    """The relay client's side this needs (relay.client.RelayClient)."""

    def reservations(self) -> dict[ID, object]: ...

    async def reserve(self, relay: ID) -> object: ...


def offers_hop(host: IHost, peer: ID) -> bool:
    """Whether ``peer`` said in identify that it relays (Circuit Relay v2 hop)."""
    try:
        protocols = host.get_peerstore().get_protocols(peer)
    except Exception:  # the peerstore raises for a peer it never identified
        return False
    return str(HOP_PROTOCOL) in [str(p) for p in protocols]


async def reserve_while_private(host: IHost, reachability: Reachability, relay: Reserving,
                                *, wanted: int = WANTED, max_tries: int = MAX_TRIES) -> None:
    """Whenever AutoNAT says private and fewer than ``wanted`` reservations are held,
    reserve on connected relays not asked yet; returns once AutoNAT asks no more or
    ``max_tries`` relays were asked."""
    asked: set[ID] = set()
    while True:
        if reachability.status == "private" and len(relay.reservations()) < wanted:
            await _reserve_on_connected(host, relay, asked, wanted, max_tries)
        if reachability.asked.count >= reachability.max_asked or len(asked) >= max_tries:
            return
        await reachability.asked.reach(reachability.asked.count + 1)


async def _reserve_on_connected(host: IHost, relay: Reserving, asked: set[ID], wanted: int,
                                max_tries: int) -> None:
    for peer in list(host.get_connected_peers()):
        if len(relay.reservations()) >= wanted or len(asked) >= max_tries:
            return
        if peer in asked or not offers_hop(host, peer):
            continue
        asked.add(peer)
        try:
            await relay.reserve(peer)
        except (IpfsMcpError, *NET_ERRORS) as exc:  # type: ignore[misc]  # RelayError: ours
            log.info("p2p: no reservation on relay %s: %s", peer, exc)
        else:
            log.info("p2p: AutoNAT says private; reserved a slot on relay %s", peer)
