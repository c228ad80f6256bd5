"""Content routing: announcing what we hold and finding who holds a CID.

:class:`ContentRouting` is the small interface the node uses; :class:`KadContentRouting` is
the real implementation on py-libp2p's Kademlia DHT, as Kubo's dual DHT (dual_dht.py): a LAN
half on ``/ipfs/lan/kad/1.0.0``, whose table holds the peers we reach on loopback or a
private network, and a WAN half on ``/ipfs/kad/1.0.0`` (the Amino DHT), whose table holds
those we reach at public addresses. Requests offer a peer both ids in the order Kubo's dual
DHT would use for it (:func:`kad_ids_for`: the LAN id first to a loopback or private peer);
inbound requests on each id are answered by its half, and what the WAN half answers names
only public addresses (dual_routing.py). A lookup asks both halves and merges; provider
records go to both, each carrying the addresses fit for the half the peer took. They are
keyed by the CID's multihash, as in Kubo, so a CIDv0 and a CIDv1 of the same block share
providers. The DHT service itself republishes our records (every 22 h) and expires others'
(after 48 h).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, Protocol, TypeVar

import trio
from libp2p.custom_types import TProtocol
from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.tools.anyio_service import background_trio_service
from multiformats import CID

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.errors import NetworkError

from . import dual_routing
from ._net import NET_ERRORS
from .dual_dht import LanHost, dual_dhts
from .dual_routing import KAD_PROTOCOL, LAN_KAD_PROTOCOL, WanAnswers, is_nearby
from .ipns_dht import guard_ipns_puts
from .periods import Ticker
from .random_walk import RandomWalk
from .reachability import Reachability

log = logging.getLogger(__name__)

T = TypeVar("T")

KAD_PROTOCOLS = (KAD_PROTOCOL, LAN_KAD_PROTOCOL)


def kad_ids_for(hosts: Sequence[str]) -> list[TProtocol]:
    """The DHT ids to offer a peer reached at ``hosts`` (its IP addresses), in order.

    As Kubo's dual DHT speaks: the LAN id first to a peer on loopback or a private network,
    the Amino id first to any other (or one we know no address of). The order matters to a
    Kubo DHT server, which takes the first id it speaks: a record that reaches it on the
    Amino id goes into its WAN DHT, which drops loopback and private addresses, and a Kubo
    that asks its LAN DHT never finds it.
    """
    if hosts and all(is_nearby(host) for host in hosts):
        return [TProtocol(LAN_KAD_PROTOCOL), TProtocol(KAD_PROTOCOL)]
    return [TProtocol(KAD_PROTOCOL), TProtocol(LAN_KAD_PROTOCOL)]


def _serve(host: Any, lan: KadDHT, wan: KadDHT) -> None:
    """Serve each server-mode half's inbound streams on its own id, through the IPNS guard
    (ipns_dht.py); on the Amino id, Kubo's WAN half, every answer also goes out with public
    addresses only (dual_routing.WanAnswers): peers out there learn nothing of the loopback
    and private peers we know, nor of our own private addresses.
    """
    guard_ipns_puts(host, lan, (LAN_KAD_PROTOCOL,))
    guard_ipns_puts(host, wan, (KAD_PROTOCOL,))
    guarded = host.get_mux().handlers.get(TProtocol(KAD_PROTOCOL))
    if wan.mode != DHTMode.SERVER or guarded is None:  # a client serves nothing
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
    """Kubo's dual DHT (dual_dht.py): a LAN and a WAN Kademlia on one host, in server or
    client mode (``dht.mode``).

    ``dht`` is the half of the node's network (the LAN one for ``local``, the WAN one for
    ``public``): names (IPNS), peer lookups and the driven random walk use it. ``other`` is
    the other half (None when built around one DHT). Provider records go to both halves,
    lookups ask both and merge.
    """

    def __init__(self, dht: KadDHT, refresh_period: Ticker | None = None, *,
                 other: KadDHT | None = None) -> None:
        self.dht = dht
        self.other = other
        for half in self.halves:
            # Every provider record we send, the library's republishing included, carries
            # the addresses fit for the DHT half its peer took: none private into the WAN.
            half.provider_store.provide = functools.partial(  # type: ignore[method-assign]
                dual_routing.provide, half)
        # Random walks refresh each table once a period (random_walk.py); the other half's
        # on Kubo's own period.
        self.refresher = RandomWalk(dht, refresh_period, kad_protocols=KAD_PROTOCOLS)
        self.refreshers = [self.refresher] + (
            [RandomWalk(other, kad_protocols=KAD_PROTOCOLS)] if other is not None else [])

    @property
    def halves(self) -> list[KadDHT]:
        return [self.dht] if self.other is None else [self.dht, self.other]

    @classmethod
    def for_host(cls, host: object, *, server: bool, refresh_period: Ticker | None = None,
                 public: bool = False) -> KadContentRouting:
        """Both DHT halves on ``host`` in server (answers queries) or client (only asks)
        mode, the ``public`` network's (WAN) or the local one's (LAN) first, its routing
        table refreshed by a random walk every ``refresh_period`` (10 min)."""
        mode = DHTMode.SERVER if server else DHTMode.CLIENT
        lan, wan = dual_dhts(host, mode)  # type: ignore[arg-type]
        # Inbound streams on each id go to its half, read through a guard in front of the
        # library's handler: IPNS records are validated as they arrive, and an
        # ADD_PROVIDER, which Kubo never reads an answer to, gets none; answers on the
        # Amino id fit the WAN.
        _serve(host, lan, wan)
        return cls(wan, refresh_period, other=lan) if public else \
            cls(lan, refresh_period, other=wan)

    @property
    def server_mode(self) -> bool:
        return self.dht.mode == DHTMode.SERVER

    @asynccontextmanager
    async def _running(self) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for half in self.halves:
                await stack.enter_async_context(background_trio_service(half))
            nursery = await stack.enter_async_context(trio.open_nursery())
            for refresher in self.refreshers:
                nursery.start_soon(refresher.run)
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
        if self.dht.mode == DHTMode.SERVER:
            return
        for half in self.halves:
            half.mode = DHTMode.SERVER
        if self.other is None:  # one DHT for both ids
            guard_ipns_puts(self.dht.host, self.dht, KAD_PROTOCOLS)
        else:
            lan, wan = (self.other, self.dht) if _is_wan(self.dht) else (self.dht, self.other)
            _serve(wan.host, lan, wan)
        log.info("routing: AutoNAT says public; the DHT now serves")

    async def provide(self, cid: CID) -> bool:
        key = bytes(cid.digest)
        sent = await self._on_both(lambda half: half.provider_store.provide(key),
                                   f"announcing {cid_str(cid)}")
        return any(bool(one) for one in sent)

    async def find_providers(self, cid: CID, count: int) -> list[PeerInfo]:
        key = bytes(cid.digest)
        answers = await self._on_both(lambda half: _find_providers(half, key, count),
                                      f"finding providers of {cid_str(cid)}")
        found = [info for answer in answers for info in answer]
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

    async def _on_both(self, work: Callable[[KadDHT], Awaitable[T]], what: str) -> list[T]:
        """``work`` on each half at once; the answers of those that did not fail.

        Raises:
            NetworkError: every half failed (a failure of one is logged).
        """
        answers: list[T] = []
        failures: list[str] = []

        async def on(half: KadDHT) -> None:
            try:
                answers.append(await work(half))
            except NET_ERRORS as exc:
                failures.append(repr(exc))

        async with trio.open_nursery() as nursery:
            for half in self.halves:
                nursery.start_soon(on, half)
        if failures and not answers:
            raise NetworkError(f"{what} failed: {'; '.join(failures)}")
        if failures:
            log.debug("routing: %s failed on one DHT half: %s", what, failures[0])
        return answers

    async def add_peer(self, peer_id: ID, protocols: list[str]) -> bool:
        # Only DHT servers belong in a routing table; a client would be asked and fail.
        # Each half's table takes only the peers it is for (dual_dht.admit_only).
        if not any(proto in protocols for proto in KAD_PROTOCOLS):
            log.debug("routing: %s is not a DHT server (%d protocols)", peer_id, len(protocols))
            return False
        added = False
        for half in self.halves:
            try:
                # The library's own check knows the Amino id only; ours above knows both.
                added |= bool(await half.add_peer(peer_id, skip_server_mode_check=True))
            except NET_ERRORS as exc:
                log.debug("routing: could not add %s: %r", peer_id, exc)
        log.debug("routing: %s %s", "added" if added else "did not add", peer_id)
        return added

    def routing_table_size(self) -> int:
        return len({peer for half in self.halves
                    for peer in half.routing_table.get_peer_ids()})

    def table_sizes(self) -> dict[str, int]:
        """Peers in each half's table, by half (``lan``, ``wan``); {} with one DHT."""
        if self.other is None:
            return {}
        return {("wan" if _is_wan(half) else "lan"): half.routing_table.size()
                for half in self.halves}


def _is_wan(dht: KadDHT) -> bool:
    return not isinstance(dht.host, LanHost)


async def _find_providers(dht: KadDHT, key: bytes, count: int) -> list[PeerInfo]:
    """Providers of ``key`` from one half: its network walk and its own records.

    py-libp2p answers from its local records alone whenever it has any, so after one
    lookup (whose results it caches) it would never ask the network again and new providers
    would stay invisible. The local records are set aside during the network walk, then
    merged back and returned alongside what the walk found.
    """
    store = dht.provider_store
    records = getattr(store, "providers", None)
    held = records.pop(key, None) if isinstance(records, dict) else None
    try:
        found = list(await store.find_providers(key, count))
    finally:
        if held:
            merged = records.setdefault(key, {})  # type: ignore[union-attr]
            for peer, record in held.items():
                merged.setdefault(peer, record)
    if held:
        found = [*found, *store.get_providers(key)]
    return found
