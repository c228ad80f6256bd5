"""Trustless HTTP gateways as a retrieval source (``--trustless-gateway URL``).

A gateway is asked the way Helia's trustless-gateway block broker and Kubo's HTTP retrieval
ask: ``GET /ipfs/{cid}?format=raw`` with ``Accept: application/vnd.ipld.raw``, one block
per request. Nothing it says is trusted:

* a block is read up to :data:`MAX_GATEWAY_BLOCK` (2 MiB, the spec's and Helia's bound)
  and verified against its CID before it is stored; a gateway whose bytes do not hash to
  the CID is dropped for the rest of the process (a liar is never asked again);
* a whole DAG is asked as CAR streams first (:mod:`.car_stream`: one request per subtree,
  every block verified in walk order as it streams); what they leave (single leaves, what
  no gateway sent whole) is fetched block by block, walked by the one DAG walker (so with
  every bound of :mod:`.limits`), several requests in flight, each verified as it arrives;
* ``429 Too Many Requests`` puts the gateway in back-off for ``Retry-After`` (bounded),
  404 and errors count as failures in its reputation (the same scorer bitswap peers use);
* one block has a total deadline (``timeout``), every gateway and every byte together.
  httpx's timeouts bound each read, so a gateway sending one byte a second would never
  trip them: the deadline is checked around every chunk of the body, and each request's
  own timeouts are what is left of it, so no request outlives the block by more than one
  read.

Gateways are asked best-first by reputation and hedged, as Helia's and boxo's sessions ask
peers: the best one has :data:`HEDGE_AFTER` seconds alone, then the next is asked too (at
once when one fails), and the first verified answer wins; the others are told to stop at
their next chunk. A gateway that was asked before the winner and had not answered is
recorded as a failure (it was slow), so the next block asks the fast one first. The fetcher
stores what it verified into the blockstore it was given, as the ``BlockFetcher`` protocol
asks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from multiformats import CID

from ipfs_mcp.backends.core.cids import cid_str, is_identity, verify_block
from ipfs_mcp.backends.core.dag import Walker, links_of
from ipfs_mcp.backends.core.reputation import ProviderReputation
from ipfs_mcp.backends.errors import (
    BlockNotFound,
    IntegrityError,
    InvalidInput,
    OperationCancelled,
    Timeout,
    TooLarge,
)
from ipfs_mcp.backends.retrieval.car_stream import (
    REQUEST_TIMEOUT,
    STALL,
    BlockPut,
    CarStreams,
)

MAX_GATEWAY_BLOCK = 2 * 1024 * 1024
MAX_RETRY_AFTER = 60.0  # seconds a 429 may keep a gateway aside, whatever it asks
IN_FLIGHT = 8  # block requests at once while fetching a DAG
HEDGE_AFTER = 1.0  # seconds the best gateway has a block to itself before the next is asked
# How often a wait on the gateways looks at the caller's cancel: a bound, not a pace.
_CANCEL_CHECK = 0.05
_RAW = "application/vnd.ipld.raw"


@dataclass(frozen=True)
class GatewayStat:
    url: str
    score: float
    successes: int
    failures: int
    bad_blocks: int
    dropped: bool
    backoff_until: float


def gateway_url(value: str) -> str:
    """A gateway base URL, checked: ``http(s)://host[:port]`` with nothing after the path.

    Raises:
        InvalidInput: not an http(s) URL.
    """
    text = value.strip().rstrip("/")
    split = urlsplit(text)
    if split.scheme not in ("http", "https") or not split.netloc or split.query:
        raise InvalidInput(f"trustless gateway {value!r} is not an http(s) URL")
    return text


def _retry_after(response: httpx.Response) -> float:
    value = response.headers.get("Retry-After", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        seconds = 1.0  # an HTTP date or nothing: a short pause, not what it asks
    return max(0.0, min(seconds, MAX_RETRY_AFTER))


class _Stopped(Exception):
    """A request told to stop (another gateway won, or the block's deadline passed)."""


class TrustlessGateways:
    """``BlockFetcher`` over trustless HTTP gateways (see the module docstring).

    Args:
        urls: gateway base URLs (``http://127.0.0.1:8080``).
        store: where verified blocks go (the embedded blockstore).
        client: the HTTP client to use (closed by :meth:`close` only if made here).
        timeout: seconds one block may take, every gateway asked for it together.
        hedge_after: seconds a gateway has a block to itself before the next is asked too.
        stall: seconds a CAR stream may go without a verified block.
        car_timeout: seconds one CAR request may take in all.
        clock: the reputation's clock (back-off); deadlines are real time.
    """

    name = "trustless-gateway"

    def __init__(self, urls: Sequence[str], store: BlockPut, *,
                 client: httpx.Client | None = None, timeout: float = 30.0,
                 hedge_after: float = HEDGE_AFTER, stall: float = STALL,
                 car_timeout: float = REQUEST_TIMEOUT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.urls = [gateway_url(u) for u in urls]
        self.store = store
        self.timeout = timeout
        self.hedge_after = hedge_after
        self._owns_client = client is None
        self.client = client or httpx.Client(timeout=httpx.Timeout(timeout),
                                             follow_redirects=False)
        self._clock = clock
        self._reputation = ProviderReputation(clock)
        self._dropped: dict[str, str] = {}
        self._lock = threading.Lock()  # the reputation is not thread-safe
        # The requests themselves, so a block's wait can end at its deadline without
        # joining a request still reading (it stops at its next chunk or read timeout).
        self._requests = ThreadPoolExecutor(min(IN_FLIGHT * max(len(self.urls), 1), 32),
                                            thread_name_prefix="gateway-get")
        # Whole DAGs go as CAR streams first, this object their providers and scorer.
        self.cars = CarStreams(self, store, self.client, timeout=car_timeout, stall=stall)

    def close(self) -> None:
        self._requests.shutdown(wait=False, cancel_futures=True)
        if self._owns_client:
            self.client.close()

    # -- one block ------------------------------------------------------------------------
    def ranked(self) -> list[str]:
        """The gateways not dropped, best first."""
        with self._lock:
            live = [u for u in self.urls if u not in self._dropped]
            return [str(u) for u in self._reputation.get_optimal_providers(live)]

    def failed(self, url: str, pause: float | None = None) -> None:
        """``url`` failed a request (``pause``: it asked to be left alone that long)."""
        with self._lock:
            self._reputation.update_provider_stats(url, False)
            if pause is not None:
                self._reputation.back_off(url, pause)

    def _ask(self, url: str, cid: CID, deadline: float, stop: threading.Event
             ) -> bytes | None:
        """The verified block from one gateway, or None when it does not have it. Once
        ``stop`` is set the caller owns the verdict, so nothing more is recorded here.

        Raises:
            IntegrityError: it sent bytes that are not the block (it is dropped).
            Timeout: it had not sent the whole block by ``deadline``.
            _Stopped: ``stop`` was set while it was still sending.
        """
        started = time.monotonic()
        if stop.is_set() or deadline <= started:
            raise _Stopped
        target = f"{url}/ipfs/{cid_str(cid)}?format=raw"
        try:
            with self.client.stream("GET", target, headers={"Accept": _RAW},
                                    timeout=httpx.Timeout(deadline - started)) as response:
                if stop.is_set():
                    raise _Stopped
                if response.status_code == 429:
                    self.failed(url, _retry_after(response))
                    return None
                if response.status_code != 200:
                    self.failed(url)
                    return None
                body = _read_before(response, deadline, stop, f"{url} for {cid_str(cid)}")
        except httpx.TimeoutException as exc:
            raise _Stopped if stop.is_set() else Timeout(
                f"{url} did not send {cid_str(cid)} in time") from exc
        except httpx.HTTPError:
            if stop.is_set():
                raise _Stopped from None
            self.failed(url)
            return None
        except TooLarge as exc:
            self.lied(url, str(exc))
            raise IntegrityError(str(exc)) from exc
        try:
            verify_block(cid, body)
        except IntegrityError as exc:
            self.lied(url, f"sent bytes that do not hash to {cid_str(cid)}")
            raise IntegrityError(f"trustless gateway {url} sent bytes for {cid_str(cid)} that "
                                 "do not match it; the gateway is no longer asked") from exc
        self.succeeded(url, time.monotonic() - started, len(body))
        return body

    def succeeded(self, url: str, seconds: float, nbytes: int) -> None:
        with self._lock:
            self._reputation.update_provider_stats(url, True, seconds, nbytes)

    def lied(self, url: str, why: str) -> None:
        """``url`` sent bytes that are not what was asked: never asked again."""
        with self._lock:
            self._dropped[url] = why
            self._reputation.record_bad_block(url)

    def fetch_block(self, cid: CID, cancel: threading.Event | None = None) -> bytes:
        """One block from the first gateway that sends it whole and verified, within the
        block's deadline; stored.

        Raises:
            BlockNotFound: no gateway had it (each one's answer in the message).
            Timeout: the deadline passed with a gateway still sending (it is named).
            OperationCancelled: ``cancel`` was set.
        """
        if is_identity(cid):
            raise BlockNotFound(cid_str(cid), "trustless gateways (identity CIDs hold their "
                                              "data and are never fetched)")
        race = _Hedge(self, cid, cancel)
        try:
            data = race.run()
        finally:
            race.stop.set()  # the requests still running stop at their next chunk
        if data is not None:
            self.store.put(cid, data)
            return data
        tried = ", ".join(self.urls) or "none configured"
        detail = f"; {'; '.join(race.lies)}" if race.lies else ""
        if race.slow:
            raise Timeout(f"fetching {cid_str(cid)} from the trustless gateways timed out "
                          f"after {self.timeout:g} s (IPFS_API_TIMEOUT): "
                          f"{', '.join(race.slow)} had not sent it whole{detail}")
        raise BlockNotFound(cid_str(cid), f"the trustless gateways ({tried}){detail}")

    # -- a whole DAG ----------------------------------------------------------------------
    def fetch_dag(self, root: CID, cancel: threading.Event | None = None) -> None:
        """Every block under ``root`` that is not local yet, verified and stored: first as
        CAR streams (:mod:`.car_stream`), then block by block whatever they left.

        Raises:
            BlockNotFound: some block no gateway had (the DAG stays partial, nothing pinned).
            OperationCancelled: ``cancel`` was set.
            DagTooLarge: deeper, wider or with more blocks than one walk may visit.
        """
        left = self.cars.fetch(root, cancel)
        if left:
            self._fetch_blocks(root, left, cancel)

    def _fetch_blocks(self, root: CID, roots: list[CID], cancel: threading.Event | None
                      ) -> None:
        """The DAGs under ``roots`` (parts of ``root``'s), a block per request, several in
        flight."""
        # Our own event, so a failure here stops our requests without setting the caller's.
        stop = threading.Event()
        seen: set[bytes] = set()
        # The bounds every walk keeps; blocks seen once across them all.
        walkers: list[Walker[None]] = [Walker(r, seen=seen) for r in roots]
        pending: dict[Future[tuple[CID, bytes]], tuple[Walker[None], int]] = {}
        with ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="gateway") as pool:
            try:
                while True:
                    if cancel is not None and cancel.is_set():
                        raise OperationCancelled(f"fetching {cid_str(root)} was cancelled")
                    while walkers and len(pending) < IN_FLIGHT:
                        walker = next((w for w in walkers if (frame := w.pop())), None)
                        if walker is None or frame is None:
                            break  # the rest waits on blocks in flight for its links
                        cid, depth, _ = frame
                        if not is_identity(cid):
                            pending[pool.submit(self._local_or_fetch, cid, stop)] = (
                                walker, depth)
                    busy = {id(w) for w, _ in pending.values()}
                    walkers = [w for w in walkers if id(w) in busy or w.pending()]
                    if not pending:
                        break
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        walker, depth = pending.pop(future)
                        cid, data = future.result()
                        walker.check_block(cid, data)
                        walker.push(cid, depth, [(link, None) for link in links_of(cid, data)])
            except BaseException:
                stop.set()  # the requests still in flight stop at their next check
                raise

    def _local_or_fetch(self, cid: CID, stop: threading.Event) -> tuple[CID, bytes]:
        if self.store.has(cid):
            return cid, self.store.get(cid)  # verified on read, like every local block
        return cid, self.fetch_block(cid, stop)

    # -- reporting ------------------------------------------------------------------------
    def stats(self) -> list[GatewayStat]:
        with self._lock:
            out = []
            for url in self.urls:
                record = self._reputation.record(url)
                out.append(GatewayStat(url, record.score, record.successes, record.failures,
                                       record.bad_blocks, url in self._dropped,
                                       record.backoff_until))
            return out


def _read_before(response: httpx.Response, deadline: float, stop: threading.Event,
                 what: str) -> bytes:
    """The whole body, read chunk by chunk, each chunk checked against the deadline.

    Raises:
        TooLarge: more than :data:`MAX_GATEWAY_BLOCK` bytes (the rest is never read).
        Timeout: ``deadline`` passed before the body ended.
        _Stopped: ``stop`` was set.
    """
    body = bytearray()
    for chunk in response.iter_bytes():
        if stop.is_set():
            raise _Stopped
        if time.monotonic() > deadline:
            raise Timeout(f"{what}: the body was still arriving at the deadline")
        body += chunk
        if len(body) > MAX_GATEWAY_BLOCK:
            raise TooLarge(f"{what}: more than {MAX_GATEWAY_BLOCK} bytes")
    return bytes(body)


class _Hedge:
    """One block asked of the gateways, best first, hedged (see the module docstring)."""

    def __init__(self, gateways: TrustlessGateways, cid: CID,
                 cancel: threading.Event | None) -> None:
        self.gateways = gateways
        self.cid = cid
        self.cancel = cancel
        self.stop = threading.Event()
        self.deadline = time.monotonic() + gateways.timeout
        self.waiting = gateways.ranked()
        self.running: dict[Future[bytes | None], tuple[str, float]] = {}
        self.lies: list[str] = []
        self.slow: list[str] = []

    def _start_next(self) -> float:
        """Ask the next gateway; when the one after it may be asked."""
        url = self.waiting.pop(0)
        now = time.monotonic()
        future = self.gateways._requests.submit(self.gateways._ask, url, self.cid,
                                                self.deadline, self.stop)
        self.running[future] = (url, now)
        return now + self.gateways.hedge_after

    def run(self) -> bytes | None:
        """The verified block, or None when every gateway failed or the deadline passed
        (then ``slow`` names the gateways still sending, each recorded as failed).

        Raises:
            OperationCancelled: the caller's cancel was set.
        """
        next_hedge = 0.0
        while True:
            if self.cancel is not None and self.cancel.is_set():
                raise OperationCancelled(f"fetching {cid_str(self.cid)} was cancelled")
            now = time.monotonic()
            if self.waiting and now >= next_hedge:
                next_hedge = self._start_next()
                continue
            if not self.running:
                return None
            if now >= self.deadline:
                for url, _ in self.running.values():
                    self._slow(url)
                return None
            wake = min(self.deadline, next_hedge if self.waiting else self.deadline) - now
            done, _ = wait(self.running, timeout=min(max(wake, 0.0), _CANCEL_CHECK),
                           return_when=FIRST_COMPLETED)
            for future in done:
                url, started = self.running.pop(future)
                try:
                    data = future.result()
                except IntegrityError as exc:
                    self.lies.append(str(exc))
                except Timeout:
                    self._slow(url)
                except _Stopped:
                    pass
                else:
                    if data is not None:
                        self._losers_before(started)
                        return data
                next_hedge = 0.0  # a gateway gave up: the next is asked at once

    def _slow(self, url: str) -> None:
        self.slow.append(url)
        self.gateways.failed(url)

    def _losers_before(self, won_at: float) -> None:
        """Gateways asked no later than the winner that had not answered were slower."""
        for url, started in self.running.values():
            if started <= won_at:
                self.gateways.failed(url)
