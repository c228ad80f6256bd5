"""The P2P node: a libp2p host, our bitswap engine and Kademlia content routing, together.

::

    P2PNode(host, blockstore, routing, config=..., pinner=...)
      ├── host        py-libp2p host: TCP, noise only, yamux       (host.build_host)
      ├── bitswap     our engine, serving from / storing into the blockstore
      ├── routing     ContentRouting (KadContentRouting on the DHT)
      └── reputation  ProviderReputation, shared with bitswap sessions

Use it as an async context manager inside the process's one trio loop::

    async with open_node(repo, NodeConfig()) as node:
        await node.connect_peer("/ip4/127.0.0.1/tcp/4001/p2p/12D3Koo...")
        report = await node.fetch_dag(cid)

Everything the node starts runs in one nursery that lives for the ``async with`` body: if a
background task fails, the body is cancelled and the error is raised, never swallowed. On
exit the host is closed explicitly, which releases its sockets (py-libp2p's ``run`` alone
leaves one per connection in CLOSE_WAIT).

:meth:`P2PNode.fetcher` hands out the ``BlockFetcher`` that the router calls, from worker
threads, when a block is not local.

Cancellation. When the caller's scope is cancelled, :meth:`P2PNode.fetch_dag` and
:meth:`P2PNode.fetch_block` return as soon as their bitswap session has ended. The wants
still open are withdrawn: the engine's per-peer writer sends the CANCEL entries, so no write
is ever cut short by the caller's cancellation (and the host's yamux writes each frame
whole, ``host.FrameAtomicYamux``). The DHT lookup the fetch started is abandoned: its
answer is dropped and nobody is dialled for it; it ends at its own bound. Blocks already
verified stay in the blockstore; the pin, the last step, is not taken. From worker threads the same is reached through :class:`NodeFetcher`, whose methods
take a ``threading.Event`` to cancel with.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from concurrent.futures import CancelledError
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel
import trio
from libp2p.abc import IHost, INetConn, INetStream, INetwork, INotifee
from libp2p.custom_types import TProtocol
from libp2p.identity.identify.pb.identify_pb2 import Identify as IdentifyMsg
from libp2p.identity.update import update_peerstore_from_identify
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from multiaddr import Multiaddr
from multiformats import CID

from ipfs_mcp.backends.core.cids import cid_str, parse_cid
from ipfs_mcp.backends.core.dag import links_of
from ipfs_mcp.backends.errors import (
    BackendUnavailable,
    BlockNotFound,
    IpfsMcpError,
    NetworkError,
)

from ._net import NET_ERRORS, FrameReader
from .bitswap.engine import Bitswap, BlockStore
from .bitswap.session import FetchReport, Session
from .config import NodeConfig
from .discovery import DIAL_TIMEOUT as MDNS_DIAL_TIMEOUT
from .discovery import MdnsDialer
from .host import build_host, peer_info_from_addr
from .identity import load_or_create_identity
from .reputation import ProviderReputation
from .routing import ContentRouting, KadContentRouting

log = logging.getLogger(__name__)

IDENTIFY_PROTOCOL = "/ipfs/id/1.0.0"
# How often a NodeFetcher call waiting in a worker thread looks at its cancel token.
CANCEL_POLL = 0.05
T = TypeVar("T")
Pinner = Callable[[CID], object]


@dataclass(frozen=True)
class ProviderInfo:
    peer_id: str
    addrs: tuple[str, ...]
    score: float


@dataclass(frozen=True)
class PeerStat:
    peer_id: str
    addrs: tuple[str, ...]
    agent: str | None
    connected: bool
    bitswap_protocol: str | None
    latency: float | None  # mean seconds from asking to receiving a block
    bytes_sent: int
    bytes_received: int
    blocks_sent: int
    blocks_received: int
    bad_blocks: int
    reputation: float


@dataclass(frozen=True)
class NodeStats:
    peer_id: str
    addrs: tuple[str, ...]
    role: str
    dht_mode: str
    cache_misses: int  # retrievals that needed the network
    handled: int  # of which succeeded
    failed: int
    success_rate: float | None
    bytes_retrieved: int
    average_retrieval_time: float | None
    providers_found: int
    failed_discoveries: int
    announced: int  # CIDs announced automatically after retrievals (role policy)
    failed_announcements: int
    routing_table_size: int
    bytes_sent_total: int  # bitswap messages, both directions
    bytes_received_total: int
    peers: tuple[PeerStat, ...]


class _ConnWatcher(INotifee):
    """Tells the node about new connections so it can identify them and route through them."""

    def __init__(self, node: P2PNode) -> None:
        self.node = node

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        self.node._on_connected(conn.muxed_conn.peer_id)

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        return None

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def listen(self, network: INetwork, multiaddr: Multiaddr) -> None:
        return None

    async def listen_close(self, network: INetwork, multiaddr: Multiaddr) -> None:
        return None


class P2PNode:
    """One IPFS peer. Construct it from parts, or with :func:`open_node` from a repo."""

    def __init__(self, host: IHost, blockstore: BlockStore, routing: ContentRouting, *,
                 config: NodeConfig | None = None,
                 reputation: ProviderReputation | None = None,
                 bitswap: Bitswap | None = None,
                 pinner: Pinner | None = None) -> None:
        self.host = host
        self.blockstore = blockstore
        self.routing = routing
        self.config = config or NodeConfig()
        self.reputation = reputation or ProviderReputation()
        self.bitswap = bitswap or Bitswap(host, blockstore, reputation=self.reputation,
                                          config=self.config.bitswap)
        self.pinner = pinner
        self._stack: AsyncExitStack | None = None
        self._nursery: trio.Nursery | None = None
        self._token: anyio.lowlevel.EventLoopToken | None = None
        self._watcher = _ConnWatcher(self)
        self._agents: dict[str, str] = {}
        self._protocols: dict[str, list[str]] = {}
        self._identified: dict[str, trio.Event] = {}
        self._peers_changed = trio.Event()  # set (and replaced) whenever a peer is identified
        # stats
        self._misses = self._handled = self._failed = 0
        self._bytes_retrieved = 0
        self._retrieval_time = 0.0
        self._providers_found = 0
        self._failed_discoveries = 0
        self._announced = 0  # CIDs announced in the background after retrievals
        self._failed_announcements = 0

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
            nursery = await stack.enter_async_context(trio.open_nursery())
            # Runs first on exit: stop our tasks before the routing and the host go away.
            stack.callback(nursery.cancel_scope.cancel)
            await nursery.start(self.bitswap.run)
            self.host.get_network().register_notifee(self._watcher)
            stack.callback(self.host.get_network().remove_notifee, self._watcher)
            if self.config.mdns:
                stack.enter_context(MdnsDialer(
                    self.host.get_id(), nursery,
                    lambda info: self._connect(info, MDNS_DIAL_TIMEOUT),
                    self.host.get_connected_peers))
            self._nursery = nursery
            # Bootstrap peers may have connected while the host started, before we listened.
            for peer_id in self.host.get_connected_peers():
                self._on_connected(peer_id)
        except BaseException:
            self._nursery = None
            await stack.aclose()
            raise
        self._stack = stack
        self._nursery = nursery
        self._token = anyio.lowlevel.current_token()
        log.info("p2p node %s listening on %s (%s, DHT %s)", self.peer_id,
                 ", ".join(self.addrs), self.config.role.value,
                 "server" if self.routing.server_mode else "client")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> bool | None:
        stack, self._stack = self._stack, None
        self._nursery = None
        self._token = None
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

    def _require_running(self) -> trio.Nursery:
        if self._nursery is None:
            raise BackendUnavailable("the p2p node is not running; start it with `async with`")
        return self._nursery

    # -- identity and peers -------------------------------------------------------------
    @property
    def peer_id(self) -> str:
        return str(self.host.get_id())

    @property
    def addrs(self) -> list[str]:
        """Our listen addresses, each ending in ``/p2p/<our id>``."""
        return [str(a) for a in self.host.get_addrs()]

    async def connect_peer(self, addr: str | Multiaddr, *, timeout: float = 15.0) -> str:
        """Dial ``/ip4/.../tcp/.../p2p/<id>`` and wait until it is identified.

        Raises:
            InvalidInput: not a peer multiaddr.
            NetworkError: the dial failed or timed out.
        """
        self._require_running()
        info = peer_info_from_addr(addr)
        await self._connect(info, timeout)
        return str(info.peer_id)

    async def _connect(self, info: PeerInfo, timeout: float) -> None:
        try:
            with trio.fail_after(timeout):
                known = self._identified.get(str(info.peer_id))
                was_connected = info.peer_id in self.host.get_connected_peers()
                if not was_connected:
                    await self._dial(info)
                if was_connected and known is not None:
                    identified = known
                else:
                    identified = self._on_connected(info.peer_id)
                await identified.wait()
        except trio.TooSlowError as exc:
            raise NetworkError(f"connecting to {info.peer_id} timed out after {timeout}s"
                               ) from exc
        except NET_ERRORS as exc:
            raise NetworkError(f"cannot connect to {info.peer_id}: {exc}") from exc

    async def _dial(self, info: PeerInfo) -> None:
        """Dial the peer's addresses one after the other.

        ``host.connect`` would do this too, but py-libp2p's happy-eyeballs loop waits its
        full 250 ms head start even after the first dial succeeded; dialling the swarm
        address by address costs only the handshake.

        Raises:
            NetworkError: no address worked.
        """
        network = self.host.get_network()
        self.host.get_peerstore().add_addrs(info.peer_id, info.addrs, 3600)
        failures: list[str] = []
        for addr in info.addrs:
            try:
                conn = await network.dial_addr(addr, info.peer_id)
            except NET_ERRORS as exc:
                failures.append(f"{addr}: {exc}")
                continue
            started = getattr(conn, "event_started", None)
            if started is not None:
                await started.wait()
            return
        raise NetworkError(f"cannot connect to {info.peer_id}: " + ("; ".join(failures)
                                                                     or "no addresses"))

    async def wait_for_peer(self, peer_id: str | None = None, *, timeout: float = 30.0
                            ) -> str:
        """Wait until ``peer_id`` (or, if None, any peer) is connected and identified,
        however it came (our dial, theirs, mDNS, bootstrap); its id.

        Raises:
            NetworkError: no such peer within ``timeout`` seconds.
        """
        self._require_running()
        with trio.move_on_after(timeout):
            while True:
                changed = self._peers_changed
                for peer in self.host.get_connected_peers():
                    key = str(peer)
                    done = self._identified.get(key)
                    if (peer_id is None or key == peer_id) and done is not None and done.is_set():
                        return key
                await changed.wait()
        raise NetworkError(f"{peer_id or 'no peer'} did not connect within {timeout}s")

    def connected_peers(self) -> list[ID]:
        return list(self.host.get_connected_peers())

    def _on_connected(self, peer_id: ID) -> trio.Event:
        """Identify a newly connected peer (once at a time); the event is set when done."""
        key = str(peer_id)
        event = self._identified.get(key)
        if event is not None and not event.is_set():
            return event
        event = self._identified[key] = trio.Event()
        if self._nursery is not None:
            self._nursery.start_soon(self._identify, peer_id)
        else:
            event.set()
        return event

    async def _identify(self, peer_id: ID) -> None:
        """Learn the peer's agent and protocols, then add DHT servers to the routing table.

        The host runs identify too, but it keeps neither the agent nor a signal for when
        it is done; this one does both and gates the routing-table insert on it. Peers may
        allow one identify stream at a time (js-libp2p does), and the host's own may be
        in flight, so a refused stream is retried a few times before giving up; then the
        protocols the host's identify left in the peerstore are used, if any.
        """
        key = str(peer_id)
        msg: IdentifyMsg | None = None
        try:
            with trio.move_on_after(10):
                for delay in (0.05, 0.1, 0.2, 0.4, None):
                    try:
                        msg = await self._identify_once(peer_id)
                        break
                    except (NetworkError, *NET_ERRORS) as exc:
                        log.debug("p2p: identify %s failed: %r", peer_id, exc)
                        if delay is None or not self.host.get_network().get_connections(
                                peer_id):
                            break
                        await trio.sleep(delay)
            if msg is not None:
                if msg.agent_version:
                    self._agents[key] = msg.agent_version
                protocols = list(msg.protocols)
                await update_peerstore_from_identify(self.host.get_peerstore(), peer_id, msg)
            else:
                try:
                    protocols = list(self.host.get_peerstore().get_protocols(peer_id))
                except Exception:  # the peerstore raises for peers it never saw
                    protocols = []
            self._protocols[key] = protocols
            with trio.move_on_after(10):
                await self.routing.add_peer(peer_id, protocols)
        except Exception as exc:  # a malformed identify message (protobuf DecodeError)
            log.info("p2p: identify %s: bad message: %r", peer_id, exc)
        finally:
            self._identified[key].set()
            self._peers_changed.set()
            self._peers_changed = trio.Event()

    async def _identify_once(self, peer_id: ID) -> IdentifyMsg:
        stream = await self.host.new_stream(peer_id, [TProtocol(IDENTIFY_PROTOCOL)])
        msg = IdentifyMsg()
        reader = FrameReader(stream, 1 << 20)
        frames = 0
        try:
            while (body := await reader.next()) is not None:
                msg.MergeFromString(body)
                frames += 1
            if not frames:  # the peer closed without answering (busy with another identify)
                raise NetworkError(f"{peer_id} sent an empty identify")
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                try:
                    await stream.close()
                except NET_ERRORS:
                    pass
        return msg

    # -- content routing ----------------------------------------------------------------
    async def find_providers(self, cid: CID | str, count: int | None = None,
                             timeout: float | None = None) -> list[ProviderInfo]:
        """Providers of ``cid`` from the DHT, best first by reputation.

        Raises:
            NetworkError: the lookup failed or timed out.
        """
        self._require_running()
        cid = parse_cid(cid)
        count = count or self.config.max_providers
        timeout = self.config.find_providers_timeout if timeout is None else timeout
        try:
            with trio.fail_after(timeout):
                found = await self.routing.find_providers(cid, count)
        except trio.TooSlowError as exc:
            self._failed_discoveries += 1
            raise NetworkError(f"finding providers of {cid_str(cid)} timed out after "
                               f"{timeout}s") from exc
        except NetworkError:
            self._failed_discoveries += 1
            raise
        if not found:
            self._failed_discoveries += 1
        self._providers_found += len(found)
        for info in found:
            self.host.get_peerstore().add_addrs(info.peer_id, info.addrs, 3600)
        ranked = self.reputation.get_optimal_providers([str(i.peer_id) for i in found], count)
        by_id = {str(i.peer_id): i for i in found}
        return [ProviderInfo(str(p), tuple(str(a) for a in by_id[str(p)].addrs),
                             self.reputation.score(p)) for p in ranked]

    find_content = find_providers

    async def get_optimal_providers(self, cid: CID | str, count: int = 5
                                    ) -> list[ProviderInfo]:
        """The ``count`` best providers of ``cid`` (DHT providers, ranked by reputation)."""
        return (await self.find_providers(cid, count=max(count, self.config.max_providers)
                                          ))[:count]

    def update_provider_stats(self, peer: str | ID, success: bool,
                              latency: float | None = None, nbytes: int = 0) -> None:
        self.reputation.update_provider_stats(peer, success, latency, nbytes)

    async def announce_content(self, cid: CID | str, *, recursive: bool | None = None) -> int:
        """Announce ``cid`` (and, if ``recursive``, every block under it) in the DHT.

        ``recursive`` defaults to the role's policy (``all`` announces every block). The
        blocks must be local. Returns how many CIDs were announced.

        Raises:
            BlockNotFound: a block to announce is not local.
            NetworkError: an announcement failed or timed out.
        """
        self._require_running()
        cid = parse_cid(cid)
        if recursive is None:
            recursive = self.config.profile.announce == "all"
        cids = [cid]
        if recursive:
            cids = await anyio.to_thread.run_sync(self._local_dag, cid)
        elif not await anyio.to_thread.run_sync(self.blockstore.has, cid):
            raise BlockNotFound(cid_str(cid))
        announced = 0
        with trio.fail_after(self.config.provide_timeout * max(1, len(cids) // 50 + 1)):
            for one in cids:
                await self.routing.provide(one)
                announced += 1
        return announced

    def _local_dag(self, root: CID) -> list[CID]:
        out: list[CID] = []
        stack = [root]
        seen: set[bytes] = set()
        while stack:
            cid = stack.pop()
            if bytes(cid.digest) in seen:
                continue
            seen.add(bytes(cid.digest))
            out.append(cid)
            if cid.codec.name == "raw":
                if not self.blockstore.has(cid):
                    raise BlockNotFound(cid_str(cid))
                continue
            stack.extend(links_of(cid, self.blockstore.get(cid)))
        return out

    async def _announce_quietly(self, cid: CID) -> None:
        """Announce per the role's policy; a failure is logged and counted, not raised."""
        try:
            self._announced += await self.announce_content(cid)
        except (IpfsMcpError, trio.TooSlowError) as exc:
            self._failed_announcements += 1
            log.info("p2p: announcing %s after retrieval failed: %s", cid_str(cid), exc)

    # -- retrieval ----------------------------------------------------------------------
    def _session(self, extra: Iterable[ID] = ()) -> Session:
        """A session over the peers we are connected to (and ``extra``)."""
        return Session(self.bitswap, [*extra, *self.host.get_connected_peers()])

    async def _discover(self, cid: CID, session: Session) -> None:
        """Look ``cid`` up in the DHT and add the providers to ``session`` as they answer.

        Runs alongside the fetch, as Kubo's sessions do: connected peers are asked at once
        and need not wait for the lookup, and providers join as soon as they are dialled.
        """
        try:
            try:
                providers = await self.find_providers(cid)
            except IpfsMcpError as exc:  # a failed lookup, or the node stopping meanwhile
                log.info("p2p: no providers from the DHT for %s: %s", cid_str(cid), exc)
                return
            if session.closed:
                return  # the fetch is over (or was cancelled): dial nobody for it
            connected = {str(p) for p in self.host.get_connected_peers()}

            async def dial(info: ProviderInfo) -> None:
                peer_id = ID.from_base58(info.peer_id)
                if info.peer_id not in connected:
                    try:
                        await self._connect(
                            PeerInfo(peer_id, [Multiaddr(a) for a in info.addrs]),
                            timeout=min(10.0, self.config.bitswap.send_timeout))
                    except NetworkError as exc:
                        self.reputation.update_provider_stats(info.peer_id, False)
                        log.info("p2p: provider %s unreachable: %s", info.peer_id, exc)
                        return
                session.add_peers([peer_id])

            async with trio.open_nursery() as nursery:
                for info in providers[:8]:
                    nursery.start_soon(dial, info)
        finally:
            session.end_discovery()

    async def _with_discovery(self, cid: CID, session: Session,
                              work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work`` while :meth:`_discover` feeds ``session``; abandon the lookup after.

        The lookup runs in the node's nursery. When ``work`` ends, done or cancelled, the
        session is closed: the lookup's answer is dropped and no provider is dialled for
        it, and the lookup itself ends at its own bound (``find_providers_timeout``).
        It is not cancelled: py-libp2p's DHT, cancelled inside a request, leaves the
        connection it used unusable for later streams (observed with two nodes fetching
        one after the other), even with whole frames (``host.FrameAtomicYamux``).
        """
        nursery = self._require_running()
        session.begin_discovery()
        nursery.start_soon(self._discover, cid, session)
        try:
            return await work()
        finally:
            session.close()

    async def fetch_block(self, cid: CID | str, *, timeout: float | None = None) -> bytes:
        """One block, from the blockstore or from peers (then verified and stored).

        Cancel-safe (see the module docstring): cancelled, it withdraws its want and
        ends its lookup before it returns.

        Raises:
            BlockNotFound: no peer had it within ``timeout``.
        """
        self._require_running()
        cid = parse_cid(cid)
        try:
            return await anyio.to_thread.run_sync(self.blockstore.get, cid)
        except BlockNotFound:
            pass
        timeout = self.config.fetch_block_timeout if timeout is None else timeout
        self._misses += 1
        started = time.monotonic()
        try:
            with trio.fail_after(timeout):
                session = self._session()
                data = await self._with_discovery(cid, session, lambda: session.get(cid))
        except trio.TooSlowError:
            self._failed += 1
            raise BlockNotFound(cid_str(cid), f"the network within {timeout}s") from None
        except IpfsMcpError:
            self._failed += 1
            raise
        self._handled += 1
        self._bytes_retrieved += len(data)
        self._retrieval_time += time.monotonic() - started
        return data

    retrieve_block = fetch_block

    async def fetch_dag(self, cid: CID | str, *, pin: bool = False,
                        timeout: float | None = None,
                        providers: Iterable[str | ID] = ()) -> FetchReport:
        """Make the whole DAG under ``cid`` local; announce it per the role; pin if asked.

        Cancel-safe (see the module docstring): cancelled, it withdraws every open want
        (CANCEL to the peers asked), ends its lookup and dials, and pins nothing; the
        blocks it already verified stay in the blockstore.

        Raises:
            BlockNotFound: some block could not be found; the error names it.
            TooLarge: the DAG exceeds the role's cache budget.
        """
        self._require_running()
        cid = parse_cid(cid)
        timeout = self.config.fetch_dag_timeout if timeout is None else timeout
        extra = [p if isinstance(p, ID) else ID.from_base58(p) for p in providers]
        started = time.monotonic()
        try:
            with trio.fail_after(timeout):
                local = await anyio.to_thread.run_sync(self.blockstore.has, cid)
                session = self._session(extra)
                budget = self.config.profile.cache_budget
                if local:
                    # The root is here, so most likely the rest is too: no DHT lookup.
                    report = await session.fetch_dag(cid, max_bytes=budget)
                else:
                    report = await self._with_discovery(
                        cid, session, lambda: session.fetch_dag(cid, max_bytes=budget))
        except trio.TooSlowError:
            self._misses += 1
            self._failed += 1
            raise BlockNotFound(cid_str(cid), f"the network within {timeout}s") from None
        except IpfsMcpError:
            self._misses += 1
            self._failed += 1
            raise
        if report.fetched:
            self._misses += 1
            self._handled += 1
            self._bytes_retrieved += report.bytes_fetched
            self._retrieval_time += time.monotonic() - started
            if self.config.profile.announce != "none" and self._nursery is not None:
                # In the background: announcing every block of a large DAG ("all") takes
                # one DHT round per block, and the caller is waiting for the content.
                self._nursery.start_soon(self._announce_quietly, cid)
        if pin:
            if self.pinner is None:
                raise BackendUnavailable("this node was built without a pin store")
            await anyio.to_thread.run_sync(self.pinner, cid)
        return report

    retrieve_content = fetch_dag

    # -- the router's fetcher -----------------------------------------------------------
    def fetcher(self) -> NodeFetcher:
        """The ``BlockFetcher`` the router calls from worker threads on a local miss."""
        return NodeFetcher(self)

    # -- stats --------------------------------------------------------------------------
    def peer_stats(self, peer_id: str | ID | None = None) -> list[PeerStat]:
        connected = {str(p) for p in self.host.get_connected_peers()}
        ledgers = self.bitswap.ledgers()
        keys = [str(peer_id)] if peer_id is not None else sorted(
            set(ledgers) | connected | set(self.reputation.known()))
        store = self.host.get_peerstore()
        out = []
        for key in keys:
            ledger = self.bitswap.ledger(key)
            record = self.reputation.record(key)
            try:
                addrs = tuple(str(a) for a in store.addrs(ID.from_base58(key)))
            except Exception:  # unknown to the peerstore
                addrs = ()
            out.append(PeerStat(
                peer_id=key, addrs=addrs, agent=self._agents.get(key),
                connected=key in connected,
                bitswap_protocol=self.bitswap.peer_protocol(key),
                latency=record.mean_latency,
                bytes_sent=ledger.bytes_sent, bytes_received=ledger.bytes_received,
                blocks_sent=ledger.blocks_sent, blocks_received=ledger.blocks_received,
                bad_blocks=ledger.bad_blocks, reputation=record.score))
        return out

    def stats(self) -> NodeStats:
        return NodeStats(
            peer_id=self.peer_id,
            addrs=tuple(self.addrs) if self.running else (),
            role=self.config.role.value,
            dht_mode="server" if self.routing.server_mode else "client",
            cache_misses=self._misses,
            handled=self._handled,
            failed=self._failed,
            success_rate=self._handled / self._misses if self._misses else None,
            bytes_retrieved=self._bytes_retrieved,
            average_retrieval_time=(self._retrieval_time / self._handled
                                    if self._handled else None),
            providers_found=self._providers_found,
            failed_discoveries=self._failed_discoveries,
            announced=self._announced,
            failed_announcements=self._failed_announcements,
            routing_table_size=self.routing.routing_table_size(),
            bytes_sent_total=self.bitswap.bytes_out,
            bytes_received_total=self.bitswap.bytes_in,
            peers=tuple(self.peer_stats()),
        )


def _leaves(group: BaseExceptionGroup) -> Iterable[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


class NodeFetcher:
    """``backends.fetcher.BlockFetcher`` over a running node, with a cancel token.

    Its methods are called from worker threads (the router runs blocking work in
    ``anyio.to_thread``). Each call runs the fetch as a task on the node's trio loop and
    waits for it. Pass ``cancel``, a ``threading.Event``, to stop it from anywhere: once
    the event is set, the fetch is cancelled on the loop (within :data:`CANCEL_POLL`
    seconds), ends its network work as :meth:`P2PNode.fetch_dag` does, and the call
    raises ``concurrent.futures.CancelledError``, which is deliberately not an
    ``IpfsMcpError``: nothing may take a cancellation for a failure and try elsewhere.
    A caller on an event loop sets the event when its own scope is cancelled, e.g.::

        cancel = threading.Event()
        try:
            await anyio.to_thread.run_sync(fetcher.fetch_dag, root, cancel,
                                           abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            cancel.set()
            raise
    """

    def __init__(self, node: P2PNode) -> None:
        self.node = node

    def _call(self, fn: Callable[[CID], Awaitable[T]], cid: CID,
              cancel: threading.Event | None) -> T:
        token = self.node._token
        if token is None:
            raise BackendUnavailable("the p2p node is not running")
        scope = trio.CancelScope()
        done = threading.Event()
        box: list[T] = []
        failure: list[Exception] = []

        async def run() -> None:
            try:
                with scope:
                    box.append(await fn(cid))
            except Exception as exc:  # handed to the calling thread, never to the node
                failure.append(exc)
            finally:
                done.set()

        def start() -> None:
            self.node._require_running().start_soon(run)

        try:
            anyio.from_thread.run_sync(start, token=token)
        except anyio.RunFinishedError as exc:
            raise BackendUnavailable("the p2p node stopped") from exc
        except RuntimeError as exc:
            if isinstance(exc, IpfsMcpError):
                raise
            # Calling from the loop's own thread would deadlock; anyio refuses instead.
            raise BackendUnavailable(f"BlockFetcher must be called from a worker thread: {exc}"
                                     ) from exc
        if cancel is None:
            done.wait()
        else:
            # Bounded by the fetch itself: its own timeout, or the node stopping.
            while not done.wait(CANCEL_POLL):
                if cancel.is_set():
                    try:
                        anyio.from_thread.run_sync(scope.cancel, token=token)
                    except anyio.RunFinishedError:
                        pass  # the loop is gone, and the fetch with it
                    done.wait()
                    break
        if failure:
            raise failure[0]
        if box:
            return box[0]
        if scope.cancelled_caught:
            raise CancelledError(f"fetching {cid_str(cid)} was cancelled")
        raise BackendUnavailable("the p2p node stopped during the fetch")

    def connect(self, addr: str) -> str:
        """Dial ``addr`` on the node's loop, from a worker thread; the peer id once
        connected (a delegated router's bitswap provider, say).

        Raises:
            NetworkError: the dial failed. BackendUnavailable: the node is not running.
        """
        token = self.node._token
        if token is None:
            raise BackendUnavailable("the p2p node is not running")
        try:
            return anyio.from_thread.run(self.node.connect_peer, addr, token=token)
        except anyio.RunFinishedError as exc:
            raise BackendUnavailable("the p2p node stopped") from exc

    def fetch_block(self, cid: CID, cancel: threading.Event | None = None) -> bytes:
        """One block, verified and stored locally.

        Raises:
            BlockNotFound: no provider had it within the node's time budget.
            BackendUnavailable: the node is not running, or stopped meanwhile.
            concurrent.futures.CancelledError: ``cancel`` was set.
        """
        return self._call(self.node.fetch_block, cid, cancel)

    def fetch_dag(self, root: CID, cancel: threading.Event | None = None) -> None:
        """Every block under ``root``, verified and stored locally; nothing is pinned.

        Raises:
            BlockNotFound: some block could not be found; the error names it.
            BackendUnavailable: the node is not running, or stopped meanwhile.
            concurrent.futures.CancelledError: ``cancel`` was set.
        """
        self._call(self.node.fetch_dag, root, cancel)


@asynccontextmanager
async def open_node(repo: object, config: NodeConfig | None = None, *,
                    blockstore: BlockStore | None = None) -> AsyncIterator[P2PNode]:
    """Build a node for ``repo`` (a ``backends.repo.Repo``) and run it for the block.

    The identity comes from ``repo.path/identity.key``; blocks are served from and stored
    into ``repo.blocks`` (or ``blockstore``); ``retrieve_content(pin=True)`` pins in the repo.
    """
    config = config or NodeConfig()
    key_pair = load_or_create_identity(Path(repo.path))  # type: ignore[attr-defined]
    host = build_host(key_pair, config)
    routing = KadContentRouting.for_host(host, server=config.profile.dht_server)
    node = P2PNode(host, blockstore or repo.blocks, routing,  # type: ignore[attr-defined]
                   config=config, pinner=getattr(repo, "pin", None))
    async with node:
        yield node
