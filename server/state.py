"""The server's lifespan: settings, the Router, and the node, built once.

Everything a tool needs lives in one :class:`ServerState`, reached through the request
context (``ctx.request_context.lifespan_context``). Static resources and completions get no
request context from the SDK, so the lifespan also publishes the state on a
:class:`Runtime` that the server object holds.

* ``state.router`` is the :class:`~ipfs_mcp.backends.router.Router`: the selected backend
  with read fallback to the other working ones; every tool goes through it.
* ``state.network`` is the node the network tools speak for. Where the backend runs its own
  node (Kubo), that is the backend's ``network`` and no P2P node of ours starts. Beside
  the embedded repo it is our py-libp2p node (:class:`~.node_network.NodeNetwork`).

Our P2P node starts in the background (importing libp2p alone takes most of a second), so
the server answers ``initialize`` without waiting for it. Until it is up, the node's place
is held by a :class:`NodeSlot`: the router gets the slot as its block fetcher, and tools
that need the node wait for it, bounded.

Beside it the node serves its blocks over HTTP, read-only, where it listens (the trustless
gateway, :func:`.gateway.wiring.serve_http_retrieval`), advertises that ``/http`` address, and
fetches whole DAGs from peers that advertise one as verified CAR streams
(:class:`PeerCarStreams`, handed to the node as its ``http`` component) before bitswap.

The gateway (``serve --gateway``) is bound before the MCP transport enters the lifespan, and
reads through the lifespan's Router: the lifespan publishes it in the same slot, and the
gateway's block reads wait for it, bounded. One Router per process.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Collection, Iterator, Sequence
from concurrent.futures import CancelledError
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import httpx
from multiformats import CID

from ipfs_mcp.backends.core.cids import VerifiedBlock, cid_str
from ipfs_mcp.backends.core.reputation import ProviderReputation
from ipfs_mcp.backends.errors import (
    BackendUnavailable,
    BlockNotFound,
    IpfsMcpError,
    OperationCancelled,
    TooLarge,
)
from ipfs_mcp.backends.network import Network
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.backends.retrieval.car_stream import (
    BlockPut,
    CarStreams,
    ReceivingStore,
    VerifiedBatch,
)
from ipfs_mcp.backends.retrieval.delegated_routing import DelegatedRouting, DelegatedSource
from ipfs_mcp.backends.retrieval.sources import NamedSource, RetrievalSources
from ipfs_mcp.backends.retrieval.trustless_gateway import TrustlessGateways
from ipfs_mcp.backends.router import Router, Selection, custom_backends
from ipfs_mcp.tools.models import ServedGateway
from ipfs_mcp.tools.names import NameResolver, name_resolver
from ipfs_mcp.tools.roots import AllowedRoots

from .config import ServerSettings
from .gateway.node_routing import http_multiaddrs
from .gateway.wiring import (
    PEERLESS_DELEGATED,
    TRUSTLESS,
    retrieval_gateway,
    serve_http_retrieval,
)
from .node_names import SlotNames
from .node_network import NodeNetwork

if TYPE_CHECKING:
    from ipfs_mcp.p2p.node import NodeFetcher, P2PNode

log = logging.getLogger("ipfs_mcp.server")

RECENT_ERRORS = 20
NODE_START_TIMEOUT = 30.0  # seconds a tool (or a cache miss) waits for the node to come up


class NodeSlot:
    """The P2P node as it becomes available, and the router's ``BlockFetcher`` meanwhile;
    likewise the lifespan's Router, and the gateway's block reader meanwhile.

    ``status`` is "starting", "running", or why there is no node. A fetch from a worker
    thread waits for the start to finish, then goes to the node or reports the miss with
    the reason no peer was asked. A block read (:meth:`block_get_from`) waits for the
    lifespan to publish its Router (:meth:`publish_router`), then reads through it.
    """

    def __init__(self) -> None:
        self.node: P2PNode | None = None
        self.status = "starting"
        self._settled = threading.Event()  # set once the node is up or will not be
        self._settled_async = anyio.Event()
        self.router: Router | None = None
        self.router_status = "not built yet (the server's lifespan has not started)"
        self._router_settled = threading.Event()

    def settle(self, node: P2PNode | None, status: str) -> None:
        self.node = node
        self.status = status
        self._settled.set()
        self._settled_async.set()

    async def wait(self, timeout: float = NODE_START_TIMEOUT) -> P2PNode | None:
        with anyio.move_on_after(timeout):
            await self._settled_async.wait()
        return self.node

    def _node_for_fetch(self, cid: CID) -> NodeFetcher:
        self._settled.wait(NODE_START_TIMEOUT)
        node = self.node
        if node is None:
            raise BlockNotFound(cid_str(cid), f"the local blockstore (no peer was asked: the "
                                              f"P2P node is {self.status})")
        return node.fetcher()

    def connect(self, addr: str) -> str:
        """Dial ``addr`` from a worker thread (a provider a delegated router named).

        Raises: NetworkError: the dial failed; BackendUnavailable: no node to dial with.
        """
        self._settled.wait(NODE_START_TIMEOUT)
        node = self.node
        if node is None:
            raise BackendUnavailable(f"cannot dial {addr}: the P2P node is {self.status}")
        return node.fetcher().connect(addr)

    def fetch_block(self, cid: CID, cancel: threading.Event | None = None) -> bytes:
        """Raises: BlockNotFound: not local and no peer had it (or no node to ask);
        OperationCancelled: ``cancel`` was set (the node stopped asking)."""
        try:
            return self._node_for_fetch(cid).fetch_block(cid, cancel)
        except CancelledError as exc:
            raise OperationCancelled(f"fetching {cid_str(cid)} was cancelled") from exc

    def fetch_dag(self, root: CID, cancel: threading.Event | None = None) -> None:
        """Raises: BlockNotFound: some block could not be found anywhere;
        OperationCancelled: ``cancel`` was set (the node stopped asking)."""
        try:
            self._node_for_fetch(root).fetch_dag(root, cancel)
        except CancelledError as exc:
            raise OperationCancelled(f"fetching {cid_str(root)} was cancelled") from exc

    def publish_router(self, router: Router | None, status: str = "running") -> None:
        """The lifespan's Router from now on (None: gone, ``status`` says why)."""
        self.router = router
        self.router_status = status
        self._router_settled.set()

    def block_get_from(self, cid: str, *, sources: Collection[str] = ()) -> bytes:
        """The lifespan's Router's :meth:`~Router.block_get_from`, once it is published
        (called from worker threads).

        Raises:
            BackendUnavailable: no Router within the start bound, or it has stopped.
            BlockNotFound, and the rest of ``Router.block_get_from``.
        """
        self._router_settled.wait(NODE_START_TIMEOUT)
        router = self.router
        if router is None:
            raise BackendUnavailable(f"no backend to read {cid} from: the server's Router is "
                                     f"{self.router_status}")
        return router.block_get_from(cid, sources=sources)


