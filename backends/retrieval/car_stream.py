"""Whole DAGs from HTTP providers as one verified CAR stream each, not a request per block.

A provider (a trustless gateway: ours, Kubo's, rainbow) is asked
``GET {base}/ipfs/{root}?format=car&dag-scope=all&car-dups=n`` with
``Accept: application/vnd.ipld.car;version=1;order=dfs;dups=n``. The body goes through the
project's CAR reader (:func:`~ipfs_mcp.backends.core.car.read_car`: bounded header and
sections, every block hashed against its CID), and each block must also be the one the
DAG walk expects next, depth-first in link order, a block seen earlier in the same response
not repeated (boxo's ``verifcar`` and Lassie check the same way). The walk is the one DAG
walker's (:class:`~ipfs_mcp.backends.core.dag.Walker`), so its bounds hold, and a provider
can neither inject a block nobody linked to, nor reorder, nor send a different root.
Identity CIDs are walked through, never expected on the wire (the spec keeps them out).

A request has a total deadline (``timeout``) and a stall deadline (``stall``): no verified
block for that long, checked at every chunk of the body, loses the request, so a provider
sending a byte every few seconds cannot hold it. What a provider does wrong counts in its
reputation through :class:`Providers` (the trustless-gateway source's scorer):

* bytes that are not the block, a block that was not asked for, a malformed CAR: a lie,
  the provider is dropped;
* a cut, a stall, an error status, a CAR that ends before the walk does: a failure.

Either way the fetch resumes where it was: the walk's frontier (the block it was waiting
for and every subtree still queued), less what is stored by then, is asked of the next
provider, one CAR per missing subtree. Single raw leaves are left to the caller's per-block
path, which asks several at once; so is whatever no provider sent.

:meth:`CarStreams.receive` also says how many blocks the DAG holds once nothing under the
root is missing (every block met by a walk: sent and verified, or found stored), so a caller
need not walk the whole DAG again to learn that it is complete.

Verified blocks go to the blockstore on writer threads beside the reader, at most
:data:`WRITE_AHEAD` blocks queued. A store that receives in batches (the blockstore's
``receiving``) takes each as the reader's proof of its hash (:class:`VerifiedBlock`), so it
is hashed once, and makes them durable per batch, all of them before the fetch returns; any
other store is handed each block to ``put`` (which hashes it again).
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO, Protocol, cast, runtime_checkable

import httpx
from multiformats import CID

from ipfs_mcp.backends.core.car import read_verified_car
from ipfs_mcp.backends.core.cids import (
    BlockVerifier,
    VerifiedBlock,
    cid_str,
    identity_data,
    is_identity,
    verify_block,
)
from ipfs_mcp.backends.core.dag import Walker, links_of
from ipfs_mcp.backends.errors import (
    DagTooLarge,
    IntegrityError,
    InvalidInput,
    OperationCancelled,
)

CAR_ACCEPT = "application/vnd.ipld.car;version=1;order=dfs;dups=n"
STALL = 10.0  # seconds a provider may go without sending a verified block
REQUEST_TIMEOUT = 600.0  # seconds one CAR request may take in all
WRITE_AHEAD = 32  # verified blocks queued for the blockstore at most
WRITERS = 2  # threads putting them (a placed leaf is written there, into its file)
_READ_BUFFER = 1 << 20
_RAW = 0x55


class BlockPut(Protocol):
    """The blockstore the verified blocks go to (``backends.repo.blockstore.Blockstore``)."""

    def has(self, cid: CID) -> bool: ...

    def get(self, cid: CID) -> bytes: ...

    def put(self, cid: CID, data: bytes) -> bool: ...


class VerifiedBatch(Protocol):
    """Verified blocks stored together (``blockstore.ReceivingBatch``)."""

    def put_verified(self, block: VerifiedBlock) -> None: ...

    def flush(self) -> None:
        """Every block put so far in place (``has`` sees it)."""
        ...


@runtime_checkable
class ReceivingStore(BlockPut, Protocol):
    """A store that takes verified blocks in batches, durable when the batch exits."""

    def receiving(self) -> contextlib.AbstractContextManager[VerifiedBatch]: ...


class Providers(Protocol):
    """The HTTP providers, best first, and what to remember of each answer."""

    def ranked(self) -> list[str]:
        """Base URLs to ask, best first (liars left out)."""
        ...

    def succeeded(self, url: str, seconds: float, nbytes: int) -> None:
        """``url`` sent one verified block of ``nbytes`` in ``seconds``."""
        ...

    def failed(self, url: str) -> None: ...

    def lied(self, url: str, why: str) -> None:
        """``url`` sent what no honest provider would; it is not asked again."""
        ...


class _Failed(Exception):
    """A provider's request ended before its subtree did; ``left`` is the walk's frontier."""

    def __init__(self, why: str, left: list[CID], *, lie: bool = False) -> None:
        super().__init__(why)
        self.left = left
        self.lie = lie


class _Clock:
    """The deadlines of one request, checked at every chunk of its body."""

    def __init__(self, what: str, timeout: float, stall: float,
                 cancel: threading.Event | None) -> None:
        self.what = what
        self.progress = time.monotonic()  # when the last verified block arrived
        self.deadline = self.progress + timeout
        self.stall = stall
        self.cancel = cancel

    def check(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise OperationCancelled(f"{self.what} was cancelled")
        now = time.monotonic()
        if now > self.deadline:
            raise TimeoutError(f"{self.what}: still arriving at the request's deadline")
        if now - self.progress > self.stall:
            raise TimeoutError(f"{self.what}: no verified block for {self.stall:g} s")


class _Body(io.RawIOBase):
    """An HTTP body as a stream for the CAR reader, the clock checked at every chunk."""

    def __init__(self, chunks: Iterator[bytes], clock: _Clock) -> None:
        self._chunks = chunks
        self._clock = clock
        self._pending = memoryview(b"")
        self.ended = False  # the provider ended the body (cleanly)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            self._clock.check()
            chunk = next(self._chunks, None)
            if chunk is None:
                self.ended = True
                return 0
            self._pending = memoryview(chunk)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


class _Writer:
    """Puts blocks on :data:`WRITERS` threads, at most :data:`WRITE_AHEAD` queued; errors
    re-raised."""

    def __init__(self, store: BlockPut, batch: VerifiedBatch | None) -> None:
        self._store = store
        self._batch = batch  # None: each block to the store's ``put``
        self._pool = ThreadPoolExecutor(WRITERS, thread_name_prefix="car-put")
        self._queued: deque[Future[None]] = deque()

    def put(self, block: VerifiedBlock) -> None:
        self._queued.append(self._pool.submit(self._put, block))
        while len(self._queued) > WRITE_AHEAD or (self._queued and self._queued[0].done()):
            self._queued.popleft().result()

    def _put(self, block: VerifiedBlock) -> None:
        if self._batch is not None:
            self._batch.put_verified(block)
        else:
            self._store.put(block.cid, block.data)

    def drain(self) -> None:
        """Wait for every queued put.

        Raises:
            Whatever the store raised (DiskFull, ...).
        """
        try:
            while self._queued:
                self._queued.popleft().result()
        finally:
            self._queued.clear()

    def flush(self) -> None:
        """Wait for every queued put, and for the blocks to be in place (``has``).

        Raises:
            Whatever the store raised (DiskFull, ...).
        """
        self.drain()
        if self._batch is not None:
            self._batch.flush()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


@dataclass(frozen=True)
class Received:
    """What one :meth:`CarStreams.receive` left and found."""

    left: list[CID]  # roots of what is still missing, in walk order
    # Blocks in the whole DAG (identity ones included, each once), when ``left`` is empty.
    dag_blocks: int | None


def car_url(base: str, root: CID) -> str:
    return f"{base}/ipfs/{cid_str(root)}?format=car&dag-scope=all&car-dups=n"


class CarStreams:
    """Whole DAGs over HTTP as verified CAR streams (see the module docstring).

    Args:
        providers: who to ask and their reputation.
        store: where verified blocks go.
        client: the HTTP client (owned by the caller).
        timeout: seconds one CAR request may take in all.
        stall: seconds a provider may go without sending a verified block.
        verify: what hashes each block against its CID as it arrives.
    """

    def __init__(self, providers: Providers, store: BlockPut, client: httpx.Client, *,
                 timeout: float = REQUEST_TIMEOUT, stall: float = STALL,
                 verify: BlockVerifier = verify_block) -> None:
        self.providers = providers
        self.store = store
        self.client = client
        self.timeout = timeout
        self.stall = stall
        self.verify = verify

    def fetch(self, root: CID, cancel: threading.Event | None = None) -> list[CID]:
        """Stream the DAG under ``root`` into the store from the providers, best first,
        each asked until it fails once; returns the roots of what is still missing (single
        raw leaves, and subtrees no provider sent whole), in walk order.

        Raises:
            OperationCancelled: ``cancel`` was set.
            DagTooLarge: the DAG is deeper, wider or larger than one walk may be.
            IntegrityError: a verified block is not valid for its codec (the content's
                fault, not a provider's).
            DiskFull: from the store.
        """
        return self.receive(root, cancel).left

    def receive(self, root: CID, cancel: threading.Event | None = None) -> Received:
        """:meth:`fetch`, also counting the DAG's blocks when it is complete.

        Raises:
            As :meth:`fetch`.
        """
        met: set[bytes] = set()  # multihashes the walks found stored or verified
        frontier = self.missing([root], met)
        with self._receiving() as batch:  # every block durable when it exits
            writer = _Writer(self.store, batch)
            try:
                for url in self.providers.ranked():
                    frontier = self._from(url, frontier, writer, cancel, met)
                    if not any(cid.codec.code != _RAW for cid in frontier):
                        break
            finally:
                try:
                    writer.drain()
                finally:
                    writer.close()
        return Received(frontier, None if frontier else len(met))

    def _receiving(self) -> contextlib.AbstractContextManager[VerifiedBatch | None]:
        """The store's batch for verified blocks; None for a store that only ``put``s."""
        if isinstance(self.store, ReceivingStore):
            return self.store.receiving()
        return contextlib.nullcontext()

    def _from(self, url: str, frontier: list[CID], writer: _Writer,
              cancel: threading.Event | None, met: set[bytes]) -> list[CID]:
        """Ask ``url`` for each subtree of ``frontier`` in turn until it fails; what is left."""
        left: list[CID] = []
        for index, sub in enumerate(frontier):
            if sub.codec.code == _RAW:
                left.append(sub)  # one block: the per-block path asks several at once
                continue
            try:
                self._stream(url, sub, writer, cancel, met)
            except _Failed as failed:
                if failed.lie:
                    self.providers.lied(url, str(failed))
                else:
                    self.providers.failed(url)
                writer.flush()  # what arrived counts before the frontier is recomputed
                return left + self.missing(failed.left, met) + frontier[index + 1:]
        return left

    def _stream(self, url: str, sub: CID, writer: _Writer,
                cancel: threading.Event | None, met: set[bytes]) -> None:
        """The whole DAG under ``sub`` from ``url``, every block verified and stored.

        Raises:
            _Failed: the provider did not send it whole and true.
        """
        what = f"trustless gateway {url} sending the CAR of {cid_str(sub)}"
        clock = _Clock(what, self.timeout, self.stall, cancel)
        walker: Walker[None] = Walker(sub)
        waiting: CID | None = None  # the block the walk waits for, once popped
        raw_body: _Body | None = None
        try:
            with self.client.stream(
                    "GET", car_url(url, sub),
                    headers={"Accept": CAR_ACCEPT, "Accept-Encoding": "identity"},
                    timeout=httpx.Timeout(self.stall)) as response:
                if response.status_code != 200:
                    raise _Failed(f"{what}: HTTP {response.status_code}", [sub])
                _check_type(response.headers.get("content-type", ""), what, sub)
                raw_body = _Body(response.iter_bytes(), clock)
                body = io.BufferedReader(raw_body, _READ_BUFFER)
                roots, blocks = read_verified_car(cast(BinaryIO, body), verify=self.verify)
                if [bytes(r.digest) for r in roots] != [bytes(sub.digest)]:
                    raise _Failed(f"{what}: its CAR names the roots "
                                  f"{[cid_str(r) for r in roots]}", [sub], lie=True)
                for verified in blocks:
                    cid, block = verified.cid, verified.data
                    if is_identity(cid):
                        continue  # carries itself; never expected on the wire
                    frame = _next_expected(walker, met)
                    if frame is None:
                        raise _Failed(f"{what}: sent {cid_str(cid)} after the DAG ended",
                                      [], lie=True)
                    waiting, depth = frame
                    if bytes(cid.digest) != bytes(waiting.digest) or cid.codec != waiting.codec:
                        raise _Failed(f"{what}: sent {cid_str(cid)} where the DAG walk "
                                      f"expects {cid_str(waiting)}", _left(walker, waiting),
                                      lie=True)
                    walker.check_block(waiting, block)
                    walker.push(waiting, depth, _content_links(waiting, block))
                    now = time.monotonic()
                    if not self.store.has(waiting):
                        writer.put(verified)
                        # One success per block fetched, as the per-block path counts.
                        self.providers.succeeded(url, now - clock.progress, len(block))
                    met.add(bytes(waiting.digest))
                    waiting = None
                    clock.progress = now
                frame = _next_expected(walker, met)
                if frame is not None:
                    raise _Failed(f"{what}: the CAR ended before {cid_str(frame[0])}",
                                  _left(walker, frame[0]))
        except (_Failed, DagTooLarge):
            raise  # DagTooLarge: the walk's own bounds, the DAG's fault, not the wire's
        except _BrokenContent as broken:
            raise broken.error from None
        except (IntegrityError, InvalidInput) as exc:  # bad bytes, bad CAR, oversized section
            # A CAR that stops inside a section is a cut, not a lie.
            cut = isinstance(exc, InvalidInput) and raw_body is not None and raw_body.ended
            raise _Failed(f"{what}: {exc}", _left(walker, waiting), lie=not cut) from exc
        except (httpx.HTTPError, TimeoutError) as exc:
            raise _Failed(f"{what}: {exc or type(exc).__name__}",
                          _left(walker, waiting)) from exc

    def missing(self, roots: Sequence[CID], met: set[bytes] | None = None) -> list[CID]:
        """The roots of the subtrees under ``roots`` that are not stored, in walk order:
        stored raw leaves are not read, stored inner blocks are read for their links. A
        stored block none of whose (two or more) children is stored stands for them: one
        CAR of it costs one block sent again, where a CAR per child would cost a request
        each (a reader that fetched the root alone first, then the DAG). The blocks found
        here are added to ``met``.

        Raises:
            DagTooLarge: beyond the walk's bounds.
        """
        out: list[CID] = []
        seen: set[bytes] = set()
        for root in roots:
            walker: Walker[None] = Walker(root, seen=seen)
            while (frame := walker.pop()) is not None:
                cid = frame[0]
                if is_identity(cid):
                    walker.push(cid, frame[1], _links(cid, identity_data(cid)))
                elif not self.store.has(cid):
                    out.append(cid)
                    continue
                elif cid.codec.code != _RAW:
                    links = _links(cid, self.store.get(cid))
                    stored = (self.store.has(link) for link, _ in links
                              if not is_identity(link))
                    if len(links) >= 2 and not any(stored):
                        out.append(cid)
                        continue
                    walker.push(cid, frame[1], links)
                if met is not None:
                    met.add(bytes(cid.digest))
        return out


class _BrokenContent(Exception):
    """A block that hashes to its CID but is not valid for its codec: the DAG is broken,
    whoever sends it, so no provider is blamed."""

    def __init__(self, error: IntegrityError) -> None:
        super().__init__(str(error))
        self.error = error


def _content_links(cid: CID, block: bytes) -> list[tuple[CID, None]]:
    try:
        return _links(cid, block)
    except IntegrityError as exc:
        raise _BrokenContent(exc) from exc


def _links(cid: CID, block: bytes) -> list[tuple[CID, None]]:
    return [(link, None) for link in links_of(cid, block)]


def _next_expected(walker: Walker[None], met: set[bytes]) -> tuple[CID, int] | None:
    """The next block the provider must send, with its depth: identity blocks are walked
    through here (and added to ``met``)."""
    while (frame := walker.pop()) is not None:
        cid, depth, _ = frame
        if not is_identity(cid):
            return cid, depth
        walker.push(cid, depth, _links(cid, identity_data(cid)))
        met.add(bytes(cid.digest))
    return None


def _left(walker: Walker[None], waiting: CID | None) -> list[CID]:
    """The frontier: the block the walk was waiting for, then everything queued."""
    return ([waiting] if waiting is not None else []) + walker.pending()


def _check_type(content_type: str, what: str, sub: CID) -> None:
    """A CAR v1 in DFS order without duplicates, or no parameters (the defaults) at all.

    Raises:
        _Failed: another media type or order (a failure, not a lie: it answered another
            question).
    """
    media, *params = (part.strip().lower() for part in content_type.split(";"))
    if media != "application/vnd.ipld.car":
        raise _Failed(f"{what}: answered {content_type or 'no content type'}", [sub])
    for param in params:
        key, _, value = param.partition("=")
        if (key, value) in (("version", "2"), ("order", "unk"), ("dups", "y")):
            raise _Failed(f"{what}: answered a CAR with {param}", [sub])
