"""The P2P node: a libp2p host, our bitswap engine and Kademlia content routing, together.

::

    P2PNode(host, blockstore, routing, config=..., pinner=...)
      ├── host        py-libp2p host: TCP, noise only, yamux       (host.build_host)
      │               (yamux windows as go-yamux grants them: transport_tuning;
      │               multistream answered in one write: stream_negotiation)
      ├── bitswap     our engine, serving from / storing into the blockstore (a DAG
      │               walk's blocks durable in batches: bitswap.receive_batches)
      ├── routing     ContentRouting (KadContentRouting on the DHT)
      ├── reputation  ProviderReputation, shared with bitswap sessions
      │
      ├── dial_policy the addresses it may dial (dialing.DialPolicy), also on the host
      ├── peers       dial, identify, wait for a peer                (peers.Peers)
      ├── providing   provider records: find (ranked), announce, and the pinned
      │               roots reprovided at start and periodically     (providing.Providing)
      ├── fetching    blocks and DAGs over bitswap sessions          (fetching.Fetching)
      │               (whole DAGs first as CAR streams from peers' /http addresses, with
      │               the ``http`` component the server hands in: fetching.DagStreams)
      ├── protocols   custom /x/ protocol handlers and streams   (protocols.CustomProtocols)
      ├── pubsub      gossipsub, strict signing, bounded feeds, when asked  (pubsub.PubSub)
      └── relay_service  Circuit Relay v2 hop side, for a master or when asked
                      (relay.service.RelayService)

The node itself only runs these parts and answers for them: its methods are the ones the
server calls, each handed to the part that does the work.

Use it as an async context manager inside the process's one trio loop::

    async with open_node(repo, NodeConfig()) as node:
        await node.connect_peer("/ip4/127.0.0.1/tcp/4001/p2p/12D3Koo...")
        report = await node.fetch_dag(cid)

Everything the node starts runs in one nursery that lives for the ``async with`` body
(:class:`.loop.NodeLoop`, shared by the parts): if a background task fails, the body is
cancelled and the error is raised, never swallowed. On exit the host is closed explicitly,
which releases its sockets (py-libp2p's ``run`` alone leaves one per connection in
CLOSE_WAIT).

:meth:`P2PNode.fetcher` hands out the ``BlockFetcher`` that the router calls, from worker
threads, when a block is not local (:class:`.thread_fetcher.NodeFetcher`). Fetches are
cancel-safe: see :mod:`.fetching`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from pathlib import Path
from types import TracebackType

import trio
from libp2p.abc import IHost
from libp2p.kad_dht.kad_dht import KadDHT
from libp2p.peer.id import ID
from multiaddr import Multiaddr
from multiformats import CID

from ipfs_mcp.backends.errors import InvalidInput, IpfsMcpError

from ._net import NET_ERRORS
from .auto_relay import reserve_while_private
from .bitswap.engine import Bitswap, BlockStore
from .bitswap.session import FetchReport
from .config import NodeConfig, Role
from .dialing import DialPolicy
from .discovery import DIAL_TIMEOUT as MDNS_DIAL_TIMEOUT
from .discovery import MdnsDialer
from .fetching import DagStreams, Fetching, Pinner
from .host import build_host, is_http_addr
from .identity import load_or_create_identity
from .loop import NodeLoop
from .names import NodeNames
from .network_presets import preset_for
from .observed_addrs import advertise_confirmed
from .peers import Peers
from .protocols import DEFAULT_MAX_STREAMS, CustomProtocols, ProtocolStream, StreamHandler
from .providing import PinnedRoots, ProviderInfo, Providing
from .pubsub import PubSub, PubSubLimits
from .pubsub_announce import Announcements
from .relay.client import RelayClient
from .relay.holepunch import HolePunch
from .relay.service import RelayService
from .reputation import ProviderReputation
from .routing import ContentRouting, KadContentRouting
from .stats import BandwidthMeter, NodeStats, PeerStat, meter_connections, peer_stats
from .thread_fetcher import NodeFetcher

log = logging.getLogger(__name__)

__all__ = ["NodeFetcher", "NodeStats", "P2PNode", "PeerStat", "ProviderInfo", "open_node"]


class P2PNode:
    """One IPFS peer. Construct it from parts, or with :func:`open_node` from a repo."""

    def __init__(self, host: IHost, blockstore: BlockStore, routing: ContentRouting, *,
                 config: NodeConfig | None = None,
                 reputation: ProviderReputation | None = None,
                 bitswap: Bitswap | None = None,
                 pinner: Pinner | None = None,
                 dial_policy: DialPolicy | None = None,
                 http: DagStreams | None = None,
                 pinned: PinnedRoots | None = None,
                 pubsub: PubSubLimits | None = None,
                 names_path: Path | None = None) -> None:
        self.host = host
        # Installed before the host listens or dials, so every connection is counted.
        self.bandwidth: BandwidthMeter = meter_connections(host.get_network())
        self.pinned = pinned  # what the reprovider announces (None: nothing)
        self.names_path = names_path  # where our keys and IPNS records are (None: no names)
        self.blockstore = blockstore
        self.routing = routing
        self.config = config or NodeConfig()
        self.reputation = reputation or ProviderReputation()
        self.bitswap = bitswap or Bitswap(host, blockstore, reputation=self.reputation,
                                          config=self.config.bitswap)
        self.pinner = pinner
        # The host applies it to every dial (host.build_host); connect_peer checks it
        # first, to refuse with a reason.
        self.dial_policy = dial_policy or self.config.dial_policy()
        self.loop = NodeLoop()
        # Circuit Relay v2 client: slots on the configured relays, their /p2p-circuit
        # addresses advertised, relayed connections accepted and dialled (peers.Peers).
        self.relay = RelayClient(host, self.config.relays)
        self.relay.advertise()
        self.peers = Peers(host, routing, self.loop, self.dial_policy,
                           dial_circuit=self.relay.dial)
        self.providing = Providing(host, blockstore, routing, self.reputation, self.config,
                                   self.loop)
        self.fetching = Fetching(host, blockstore, self.bitswap, self.config, self.loop,
                                 self.peers, self.providing, pinner, http)
        self.protocols = CustomProtocols(host)
        # Where peers see us, advertised once two agree (or AutoNAT says public); and
        # DCUtR over relayed connections, offering those addresses.
        advertise_confirmed(host, self.peers.observed)
        self.holepunch = HolePunch(
            host, self.peers.observed,
            identified=lambda peer, timeout: self.peers.wait_for_peer(str(peer),
                                                                      timeout=timeout))
        # Gossipsub only when asked (as Kubo's Pubsub.Enabled): built before the host
        # listens, so its protocols are offered from the first connection.
        self.pubsub: PubSub | None = PubSub(host, pubsub) if pubsub is not None else None
        self._pubsub_starting = trio.Lock()
        self.announcements: Announcements | None = None  # the opt-in "now providing" topic
        # The Circuit Relay v2 hop service, for a master or when asked (config.serves_relay).
        self.relay_service: RelayService | None = (
            RelayService(host) if self.config.serves_relay else None)
        self._stack: AsyncExitStack | None = None

    # -- lifecycle ----------------------------------------------------------------------
    async def __aenter__(self) -> P2PNode:
        if self._stack is not None:
            raise IpfsMcpError("the node is already running")
        stack = AsyncExitStack()
        try:
            listen = [Multiaddr(a) for a in self.config.listen_addrs]
            await stack.enter_async_context(self.host.run(listen))
            stack.push_async_callback(self._close_host)
            await stack.enter_async_context(self.routing.running())
            if self.pubsub is not None:
                await stack.enter_async_context(self.pubsub.running())
            nursery = await stack.enter_async_context(trio.open_nursery())
            # Runs first on exit: stop our tasks before the routing and the host go away.
            stack.callback(nursery.cancel_scope.cancel)
            await nursery.start(self.bitswap.run)
            await nursery.start(self.holepunch.run)
            await nursery.start(self.relay.run)
            if self.relay_service is not None:
                await nursery.start(self.relay_service.run)
            network = self.host.get_network()
            network.register_notifee(self.peers.watcher)
            stack.callback(network.remove_notifee, self.peers.watcher)
            if self.config.mdns:
                stack.enter_context(MdnsDialer(
                    self.host.get_id(), nursery,
                    lambda info: self.peers.connect(info, MDNS_DIAL_TIMEOUT),
                    self.host.get_connected_peers))
            self.loop.open(nursery)
            if self.pinned is not None:
                nursery.start_soon(self.providing.reprovide_forever, self.pinned)
            self._republish_names(nursery)
            if self.config.dht_server_once_public and isinstance(self.routing,
                                                                 KadContentRouting):
                nursery.start_soon(self.routing.serve_once_public, self.peers.reachability)
            if preset_for(self.config.network).relay_client:  # reserve while AutoNAT: private
                nursery.start_soon(reserve_while_private, self.host, self.peers.reachability,
                                   self.relay)
            # Bootstrap peers may have connected while the host started, before we listened.
            for peer_id in self.host.get_connected_peers():
                self.peers.on_connected(peer_id)
        except BaseException:
            self.loop.close()
            await stack.aclose()
            raise
        self._stack = stack
        log.info("p2p node %s listening on %s (%s, DHT %s)", self.peer_id,
                 ", ".join(self.addrs), self.config.role.value,
                 "server" if self.routing.server_mode else "client")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> bool | None:
        stack, self._stack = self._stack, None
        self.loop.close()
        if stack is None:
            return None
        try:
            return await stack.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            # Our nursery wraps errors in groups. Give the caller the one real error
            # (theirs, or a background task's) rather than a group of one.
            real = [leaf for leaf in _leaves(group) if not isinstance(leaf, trio.Cancelled)]
            if exc is not None and real == [exc]:
                return False
            if len(real) == 1:
                raise real[0] from None
            raise

    def _republish_names(self, nursery: trio.Nursery) -> None:
        """Keep the IPNS records published from this repo alive while the node runs (they
        are on disk: any node over the repo re-signs those near their end of validity)."""
        dht = getattr(self.routing, "dht", None)
        if self.names_path is None or not isinstance(dht, KadDHT):
            return
        names = NodeNames.for_host(self.host, dht, self.names_path)
        nursery.start_soon(partial(names.republish_forever,
                                   dht_peers=self.routing.routing_table_size))

    async def _close_host(self) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            try:
                await self.host.close()
            except NET_ERRORS as exc:
                log.debug("p2p: closing the host: %r", exc)

    async def run(self, *, task_status: trio.TaskStatus[P2PNode] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Run until cancelled: ``node = await nursery.start(node.run)``."""
        async with self:
            task_status.started(self)
            await trio.sleep_forever()

    @property
    def running(self) -> bool:
        return self._stack is not None

    # -- identity and peers (peers.Peers) -----------------------------------------------
    @property
    def peer_id(self) -> str:
        return str(self.host.get_id())

    @property
    def addrs(self) -> list[str]:
        """Our libp2p listen addresses, each ending in ``/p2p/<our id>``."""
        return [str(a) for a in self.host.get_addrs() if not is_http_addr(a)]

    @property
    def http_addrs(self) -> list[str]:
        """Where we serve our blocks over HTTP (``config.http_addrs``), advertised beside
        :attr:`addrs`."""
        return list(self.config.http_addrs)

    async def connect_peer(self, addr: str | Multiaddr, *, timeout: float = 15.0) -> str:
        """Dial ``/ip4/.../tcp/.../p2p/<id>`` and wait until it is identified.

        Raises:
            InvalidInput: not a peer multiaddr.
            DialRefused: the address is outside the dial scope (nothing was dialled).
            NetworkError: the dial failed or timed out.
            BackendUnavailable: the node is not running.
        """
        return await self.peers.connect_peer(addr, timeout=timeout)

    async def wait_for_peer(self, peer_id: str | None = None, *, timeout: float = 30.0
                            ) -> str:
        """Wait until ``peer_id`` (or any peer) is connected and identified; its id.

        Raises:
            NetworkError: no such peer within ``timeout`` seconds.
            BackendUnavailable: the node is not running.
        """
        return await self.peers.wait_for_peer(peer_id, timeout=timeout)

    def connected_peers(self) -> list[ID]:
        return self.peers.connected()

    # -- content routing (providing.Providing) ------------------------------------------
    async def find_providers(self, cid: CID | str, count: int | None = None,
                             timeout: float | None = None) -> list[ProviderInfo]:
        """Providers of ``cid`` from the DHT, best first by reputation.

        Raises:
            NetworkError: the lookup failed or timed out.
            BackendUnavailable: the node is not running.
        """
        return await self.providing.find_providers(cid, count, timeout)

    find_content = find_providers

    async def get_optimal_providers(self, cid: CID | str, count: int = 5
                                    ) -> list[ProviderInfo]:
        """The ``count`` best providers of ``cid`` (DHT providers, ranked by reputation).

        Raises:
            NetworkError: the lookup failed or timed out.
        """
        return await self.providing.get_optimal_providers(cid, count)

    def update_provider_stats(self, peer: str | ID, success: bool,
                              latency: float | None = None, nbytes: int = 0) -> None:
        self.reputation.update_provider_stats(peer, success, latency, nbytes)

    async def announce_content(self, cid: CID | str, *, recursive: bool | None = None) -> int:
        """Announce ``cid`` (and, if ``recursive``, every block under it); how many CIDs.

        Raises:
            BlockNotFound: a block to announce is not local.
            DagTooLarge: the local DAG exceeds the walk's bounds.
            NetworkError: an announcement failed or timed out.
        """
        if self.announcements is not None:  # first: a listening master may fetch at once
            await self.announcements.say(cid)
        return await self.providing.announce_content(cid, recursive=recursive)

    # -- retrieval (fetching.Fetching) --------------------------------------------------
    async def fetch_block(self, cid: CID | str, *, timeout: float | None = None) -> bytes:
        """One block, from the blockstore or from peers (then verified and stored).

        Raises:
            BlockNotFound: no peer had it within ``timeout``.
            BackendUnavailable: the node is not running.
        """
        return await self.fetching.fetch_block(cid, timeout=timeout)

    retrieve_block = fetch_block

    async def fetch_dag(self, cid: CID | str, *, pin: bool = False,
                        timeout: float | None = None,
                        providers: Iterable[str | ID] = ()) -> FetchReport:
        """Make the whole DAG under ``cid`` local; announce it per the role; pin if asked.

        Raises:
            BlockNotFound: some block could not be found; the error names it.
            TooLarge: the DAG exceeds the role's cache budget.
            BackendUnavailable: the node is not running, or has no pin store and ``pin``.
        """
        return await self.fetching.fetch_dag(cid, pin=pin, timeout=timeout,
                                             providers=providers)

    retrieve_content = fetch_dag

    def fetcher(self) -> NodeFetcher:
        """The ``BlockFetcher`` the router calls from worker threads on a local miss."""
        return NodeFetcher(self.loop, self.fetching, self.peers)

    # -- custom protocols (protocols.CustomProtocols) -------------------------------------
    def register_protocol_handler(self, protocol: str, handler: StreamHandler, *,
                                  max_streams: int = DEFAULT_MAX_STREAMS) -> None:
        """Hand each stream a peer opens with ``protocol`` (a ``/x/`` id, as Kubo's
        ``ipfs p2p`` uses) to ``handler``, at most ``max_streams`` at once.

        Raises:
            InvalidInput: not a ``/x/`` id, one of the node's own protocols, or taken.
        """
        self.protocols.register(protocol, handler, max_streams=max_streams)

    def unregister_protocol_handler(self, protocol: str) -> None:
        """Raises: InvalidInput: no custom handler serves ``protocol``."""
        self.protocols.unregister(protocol)

    async def open_protocol_stream(self, peer: str | Multiaddr, protocol: str, *,
                                   timeout: float = 15.0) -> ProtocolStream:
        """A stream to ``peer`` (a peer id, or a multiaddr ending in ``/p2p/<id>``,
        dialled first within the dial scope) speaking ``protocol``.

        Raises:
            InvalidInput: a bad peer or protocol id.
            DialRefused: the address is outside the dial scope.
            NetworkError: the peer cannot be reached or does not speak ``protocol``.
            BackendUnavailable: the node is not running.
        """
        self.loop.nursery()  # refuses while the node is not running
        text = str(peer)
        if text.startswith("/"):
            text = await self.peers.connect_peer(text, timeout=timeout)
        try:
            peer_id = ID.from_base58(text)
        except ValueError as exc:
            raise InvalidInput(f"{text!r} is not a peer id") from exc
        return await self.protocols.open(peer_id, protocol, timeout=timeout)

    # -- pubsub (pubsub.PubSub) ------------------------------------------------------------
    async def start_pubsub(self, limits: PubSubLimits | None = None) -> PubSub:
        """The node's gossipsub, started now if the node runs without it (the peers
        already connected are greeted; ``limits`` apply only to a new one).

        Raises:
            BackendUnavailable: the node is not running.
        """
        async with self._pubsub_starting:
            if self.pubsub is None:
                pubsub = PubSub(self.host, limits)
                await self.loop.nursery().start(self._run_pubsub, pubsub)
                self.pubsub = pubsub
            return self.pubsub

    async def start_announcements(self, topic: str) -> Announcements:
        """Say on ``topic`` each root this node announces; as a ``master``, also prefetch
        the roots others announce there (from their author first, verified as any fetch).

        Raises:
            InvalidInput: a bad topic.
            BackendUnavailable: the node is not running.
        """
        if self.announcements is None:
            pubsub = await self.start_pubsub()
            master = self.config.role == Role.MASTER
            announcements = Announcements(pubsub, topic, self._prefetch if master else None)
            await self.loop.nursery().start(announcements.run)
            self.announcements = announcements
        return self.announcements

    async def _prefetch(self, root: CID, provider: str) -> None:
        await self.fetch_dag(root, providers=[provider])

    @staticmethod
    async def _run_pubsub(pubsub: PubSub, *,
                          task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                          ) -> None:
        async with pubsub.running():
            task_status.started()
            await trio.sleep_forever()

    # -- stats --------------------------------------------------------------------------
    def peer_stats(self, peer_id: str | ID | None = None) -> list[PeerStat]:
        return peer_stats(self.host, self.peers, self.bitswap, self.reputation, peer_id)

    def stats(self) -> NodeStats:
        fetched, provided = self.fetching.counters, self.providing.counters
        relayed = self.relay_service.counts() if self.relay_service is not None else None
        tables = (self.routing.table_sizes() if isinstance(self.routing, KadContentRouting)
                  else {})
        return NodeStats(
            peer_id=self.peer_id,
            addrs=tuple(self.addrs) if self.running else (),
            role=self.config.role.value,
            dht_mode="server" if self.routing.server_mode else "client",
            cache_misses=fetched.misses,
            handled=fetched.handled,
            failed=fetched.failed,
            success_rate=fetched.handled / fetched.misses if fetched.misses else None,
            bytes_retrieved=fetched.bytes_retrieved,
            average_retrieval_time=(fetched.retrieval_time / fetched.handled
                                    if fetched.handled else None),
            providers_found=provided.providers_found,
            failed_discoveries=provided.failed_discoveries,
            announced=provided.announced,
            failed_announcements=provided.failed_announcements,
            routing_table_size=self.routing.routing_table_size(),
            bytes_sent_total=self.bitswap.bytes_out,
            bytes_received_total=self.bitswap.bytes_in,
            peers=tuple(self.peer_stats()),
            bandwidth=self.bandwidth.snapshot(),
            reprovide_rounds=provided.reprovide_rounds,
            reprovided=provided.reprovided,
            relay_reservations=relayed.reservations if relayed is not None else None,
            relay_circuits=relayed.circuits if relayed is not None else None,
            dht_lan_peers=tables.get("lan"), dht_wan_peers=tables.get("wan"),
        )