@dataclass
class ServerState:
    settings: ServerSettings
    router: Router
    roots: AllowedRoots
    network: Network | None  # the node the network tools speak for (ours, or Kubo)
    network_why: str  # why there is no network, when there is none
    slot: NodeSlot = field(default_factory=NodeSlot)
    gateways: TrustlessGateways | None = None  # trustless gateways asked on a miss
    routing: DelegatedRouting | None = None  # delegated routers (--delegated-router)
    discovered: DelegatedSource | None = None  # fetches from the providers they name
    gateway_url: str | None = None  # our own gateway (--gateway), once bound
    # IPNS through the node's NameSystem (when it has one), DNSLink over the settings' DNS.
    names: NameResolver = field(default_factory=lambda: name_resolver(None, ()))
    started: float = field(default_factory=time.monotonic)
    errors: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT_ERRORS))

    @property
    def sources(self) -> list[str]:
        """The retrieval sources a local miss asks (for the health resource)."""
        sources = self.router.sources
        return sources.names() if sources is not None else []

    @property
    def served_gateway(self) -> ServedGateway:
        """Our own gateway as the health resource shows it."""
        return ServedGateway(enabled=self.settings.gateway is not None
                             or self.gateway_url is not None,
                             url=self.gateway_url, recursive=self.settings.gateway_recursive)

    @property
    def selection(self) -> Selection:
        return self.router.selection()

    @property
    def uptime(self) -> float:
        return time.monotonic() - self.started

    @property
    def node_status(self) -> str:
        return self.network.status() if self.network is not None else self.network_why

    def note_error(self, tool: str, message: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.errors.append(f"{stamp} {tool}: {message}")


def _name_system(network: Network | None, slot: NodeSlot, settings: ServerSettings) -> object:
    """Who publishes and resolves IPNS names: our node (in the slot) when it is the node,
    else the backend's node if it does names (Kubo), else nobody."""
    if isinstance(network, NodeNetwork):
        return SlotNames(slot, settings.backend.repo_path,
                         routers=[network.routing] if network.routing is not None else [])
    return network


class Runtime:
    """Where the running lifespan publishes its state for handlers without a context."""

    def __init__(self) -> None:
        self.state: ServerState | None = None

    def get(self) -> ServerState:
        if self.state is None:
            raise BackendUnavailable("the server is not running (no lifespan)")
        return self.state


class _Counted:
    """The blockstore as CAR streams fill it: what was stored, and a stop (``cancel``)
    once more than ``max_bytes`` would be."""

    def __init__(self, store: BlockPut, max_bytes: int | None, cancel: threading.Event
                 ) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.cancel = cancel
        self.blocks = self.nbytes = 0
        self.over = False
        self._lock = threading.Lock()

    def has(self, cid: CID) -> bool:
        return self.store.has(cid)

    def get(self, cid: CID) -> bytes:
        return self.store.get(cid)

    def _admit(self, size: int) -> bool:
        """Count a block of ``size`` bytes in, or stop the fetch once it would be over."""
        with self._lock:
            if self.max_bytes is not None and self.nbytes + size > self.max_bytes:
                self.over = True
                self.cancel.set()
                return False
            self.blocks += 1
            self.nbytes += size
        return True

    def put(self, cid: CID, data: bytes) -> bool:
        return self._admit(len(data)) and self.store.put(cid, data)

    @contextlib.contextmanager
    def receiving(self) -> Iterator[_CountedBatch]:
        """The store's batch of verified blocks (no second hash, a sync per batch), counted
        as ``put`` counts; a store without one gets each block through ``put``."""
        if not isinstance(self.store, ReceivingStore):
            yield _CountedBatch(self, None)
            return
        with self.store.receiving() as batch:
            yield _CountedBatch(self, batch)


class _CountedBatch:
    """One receive's batch, each verified block counted before it is stored."""

    def __init__(self, counted: _Counted, batch: VerifiedBatch | None) -> None:
        self.counted = counted
        self.batch = batch

    def put_verified(self, block: VerifiedBlock) -> None:
        if not self.counted._admit(len(block.data)):
            return
        if self.batch is None:
            self.counted.store.put(block.cid, block.data)
        else:
            self.batch.put_verified(block)

    def flush(self) -> None:
        if self.batch is not None:
            self.batch.flush()


class PeerCarStreams:
    """The node's HTTP path (``p2p.fetching.DagStreams``): whole DAGs from the ``/http``
    addresses peers advertise, as verified CAR streams (:class:`CarStreams`). A provider
    that lies (bytes that are not the block, a block the walk did not expect) is not asked
    again while the node runs; one that fails sorts after the others."""

    def __init__(self, store: BlockPut, client: httpx.Client | None = None) -> None:
        self.store = store
        self._owns_client = client is None
        self.client = client or httpx.Client(follow_redirects=False)
        self._reputation = ProviderReputation()
        self.dropped: dict[str, str] = {}  # liars, and why
        self._lock = threading.Lock()  # the reputation is not thread-safe

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def fetch_dag(self, root: CID, urls: Sequence[str], cancel: threading.Event,
                  max_bytes: int | None) -> tuple[int, int, int | None]:
        """The blocks and bytes stored, and the DAG's blocks once it is complete (None:
        something is left for bitswap).

        Raises: TooLarge: more than ``max_bytes`` to store; the rest as CarStreams."""
        store = _Counted(self.store, max_bytes, cancel)
        dag_blocks: int | None = None
        try:
            received = CarStreams(_PeerUrls(self, urls), store, self.client).receive(
                root, cancel)
            dag_blocks = received.dag_blocks
        except OperationCancelled:
            if not store.over:
                raise
        if store.over:
            raise TooLarge(f"fetching {cid_str(root)} would store more than the node's "
                           f"cache budget of {max_bytes} bytes")
        return store.blocks, store.nbytes, dag_blocks


class _PeerUrls:
    """One fetch's HTTP providers (``car_stream.Providers``), scored across fetches."""

    def __init__(self, streams: PeerCarStreams, urls: Sequence[str]) -> None:
        self.streams = streams
        self.urls = list(urls)

    def ranked(self) -> list[str]:
        with self.streams._lock:
            live = [u for u in self.urls if u not in self.streams.dropped]
            return [str(u) for u in self.streams._reputation.get_optimal_providers(live)]

    def succeeded(self, url: str, seconds: float, nbytes: int) -> None:
        with self.streams._lock:
            self.streams._reputation.update_provider_stats(url, True, seconds, nbytes)

    def failed(self, url: str) -> None:
        with self.streams._lock:
            self.streams._reputation.update_provider_stats(url, False)

    def lied(self, url: str, why: str) -> None:
        log.warning("HTTP provider %s is no longer asked: %s", url, why)
        with self.streams._lock:
            self.streams.dropped[url] = why
            self.streams._reputation.record_bad_block(url)


def _node_config(settings: ServerSettings) -> Any:
    from ipfs_mcp.p2p import NodeConfig

    # The network's preset gives the listen addresses, bootstrap peers and dial scope that
    # the user did not give (network_presets.py).
    return NodeConfig.for_network(settings.network, role=settings.role,
                                  relay_service=settings.relay_service,
                                  relays=settings.relays,
                                  listen_addrs=settings.listen, bootstrap=settings.bootstrap,
                                  mdns=settings.mdns, dial_scope=settings.dial_scope,
                                  named_peers=settings.named_peers)


async def run_node(settings: ServerSettings, repo: Repo, slot: NodeSlot) -> None:
    """Run the P2P node until cancelled, publishing it in ``slot``.

    A node the user asked for (``--listen``/``--bootstrap``/``--network public``) that
    cannot start stops the
    server with the reason; the default node (127.0.0.1, no network) only logs it.

    Raises:
        BackendUnavailable: an explicitly configured node failed to start.
    """
    if not settings.start_p2p:
        slot.settle(None, "disabled (--no-p2p or IPFS_MCP_P2P=0)")
        return
    http = PeerCarStreams(repo.blocks)
    # The HTTP retrieval gateway, bound first so that the node advertises its address.
    async with anyio.create_task_group() as served:
        try:
            # Imported in a worker thread: it takes most of a second, and meanwhile the
            # loop keeps answering (initialize, tools/list, local reads).
            p2p = await anyio.to_thread.run_sync(__import__, "ipfs_mcp.p2p.node")
            del p2p
            from ipfs_mcp.p2p.node import open_node

            config = _node_config(settings)
            if settings.http_retrieval:
                urls = await serve_http_retrieval(
                    served, settings, retrieval_gateway(settings, repo.blocks),
                    config.listen_addrs)
                config = replace(config, http_addrs=http_multiaddrs(urls))
            async with open_node(repo, config, http=http) as node:
                if not node.addrs:  # py-libp2p logs a failed listen instead of raising it
                    raise BackendUnavailable(
                        f"not listening on any of {', '.join(config.listen_addrs)}")
                if settings.announce_topic:  # before "running": no add goes unsaid
                    await node.start_announcements(settings.announce_topic)
                slot.settle(node, "running")
                log.info("P2P node %s on %s", node.peer_id,
                         ", ".join([*node.addrs, *node.http_addrs]))
                await anyio.sleep_forever()
        except (IpfsMcpError, OSError, ImportError, ValueError) as exc:
            reason = f"failed to start: {exc}"
            slot.settle(None, reason)
            if settings.listen or settings.bootstrap or settings.network != "local":
                raise BackendUnavailable(f"the P2P node {reason}") from exc
            log.warning("P2P node %s; serving without it", reason)
        finally:
            served.cancel_scope.cancel()
            http.close()
            if slot.node is not None:
                slot.settle(None, "stopped")


@dataclass
class _Retrieval:
    """The retrieval sources the lifespan built (and closes)."""

    gateways: TrustlessGateways | None = None
    discovered: DelegatedSource | None = None
    peerless: DelegatedSource | None = None

    def close(self) -> None:
        for source in (self.gateways, self.discovered, self.peerless):
            if source is not None:
                source.close()  # their HTTP clients (and the gateways routers named)


def _add_sources(sources: RetrievalSources, settings: ServerSettings, repo: Repo,
                 slot: NodeSlot, delegated: DelegatedRouting | None) -> _Retrieval:
    """A miss in the embedded repo asks every source at once: our node's bitswap, the
    trustless gateways and the delegated routers' providers; each stores what it verified
    into the repo."""
    built = _Retrieval()
    timeout = settings.backend.ipfs_api_timeout
    if settings.start_p2p:
        sources.add(NamedSource("p2p", slot))
    if settings.trustless_gateways:
        built.gateways = TrustlessGateways(settings.trustless_gateways, repo.blocks,
                                           timeout=timeout)
        sources.add(NamedSource(TRUSTLESS, built.gateways))
    if delegated is not None:
        built.discovered = DelegatedSource(delegated, repo.blocks,
                                           node=slot if settings.start_p2p else None,
                                           timeout=timeout)
        sources.add(NamedSource("delegated-routing", built.discovered))
        if settings.gateway_recursive:
            # The recursive gateway fetches for anonymous clients over HTTP only: the
            # providers' gateways, never a peer dialled with our node.
            built.peerless = DelegatedSource(delegated, repo.blocks, timeout=timeout)
            sources.add(NamedSource(PEERLESS_DELEGATED, built.peerless,
                                    only_when_named=True))
    return built


@contextlib.asynccontextmanager
async def lifespan_state(settings: ServerSettings, runtime: Runtime | None = None, *,
                         slot: NodeSlot | None = None, gateway_url: str | None = None
                         ) -> AsyncIterator[ServerState]:
    """Build the Router (with the node slot as its fetcher), pick the node, start ours if
    it is the node, yield; on exit stop the node and close every backend.

    ``slot`` (default: a new one) is shared when another part of the process, the
    gateway, answers from the same node and reads through the same Router (published in
    the slot while the lifespan runs). ``gateway_url`` is that gateway's address, for the
    health resource."""
    slot = slot if slot is not None else NodeSlot()
    sources = RetrievalSources()  # filled below once the backend is known
    router = Router.from_settings(settings.backend, sources=sources, custom=custom_backends())
    retrieval = _Retrieval()
    delegated = (DelegatedRouting(settings.delegated_routers)
                 if settings.delegated_routers else None)
    try:
        selection = await anyio.to_thread.run_sync(router.selection)
    except BaseException as exc:
        slot.publish_router(None, f"unavailable: {exc}")
        router.close()
        raise
    roots = AllowedRoots.for_server(settings.allow_roots, hub_cache=settings.backend.hf_hub_cache,
                                    repo=settings.backend.repo_path,
                                    client_roots=settings.client_roots)
    repo = router.repo
    network: Network | None = router.network
    why = ""
    if network is not None:
        slot.settle(None, f"not started: {network.name} is the node")
    elif repo is not None:
        network = NodeNetwork(slot, bootstrap=settings.bootstrap, routing=delegated,
                              repo_path=repo.path)
    if repo is not None and router.network is None:
        retrieval = _add_sources(sources, settings, repo, slot, delegated)
    else:
        why = (f"backend {selection.backend} has no node of its own and no embedded repo "
               "for ours to serve")
        slot.settle(None, why)
    state = ServerState(settings=settings, router=router, roots=roots, network=network,
                        network_why=why, slot=slot, gateways=retrieval.gateways,
                        routing=delegated, discovered=retrieval.discovered,
                        gateway_url=gateway_url,
                        names=name_resolver(_name_system(network, slot, settings),
                                            settings.dns_resolvers, ns_map=settings.ns_map,
                                            repo_path=repo.path if repo else None))
    log.info("backend %s (%s); %s", selection.backend, selection.reason, roots.describe())
    slot.publish_router(router)
    try:
        async with anyio.create_task_group() as tg:
            if repo is not None and router.network is None:
                tg.start_soon(run_node, settings, repo, slot)
            if runtime is not None:
                runtime.state = state
            try:
                yield state
            finally:
                if runtime is not None and runtime.state is state:
                    runtime.state = None
                tg.cancel_scope.cancel()
    finally:
        slot.publish_router(None, "stopped (the server's lifespan has ended)")
        await anyio.to_thread.run_sync(router.close)
        retrieval.close()
        if delegated is not None:
            delegated.close()
