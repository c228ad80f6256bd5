"""Content routing: announcing what we hold and finding who holds a CID.

:class:`ContentRouting` is the small interface the node uses; :class:`KadContentRouting` is
the real implementation on py-libp2p's Kademlia DHT, served under both protocol ids Kubo
uses: ``/ipfs/kad/1.0.0`` (the Amino DHT) and ``/ipfs/lan/kad/1.0.0`` (its LAN DHT: the same
wire format, and the only one Kubo and Helia speak with peers on private or loopback
addresses, since their public DHT keeps such peers out). Our node keeps one routing table
for both: a peer speaking either joins it, our requests offer both ids in the order Kubo's
dual DHT would use for that peer (:func:`kad_ids_for`: the LAN id first to a loopback or
private peer), and inbound requests on either are answered alike. Provider records are keyed by the CID's multihash, as in Kubo, so a CIDv0
and a CIDv1 of the same block share providers. The provider records we send carry only the
addresses fit for the half the peer took (dual_routing.py: no private address into the WAN). The DHT service itself republishes our
records (every 22 h) and expires others' (after 48 h).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

import trio
from libp2p.custom_types import TProtocol
from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.tools.anyio_service import background_trio_service
from multiformats import CID

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.core.ip_scope import Scope, scope_of_ip
from ipfs_mcp.backends.errors import NetworkError

from . import dual_routing
from ._net import NET_ERRORS
from .dual_routing import KAD_PROTOCOL, LAN_KAD_PROTOCOL, WanAnswers
from .ipns_dht import guard_ipns_puts
from .periods import Ticker
from .random_walk import RandomWalk
from .reachability import Reachability

log = logging.getLogger(__name__)

KAD_PROTOCOLS = (KAD_PROTOCOL, LAN_KAD_PROTOCOL)


def kad_ids_for(hosts: Sequence[str]) -> list[TProtocol]:
    """The DHT ids to offer a peer reached at ``hosts`` (its IP addresses), in order.

    As Kubo's dual DHT speaks: the LAN id first to a peer on loopback or a private network,
    the Amino id first to any other (or one we know no address of). The order matters to a
    Kubo DHT server, which takes the first id it speaks: a record that reaches it on the
    Amino id goes into its WAN DHT, which drops loopback and private addresses, and a Kubo
    that asks its LAN DHT never finds it.
    """
    if hosts and all(_nearby(host) for host in hosts):
        return [TProtocol(LAN_KAD_PROTOCOL), TProtocol(KAD_PROTOCOL)]
    return [TProtocol(KAD_PROTOCOL), TProtocol(LAN_KAD_PROTOCOL)]


def _nearby(host: str) -> bool:
    try:
        return scope_of_ip(host) <= Scope.PRIVATE
    except ValueError:  # a name, not an address: it may be anywhere
        return False


def _serve_both_ids(host: Any, dht: KadDHT) -> None:
    """Serve a server-mode DHT's inbound streams on both ids (the library registers the
    Amino id only), each through the IPNS guard (ipns_dht.py); on the Amino id, Kubo's WAN
    half, every answer also goes out with public addresses only (dual_routing.WanAnswers):
    peers out there learn nothing of the loopback and private peers we know, nor of ours.
    """
    guard_ipns_puts(host, dht, KAD_PROTOCOLS)
    guarded = host.get_mux().handlers.get(TProtocol(KAD_PROTOCOL))
    if guarded is None:  # a client serves nothing
        return

    async def answer_for_the_wan(stream: Any) -> None:
        await guarded(WanAnswers(stream))

    host.set_stream_handler(TProtocol(KAD_PROTOCOL), answer_for_the_wan)


class ContentRouting(Protocol):
    def running(self) -> AbstractAsyncContextManager[None]:
        """Run background work (table refresh, republishing) for the duration."""
        ...

    async def provide(self, cid: CID) -> bool:
        """Announce that we hold ``cid``; True if at least the local record was stored.

        Raises:
            NetworkError: the announcement failed.
        """
        ...

    async def find_providers(self, cid: CID, count: int) -> list[PeerInfo]:
        """Up to ``count`` providers of ``cid`` (never ourselves).

        Raises:
            NetworkError: the lookup failed.
        """
        ...

    async def add_peer(self, peer_id: ID, protocols: list[str]) -> bool:
        """Tell the router about a connected peer and the protocols it speaks."""
        ...

    def routing_table_size(self) -> int: ...

    @property
    def server_mode(self) -> bool: ...


class KadContentRouting:
    """Kademlia, in server or client mode (``dht.mode``)."""

    def __init__(self, dht: KadDHT, refresh_period: Ticker | None = None) -> None:
        self.dht = dht
        # Every provider record we send, the library's republishing included, carries the
        # addresses fit for the DHT half its peer took: no private address into the WAN.
        dht.provider_store.provide = functools.partial(  # type: ignore[method-assign]
            dual_routing.provide, dht)
        # Random walks refresh the routing table once a period (random_walk.py).
        self.refresher = RandomWalk(dht, refresh_period, kad_protocols=KAD_PROTOCOLS)

    @classmethod
    def for_host(cls, host: object, *, server: bool,
                 refresh_period: Ticker | None = None) -> KadContentRouting:
        """A DHT on ``host`` in server (answers queries) or client (only asks) mode, its
        routing table refreshed by a random walk every ``refresh_period`` (10 min)."""
        mode = DHTMode.SERVER if server else DHTMode.CLIENT
        dht = KadDHT(host, mode)  # type: ignore[arg-type]
        # Inbound streams on both ids, each read through a guard in front of the library's
        # handler: IPNS records are validated as they arrive, and an ADD_PROVIDER, which
        # Kubo never reads an answer to, gets none; answers on the Amino id fit the WAN.
        _serve_both_ids(host, dht)
        return cls(dht, refresh_period)

    @property
    def server_mode(self) -> bool:
        return self.dht.mode == DHTMode.SERVER

    @asynccontextmanager
    async def _running(self) -> AsyncIterator[None]:
        async with background_trio_service(self.dht), trio.open_nursery() as nursery:
            nursery.start_soon(self.refresher.run)
            try:
                yield
            finally:
                nursery.cancel_scope.cancel()

    def running(self) -> AbstractAsyncContextManager[None]:
        return self._running()

    async def serve_once_public(self, reachability: Reachability) -> None:
        """Switch a client-mode DHT to server mode once AutoNAT says peers can dial us
        back (Kubo's "auto" mode); bounded by the peers AutoNAT asks at most."""
        while reachability.status != "public":
            if reachability.asked.count >= reachability.max_asked:
                return  # nobody left to ask: stay a client
            await reachability.asked.reach(reachability.asked.count + 1)
        if self.dht.mode != DHTMode.SERVER:
            self.dht.mode = DHTMode.SERVER
            _serve_both_ids(self.dht.host, self.dht)
            log.info("routing: AutoNAT says public; the DHT now serves")

    async def provide(self, cid: CID) -> bool:
        try:
            return bool(await self.dht.provider_store.provide(bytes(cid.digest)))
        except NET_ERRORS as exc:
            raise NetworkError(f"announcing {cid_str(cid)} failed: {exc}") from exc

    async def find_providers(self, cid: CID, count: int) -> list[PeerInfo]:
        key = bytes(cid.digest)
        store = self.dht.provider_store
        # py-libp2p answers from its local records alone whenever it has any, so after
        # one lookup (whose results it caches) it would never ask the network again and
        # new providers would stay invisible. The local records are set aside during the
        # network walk, then merged back and returned alongside what the walk found.
        records = getattr(store, "providers", None)
        held = records.pop(key, None) if isinstance(records, dict) else None
        try:
            found = await store.find_providers(key, count)
        except NET_ERRORS as exc:
            raise NetworkError(f"finding providers of {cid_str(cid)} failed: {exc}") from exc
        finally:
            if held:
                merged = records.setdefault(key, {})  # type: ignore[union-attr]
                for peer, record in held.items():
                    merged.setdefault(peer, record)
        if held:
            found = [*found, *store.get_providers(key)]
        me = self.dht.host.get_id()
        unique: dict[ID, PeerInfo] = {}
        for info in found:
            if info.peer_id == me:
                continue
            known = unique.get(info.peer_id)
            if known is None:
                unique[info.peer_id] = PeerInfo(info.peer_id, list(info.addrs))
            else:
                known.addrs.extend(a for a in info.addrs if a not in known.addrs)
        return list(unique.values())[:count]

    async def add_peer(self, peer_id: ID, protocols: list[str]) -> bool:
        # Only DHT servers belong in the routing table; a client would be asked and fail.
        if not any(proto in protocols for proto in KAD_PROTOCOLS):
            log.debug("routing: %s is not a DHT server (%d protocols)", peer_id, len(protocols))
            return False
        try:
            # The library's own check knows the Amino id only; ours above knows both.
            added = bool(await self.dht.add_peer(peer_id, skip_server_mode_check=True))
        except NET_ERRORS as exc:
            log.debug("routing: could not add %s: %r", peer_id, exc)
            return False
        log.debug("routing: %s %s", "added" if added else "did not add", peer_id)
        return added

    def routing_table_size(self) -> int:
        return self.dht.get_routing_table_size()