def _leaves(group: BaseExceptionGroup) -> Iterable[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


@asynccontextmanager
async def open_node(repo: object, config: NodeConfig | None = None, *,
                    blockstore: BlockStore | None = None,
                    http: DagStreams | None = None,
                    pubsub: PubSubLimits | None = None) -> AsyncIterator[P2PNode]:
    """Build a node for ``repo`` (a ``backends.repo.Repo``) and run it for the block.

    The identity comes from ``repo.path/identity.key``; blocks are served from and stored
    into ``repo.blocks`` (or ``blockstore``); ``retrieve_content(pin=True)`` pins in the repo.
    ``http``: how DAGs are fetched from peers that serve HTTP (None: bitswap only).
    The repo's pins (``repo.pins``) are reprovided while the node runs.
    ``pubsub``: run gossipsub with these bounds (None: no pubsub, as Kubo by default).
    """
    config = config or NodeConfig()
    key_pair = load_or_create_identity(Path(repo.path))  # type: ignore[attr-defined]
    dial_policy = config.dial_policy()
    host = build_host(key_pair, config, dial_policy)
    routing = KadContentRouting.for_host(
        host, server=config.profile.dht_server and not config.dht_server_once_public,
        public=dial_policy.scope == "public")  # names go to the WAN half if it can reach it
    node = P2PNode(host, blockstore or repo.blocks, routing,  # type: ignore[attr-defined]
                   config=config, pinner=getattr(repo, "pin", None), dial_policy=dial_policy,
                   http=http, pinned=_pinned_roots(getattr(repo, "pins", None)),
                   pubsub=pubsub, names_path=Path(repo.path))  # type: ignore[attr-defined]
    async with node:
        yield node


def _pinned_roots(pins: Iterable[object] | None) -> PinnedRoots | None:
    """The roots of a pin store's pins (``backends.repo.pins.PinStore``), for reproviding."""
    if pins is None:
        return None
    store = pins

    def roots() -> list[tuple[CID, bool]]:
        return [(pin.cid, pin.type == "recursive") for pin in store]  # type: ignore[attr-defined]

    return roots
