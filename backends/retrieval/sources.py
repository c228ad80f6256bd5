"""Retrieval sources, asked together on a local miss (as Helia's block brokers are).

The Router hands one :class:`RetrievalSources` to the embedded backend as its
``BlockFetcher``. On a miss it asks every source at once (the P2P node's bitswap, the
trustless gateways), takes the first verified answer and tells the others to stop, so a
slow source loses its work to the fast ones. Each source verifies and stores what it
returns; nothing here trusts a byte. When every source fails, one ``BlockNotFound`` names
each source's failure.

:meth:`RetrievalSources.answered_by` says which source answered this thread's last fetch,
for the Router's read report and the health resource.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TypeVar

from multiformats import CID

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.errors import BlockNotFound, OperationCancelled
from ipfs_mcp.backends.fetcher import BlockFetcher

_T = TypeVar("_T")


@dataclass(frozen=True)
class NamedSource:
    name: str  # "p2p", "trustless-gateway"
    fetcher: BlockFetcher


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
        return [s.name for s in self.sources]

    def answered_by(self) -> str | None:
        """The source that answered this thread's last fetch (None: nothing was fetched)."""
        name: str | None = getattr(self._local, "answered", None)
        return name

    def forget(self) -> None:
        self._local.answered = None

    def _race(self, what: str, cid: CID, cancel: threading.Event | None,
              call: Callable[[BlockFetcher, threading.Event], _T]) -> _T:
        if not self.sources:
            raise BlockNotFound(cid_str(cid), "the local blockstore (no retrieval source is "
                                              "configured: no P2P node, no gateway)")
        if len(self.sources) == 1:
            only = self.sources[0]
            result = call(only.fetcher, cancel or threading.Event())
            self._local.answered = only.name
            return result
        errors: dict[str, BaseException] = {}
        # One stop event per source: one that gives up must not stop the others.
        stops = [threading.Event() for _ in self.sources]
        with ThreadPoolExecutor(len(self.sources), thread_name_prefix="source") as pool:
            futures: dict[Future[_T], str] = {
                pool.submit(call, s.fetcher, stop): s.name
                for s, stop in zip(self.sources, stops, strict=True)}
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
        detail = "; ".join(f"{name}: {err}" for name, err in errors.items())
        raise BlockNotFound(cid_str(cid), f"any retrieval source ({detail})")

    def fetch_block(self, cid: CID, cancel: threading.Event | None = None) -> bytes:
        """Raises: BlockNotFound (every source failed, each named); OperationCancelled."""
        return self._race("fetching", cid, cancel, lambda f, stop: f.fetch_block(cid, stop))

    def fetch_dag(self, root: CID, cancel: threading.Event | None = None) -> None:
        """Raises: BlockNotFound (every source failed, each named); OperationCancelled."""
        self._race("fetching", root, cancel, lambda f, stop: f.fetch_dag(root, stop))
