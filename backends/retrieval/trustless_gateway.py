"""Trustless HTTP gateways as a retrieval source (``--trustless-gateway URL``).

A gateway is asked the way Helia's trustless-gateway block broker and Kubo's HTTP retrieval
ask: ``GET /ipfs/{cid}?format=raw`` with ``Accept: application/vnd.ipld.raw``, one block
per request. Nothing it says is trusted:

* a block is read up to :data:`MAX_GATEWAY_BLOCK` (2 MiB, the spec's and Helia's bound)
  and verified against its CID before it is stored; a gateway whose bytes do not hash to
  the CID is dropped for the rest of the process (a liar is never asked again);
* a whole DAG is fetched block by block, walked by the one DAG walker (so with every
  bound of :mod:`.limits`), several requests in flight, each block verified as it arrives;
* ``429 Too Many Requests`` puts the gateway in back-off for ``Retry-After`` (bounded),
  404 and errors count as failures in its reputation (the same scorer bitswap peers use),
  and every request is bounded by a timeout.

Gateways are tried best-first by reputation. The fetcher stores what it verified into the
blockstore it was given, as the ``BlockFetcher`` protocol asks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Protocol
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
    TooLarge,
)
from ipfs_mcp.backends.http_answers import read_bounded

MAX_GATEWAY_BLOCK = 2 * 1024 * 1024
MAX_RETRY_AFTER = 60.0  # seconds a 429 may keep a gateway aside, whatever it asks
IN_FLIGHT = 8  # block requests at once while fetching a DAG
_RAW = "application/vnd.ipld.raw"


class BlockPut(Protocol):
    """The blockstore the verified blocks go to (``backends.blockstore.Blockstore``)."""

    def has(self, cid: CID) -> bool: ...

    def get(self, cid: CID) -> bytes: ...

    def put(self, cid: CID, data: bytes) -> bool: ...


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


class TrustlessGateways:
    """``BlockFetcher`` over trustless HTTP gateways (see the module docstring).

    Args:
        urls: gateway base URLs (``http://127.0.0.1:8080``).
        store: where verified blocks go (the embedded blockstore).
        client: the HTTP client to use (closed by :meth:`close` only if made here).
        timeout: seconds one request may take.
    """

    name = "trustless-gateway"

    def __init__(self, urls: Sequence[str], store: BlockPut, *,
                 client: httpx.Client | None = None, timeout: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.urls = [gateway_url(u) for u in urls]
        self.store = store
        self.timeout = timeout
        self._owns_client = client is None
        self.client = client or httpx.Client(timeout=httpx.Timeout(timeout),
                                             follow_redirects=False)
        self._clock = clock
        self._reputation = ProviderReputation(clock)
        self._dropped: dict[str, str] = {}
        self._lock = threading.Lock()  # the reputation is not thread-safe

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    # -- one block ------------------------------------------------------------------------
    def _ranked(self) -> list[str]:
        with self._lock:
            live = [u for u in self.urls if u not in self._dropped]
            return [str(u) for u in self._reputation.get_optimal_providers(live)]

    def _ask(self, url: str, cid: CID) -> bytes | None:
        """The verified block from one gateway, or None when it does not have it.

        Raises:
            IntegrityError: it sent bytes that are not the block (it is dropped).
        """
        started = self._clock()
        target = f"{url}/ipfs/{cid_str(cid)}?format=raw"
        try:
            with self.client.stream("GET", target, headers={"Accept": _RAW}) as response:
                if response.status_code == 429:
                    pause = _retry_after(response)
                    with self._lock:
                        self._reputation.update_provider_stats(url, False)
                        self._reputation.back_off(url, pause)
                    return None
                if response.status_code != 200:
                    with self._lock:
                        self._reputation.update_provider_stats(url, False)
                    return None
                body = read_bounded(response, MAX_GATEWAY_BLOCK)
                if body is None:
                    raise TooLarge(f"{url} sent more than {MAX_GATEWAY_BLOCK} bytes for "
                                   f"block {cid_str(cid)}")
        except httpx.HTTPError:
            with self._lock:
                self._reputation.update_provider_stats(url, False)
            return None
        except TooLarge as exc:
            self._drop(url, str(exc))
            raise IntegrityError(str(exc)) from exc
        data = body
        try:
            verify_block(cid, data)
        except IntegrityError as exc:
            self._drop(url, f"sent bytes that do not hash to {cid_str(cid)}")
            raise IntegrityError(f"trustless gateway {url} sent bytes for {cid_str(cid)} that "
                                 "do not match it; the gateway is no longer asked") from exc
        with self._lock:
            self._reputation.update_provider_stats(url, True, self._clock() - started,
                                                   len(data))
        return data

    def _drop(self, url: str, why: str) -> None:
        with self._lock:
            self._dropped[url] = why
            self._reputation.record_bad_block(url)

    def fetch_block(self, cid: CID, cancel: threading.Event | None = None) -> bytes:
        """One block from the best gateway that has it, verified and stored.

        Raises:
            BlockNotFound: no gateway had it (each one's answer in the message).
            OperationCancelled: ``cancel`` was set.
        """
        if is_identity(cid):
            raise BlockNotFound(cid_str(cid), "trustless gateways (identity CIDs hold their "
                                              "data and are never fetched)")
        lies: list[str] = []
        for url in self._ranked():
            if cancel is not None and cancel.is_set():
                raise OperationCancelled(f"fetching {cid_str(cid)} was cancelled")
            try:
                data = self._ask(url, cid)
            except IntegrityError as exc:
                lies.append(str(exc))
                continue
            if data is not None:
                self.store.put(cid, data)
                return data
        tried = ", ".join(self.urls) or "none configured"
        detail = f"; {'; '.join(lies)}" if lies else ""
        raise BlockNotFound(cid_str(cid), f"the trustless gateways ({tried}){detail}")

    # -- a whole DAG ----------------------------------------------------------------------
    def fetch_dag(self, root: CID, cancel: threading.Event | None = None) -> None:
        """Every block under ``root`` that is not local yet, verified and stored.

        Raises:
            BlockNotFound: some block no gateway had (the DAG stays partial, nothing pinned).
            OperationCancelled: ``cancel`` was set.
            DagTooLarge: deeper, wider or with more blocks than one walk may visit.
        """
        # Our own event, so a failure here stops our requests without setting the caller's.
        stop = threading.Event()
        walker: Walker[None] = Walker(root)  # the bounds every walk keeps; blocks seen once
        pending: dict[Future[tuple[CID, bytes]], int] = {}  # each request's depth
        with ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="gateway") as pool:
            try:
                while True:
                    if cancel is not None and cancel.is_set():
                        raise OperationCancelled(f"fetching {cid_str(root)} was cancelled")
                    while len(pending) < IN_FLIGHT and (frame := walker.pop()) is not None:
                        cid, depth, _ = frame
                        if not is_identity(cid):
                            pending[pool.submit(self._local_or_fetch, cid, stop)] = depth
                    if not pending:
                        break
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        depth = pending.pop(future)
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
