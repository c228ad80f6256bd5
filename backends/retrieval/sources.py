"""Retrieval sources, asked together on a local miss (as Helia's block brokers are).

The Router hands one :class:`RetrievalSources` to the embedded backend as its
``BlockFetcher``. On a miss it asks every source at once (the P2P node's bitswap, the
trustless gateways), takes the first verified answer and tells the others to stop, so a
slow source loses its work to the fast ones. Each source verifies and stores what it
returns; nothing here trusts a byte. When every source fails, one
:class:`~ipfs_mcp.backends.errors.BlockNotFoundAnywhere` carries each source's failure with
its own type; but a failure that is not a miss is never reported as "not found": a full disk
(or a cancel, a corrupt block, a refusal to store more) is raised itself, a full disk first.

A read may narrow the sources its thread asks (:meth:`RetrievalSources.asking_only`): the
gateway serves what is here without asking anyone, or asks only the HTTP sources.

:meth:`RetrievalSources.answered_by` says which source answered this thread's last fetch,
for the Router's read report and the health resource.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TypeVar

from multiformats import CID

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.errors import (
    BlockNotFound,
    BlockNotFoundAnywhere,
    DiskFull,
    IntegrityError,
    OperationCancelled,
    StorageBudgetSpent,
    TooLarge,
)
from ipfs_mcp.backends.fetcher import BlockFetcher

_T = TypeVar("_T")

# Failures that say something about this node, this call or the content, not about where
# the block is: when every source failed, the first kind present here is the answer, in
# this order (a full disk first), never "not found".
DECISIVE: tuple[type[Exception], ...] = (DiskFull, StorageBudgetSpent, OperationCancelled,
                                         IntegrityError, TooLarge)


@dataclass(frozen=True)
class NamedSource:
    name: str  # "p2p", "trustless-gateway"
    fetcher: BlockFetcher
    # Asked only by a read that names it (the recursive gateway's peerless sources), never
    # on an ordinary miss.
    only_when_named: bool = False


class RetrievalSources:
    """A ``BlockFetcher`` over several sources, asked in parallel."""

    def __init__(self, sources: Sequence[NamedSource] = ()) -> None:
        self.sources = list(sources)
        self._local = threading.local()

    def add(self, source: NamedSource) -> None:
        """Add a source (the server adds them once it knows the backend is the embedded
        repo, which is where they store what they fetch)."""
        self.sources.append(source)

    def names(self) -> list[str]:
        """The sources an ordinary miss asks."""
        return [s.name for s in self.sources if not s.only_when_named]

    def answered_by(self) -> str | None:
        """The source that answered this thread's last fetch (None: nothing was fetched)."""
        name: str | None = getattr(self._local, "answered", None)
        return name

    def forget(self) -> None:
        self._local.answered = None

    @contextlib.contextmanager
    def asking_only(self, names: Collection[str]) -> Iterator[None]:
        """Fetches this thread makes inside the block ask only the sources called ``names``
        (none: no source at all, so a miss stays a miss)."""
        previous: frozenset[str] | None = getattr(self._local, "only", None)
        self._local.only = frozenset(names)
        try:
            yield
        finally:
            self._local.only = previous

    def _race(self, what: str, cid: CID, cancel: threading.Event | None,
              call: Callable[[BlockFetcher, threading.Event], _T]) -> _T:
        only: frozenset[str] | None = getattr(self._local, "only", None)
        if only is not None:
            asked = [s for s in self.sources if s.name in only]
            if not asked:
                raise BlockNotFound(cid_str(cid))  # this read asks no one: only what is here
        else:
            asked = [s for s in self.sources if not s.only_when_named]
        if not asked:
            raise BlockNotFound(cid_str(cid), "the local blockstore (no retrieval source is "
                                              "configured: no P2P node, no gateway)")
        if len(asked) == 1:
            single = asked[0]
            result = call(single.fetcher, cancel or threading.Event())
            self._local.answered = single.name
            return result
        errors: dict[str, BaseException] = {}
        # One stop event per source: one that gives up must not stop the others.
        stops = [threading.Event() for _ in asked]
        with ThreadPoolExecutor(len(asked), thread_name_prefix="source") as pool:
            futures: dict[Future[_T], str] = {
                pool.submit(call, s.fetcher, stop): s.name
                for s, stop in zip(asked, stops, strict=True)}
            pending = set(futures)
            try:
                while pending:
                    # Short waits so a cancel from the caller reaches the sources promptly.
                    done, pending = wait(pending, timeout=0.05, return_when=FIRST_COMPLETED)
                    if cancel is not None and cancel.is_set():
                        raise OperationCancelled(f"{what} {cid_str(cid)} was cancelled")
                    for future in done:
                        try:
                            result = future.result()
                        except Exception as exc:  # each source's own failure, kept
                            errors[futures[future]] = exc
                            continue
                        self._local.answered = futures[future]
                        return result
            finally:
                for stop in stops:  # the slower sources stop their network work
                    stop.set()
        raise _verdict(cid, errors)

    def fetch_block(self, cid: CID, cancel: threading.Event | None = None) -> bytes:
        """Raises:
            BlockNotFoundAnywhere: every source missed (each failure kept, typed).
            DiskFull, StorageBudgetSpent, OperationCancelled, IntegrityError, TooLarge: what
                one source hit, when every source failed (see :data:`DECISIVE`).
        """
        return self._race("fetching", cid, cancel, lambda f, stop: f.fetch_block(cid, stop))

    def fetch_dag(self, root: CID, cancel: threading.Event | None = None) -> None:
        """Raises: as :meth:`fetch_block`."""
        self._race("fetching", root, cancel, lambda f, stop: f.fetch_dag(root, stop))


def _verdict(cid: CID, errors: dict[str, BaseException]) -> Exception:
    """The one error for a fetch every source failed: the first :data:`DECISIVE` failure
    (noting what the others said), else a miss that carries each failure."""
    for kind in DECISIVE:
        for name, err in errors.items():
            if isinstance(err, kind):
                others = "; ".join(f"{n}: {e}" for n, e in errors.items() if n != name)
                if others:
                    err.add_note(f"the other retrieval sources: {others}")
                return err
    return BlockNotFoundAnywhere(cid_str(cid), errors)
