"""Fetching: blocks and whole DAGs from peers, over bitswap sessions, found in the DHT.

A fetch asks the peers we are connected to at once and, when the root is not local, looks
its providers up in the DHT meanwhile; each provider joins the session as soon as it is
dialled (as Kubo's sessions do).

Over HTTP first. A node built with a :class:`DagStreams` (the server hands in the verified
CAR streams of ``backends.retrieval``) asks the providers that advertise an ``/http`` or
``/tls/http`` address (within the dial scope: one policy for every dial) for the whole DAG
as CAR streams before any want goes out; bitswap then fetches whatever they left, from
every peer as usual. Peers without one (Kubo by default) are asked over bitswap only.

Cancellation. When the caller's scope is cancelled, :meth:`Fetching.fetch_dag` and
:meth:`Fetching.fetch_block` return as soon as their bitswap session has ended. The wants
still open are withdrawn: the engine's per-peer writer sends the CANCEL entries, so no write
is ever cut short by the caller's cancellation (and the host's yamux writes each frame
whole, ``host.FrameAtomicYamux``). The DHT lookup the fetch started is abandoned: its
answer is dropped and nobody is dialled for it; it ends at its own bound. Blocks already
verified stay in the blockstore; the pin, the last step, is not taken.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol, TypeVar

import anyio
import trio
from libp2p.abc import IHost
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from multiaddr import Multiaddr
from multiformats import CID

from ipfs_mcp.backends.core.cids import cid_str, parse_cid
from ipfs_mcp.backends.errors import (
    BackendUnavailable,
    BlockNotFound,
    DagTooLarge,
    IpfsMcpError,
    NetworkError,
    TooLarge,
)

from .bitswap.engine import Bitswap, BlockStore
from .bitswap.session import FetchReport, Session
from .config import NodeConfig
from .dialing import DialPolicy
from .host import is_http_addr
from .loop import NodeLoop
from .peers import Peers
from .providing import ProviderInfo, Providing
from .relay.limits import declared_bytes, limit_error, relay_budget, wait_direct

log = logging.getLogger(__name__)

T = TypeVar("T")
Pinner = Callable[[CID], object]
# Providers from one lookup dialled for a fetch: the best few by reputation are plenty.
DIAL_PROVIDERS = 8


class DagStreams(Protocol):
    """Whole DAGs from HTTP providers (trustless gateways), every block verified and stored.

    Called from a worker thread: fetch what is missing under ``root`` from ``urls``, best
    first, stopping once ``cancel`` is set; store at most ``max_bytes`` (None: no cap).
    Returns the blocks and bytes it stored, and how many blocks the whole DAG holds when
    nothing under ``root`` is missing any more (None otherwise: what it could not get is
    left to bitswap).

    Raises:
        TooLarge: more than ``max_bytes`` would have to be stored.
        DagTooLarge, IntegrityError (the content's fault), DiskFull, OperationCancelled.
    """

    def fetch_dag(self, root: CID, urls: Sequence[str], cancel: threading.Event,
                  max_bytes: int | None) -> tuple[int, int, int | None]: ...


def http_url(addr: str, policy: DialPolicy) -> str | None:
    """The base URL of a ``/ip4|ip6/HOST/tcp/PORT/http`` (or ``/tls/http``, ``/https``)
    address the dial scope allows, or None. Names (``/dns``) are left out: an HTTP client
    resolves them itself, after any check made here."""
    parts = str(addr).split("/p2p/")[0].split("/")
    if len(parts) < 6 or parts[1] not in ("ip4", "ip6") or parts[3] != "tcp":
        return None
    tail = parts[5:]
    if tail == ["http"]:
        scheme = "http"
    elif tail in (["tls", "http"], ["https"]):
        scheme = "https"
    else:
        return None  # /tls/sni/NAME/http and other forms: not ours to guess
    try:
        if policy.refusal(parts[2]) is not None or not parts[4].isdigit():
            return None
    except ValueError:  # not an IP address
        return None
    host = f"[{parts[2]}]" if parts[1] == "ip6" else parts[2]
    return f"{scheme}://{host}:{parts[4]}"


class RetrievalCounters:
    """What fetches that needed the network did, for the node's stats.

    ``changed`` is set whenever a fetch ends (and then replaced): grab it, then check.
    """

    def __init__(self) -> None:
        self.misses = 0  # retrievals that needed the network
        self.handled = 0  # of which succeeded
        self.failed = 0
        self.cancelled = 0  # ended by the caller's cancellation (neither handled nor failed)
        self.bytes_retrieved = 0
        self.retrieval_time = 0.0  # seconds, over the handled ones
        self.changed = trio.Event()

    def succeeded(self, nbytes: int, started: float) -> None:
        self.misses += 1
        self.handled += 1
        self.bytes_retrieved += nbytes
        self.retrieval_time += time.monotonic() - started
        self._notify()

    @contextmanager
    def counting(self, cid: CID, timeout: float, *, miss_if_cancelled: bool = False
                 ) -> Iterator[None]:
        """Bound a network retrieval by ``timeout``; count it if it fails or is cancelled
        (a cancelled one is a miss too with ``miss_if_cancelled``: a block fetch has
        missed locally before it starts, a DAG fetch only once it fetched something).

        Raises:
            BlockNotFound: ``timeout`` passed.
        """
        try:
            with trio.fail_after(timeout):
                yield
        except trio.TooSlowError:
            self._failed()
            raise BlockNotFound(cid_str(cid), f"the network within {timeout}s") from None
        except IpfsMcpError:
            self._failed()
            raise
        except BaseException as exc:
            if _cancellation(exc):
                self.cancelled += 1
                self.misses += miss_if_cancelled
                self._notify()
            raise

    def _failed(self) -> None:
        self.misses += 1
        self.failed += 1
        self._notify()

    def _notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()


def _cancellation(exc: BaseException) -> bool:
    """A cancellation reaches us bare, or from a nursery as a group of nothing else."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(trio.Cancelled)[1] is None
    return isinstance(exc, trio.Cancelled)


class Fetching:
    """Blocks and DAGs from the network into the blockstore. Components come in built."""

    def __init__(self, host: IHost, blockstore: BlockStore, bitswap: Bitswap,
                 config: NodeConfig, loop: NodeLoop, peers: Peers, providing: Providing,
                 pinner: Pinner | None = None, http: DagStreams | None = None) -> None:
        self.host = host
        self.blockstore = blockstore
        self.bitswap = bitswap
        self.config = config
        self.loop = loop
        self.peers = peers
        self.providing = providing
        self.pinner = pinner
        self.http = http
        self.counters = RetrievalCounters()

    def session(self, extra: Iterable[ID] = ()) -> Session:
        """A session over the peers we are connected to (and ``extra``)."""
        return Session(self.bitswap, [*extra, *self.host.get_connected_peers()])

    async def _discover(self, cid: CID, session: Session) -> None:
        """Look ``cid`` up in the DHT and add the providers to ``session`` as they answer.

        Runs alongside the fetch, as Kubo's sessions do: connected peers are asked at once
        and need not wait for the lookup, and providers join as soon as they are dialled.
        """
        try:
            try:
                providers = await self.providing.find_providers(cid)
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
                        await self.peers.connect(
                            PeerInfo(peer_id, [Multiaddr(a) for a in info.addrs]),
                            timeout=min(10.0, self.config.bitswap.send_timeout))
                    except NetworkError as exc:
                        self.providing.reputation.update_provider_stats(info.peer_id, False)
                        log.info("p2p: provider %s unreachable: %s", info.peer_id, exc)
                        return
                session.add_peers([peer_id])

            async with trio.open_nursery() as nursery:
                for info in providers[:DIAL_PROVIDERS]:
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
        nursery = self.loop.nursery()
        session.begin_discovery()
        nursery.start_soon(self._discover, cid, session)
        try:
            return await work()
        finally:
            session.close()

    async def _http_urls(self, cid: CID, extra: list[ID], lookup: bool) -> list[str]:
        """The HTTP addresses of the peers to ask first: the providers named, then the
        peers we are connected to, best first; with neither, the DHT's providers (when
        ``lookup``)."""
        policy = self.peers.dial_policy
        connected = self.host.get_connected_peers()
        addrs: list[str] = []
        if extra or connected:
            store = self.host.get_peerstore()
            ranked = self.providing.reputation.get_optimal_providers(connected)
            for peer in dict.fromkeys([*extra, *(p for p in ranked if isinstance(p, ID))]):
                try:
                    addrs.extend(str(a) for a in store.addrs(peer))
                except Exception:  # the peerstore raises for a peer it has no address of
                    continue
        elif lookup:
            try:
                found = await self.providing.find_providers(cid)
            except IpfsMcpError as exc:
                log.info("p2p: no providers from the DHT for %s: %s", cid_str(cid), exc)
                found = []
            addrs = [a for info in found[:DIAL_PROVIDERS] for a in info.addrs]
        urls = (http_url(a, policy) for a in addrs if is_http_addr(a))
        return list(dict.fromkeys(u for u in urls if u is not None))[:DIAL_PROVIDERS]

    async def _over_http(self, cid: CID, extra: list[ID], *,
                         lookup: bool = True) -> tuple[int, int, int | None]:
        """Whole CARs from the providers that serve HTTP (see the module docstring); the
        blocks and bytes they sent, and the DAG's blocks when it is complete. A
        cancellation stops the worker at its next chunk."""
        if self.http is None:
            return 0, 0, None
        urls = await self._http_urls(cid, extra, lookup)
        if not urls:
            return 0, 0, None
        cancel = threading.Event()
        try:
            return await anyio.to_thread.run_sync(
                self.http.fetch_dag, cid, urls, cancel, self.config.profile.cache_budget,
                abandon_on_cancel=True)
        except BaseException:
            cancel.set()
            raise

    async def fetch_block(self, cid: CID | str, *, timeout: float | None = None) -> bytes:
        """One block, from the blockstore or from peers (then verified and stored).

        Cancel-safe (see the module docstring): cancelled, it withdraws its want and
        ends its lookup before it returns.

        Raises:
            BlockNotFound: no peer had it within ``timeout``.
            BackendUnavailable: the node is not running.
        """
        self.loop.nursery()
        cid = parse_cid(cid)
        try:
            return await anyio.to_thread.run_sync(self.blockstore.get, cid)
        except BlockNotFound:
            pass
        timeout = self.config.fetch_block_timeout if timeout is None else timeout
        started = time.monotonic()
        with self.counters.counting(cid, timeout, miss_if_cancelled=True):
            session = self.session()
            data = await self._with_discovery(cid, session, lambda: session.get(cid))
        self.counters.succeeded(len(data), started)
        return data

    async def _session_dag(self, session: Session, cid: CID, budget: int | None,
                           providers: list[ID]) -> FetchReport:
        """``session.fetch_dag``, kept within a relay's limit when every provider named is
        reachable only over limited (relayed) connections: past that limit, wait (at most
        ``relay_direct_wait``) for a direct connection, which hole punching brings, and go
        on over it; else fail saying why (relay/limits.py).

        Raises:
            RelayLimitExceeded: too large for the relay, and no direct connection came.
            And what :meth:`Session.fetch_dag` raises.
        """
        relay = relay_budget(self.host, providers)
        if relay is None:
            return await session.fetch_dag(cid, max_bytes=budget)
        # The root first, and what it declares: a block past the limit is never asked for
        # (the relay would cut the connection in the middle of it).
        if declared_bytes(cid, await session.get(cid)) <= relay:
            try:
                return await session.fetch_dag(
                    cid, max_bytes=relay if budget is None else min(budget, relay))
            except DagTooLarge:
                raise
            except TooLarge:
                if budget is not None and budget <= relay:
                    raise  # the role's own budget, not the relay's
        wait = self.config.relay_direct_wait
        direct = False
        async with trio.open_nursery() as nursery:
            async def watch(peer: ID) -> None:
                nonlocal direct
                if await wait_direct(self.host, peer, wait):
                    direct = True
                    nursery.cancel_scope.cancel()
            for peer in providers:
                nursery.start_soon(watch, peer)
        if not direct:
            raise limit_error(cid_str(cid), providers, relay, wait)
        return await session.fetch_dag(cid, max_bytes=budget)

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
            RelayLimitExceeded: the providers named are reachable only through a relay
                whose limit the DAG exceeds, and no direct connection came in time.
            BackendUnavailable: the node is not running, or has no pin store and ``pin``.
        """
        self.loop.nursery()
        cid = parse_cid(cid)
        timeout = self.config.fetch_dag_timeout if timeout is None else timeout
        extra = [p if isinstance(p, ID) else ID.from_base58(p) for p in providers]
        started = time.monotonic()
        with self.counters.counting(cid, timeout):
            local = await anyio.to_thread.run_sync(self.blockstore.has, cid)
            session = self.session(extra)
            budget = self.config.profile.cache_budget
            # The root here (a reader took it first: fetch_cid reads the root, then fetches
            # the DAG under it) means most likely the rest is too: no DHT lookup, but what is
            # missing still comes as CARs from the peers at hand that serve HTTP.
            blocks, nbytes, dag_blocks = await self._over_http(cid, extra, lookup=not local)
            if budget is not None:
                budget = max(budget - nbytes, 0)
            if dag_blocks is not None:
                # Complete, every block verified in the CAR walk's order: walking the DAG
                # again would read back and hash each block a second time.
                report = FetchReport(cid_str(cid), blocks=dag_blocks, fetched=0,
                                     bytes_fetched=0, seconds=time.monotonic() - started)
            elif local:
                report = await self._session_dag(session, cid, budget, extra)
            else:
                report = await self._with_discovery(
                    cid, session, lambda: self._session_dag(session, cid, budget, extra))
            if blocks:
                report = dataclasses.replace(
                    report, fetched=report.fetched + blocks,
                    bytes_fetched=report.bytes_fetched + nbytes,
                    seconds=time.monotonic() - started)
        if report.fetched:
            self.counters.succeeded(report.bytes_fetched, started)
            if self.config.profile.announce != "none":
                # In the background: announcing every block of a large DAG ("all") takes
                # one DHT round per block, and the caller is waiting for the content.
                self.loop.spawn(self.providing.announce_quietly, cid)
        if pin:
            if self.pinner is None:
                raise BackendUnavailable("this node was built without a pin store")
            await anyio.to_thread.run_sync(self.pinner, cid)
        return report
