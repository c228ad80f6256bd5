"""The node's fetches as a ``backends.fetcher.BlockFetcher``, for worker threads.

The router runs blocking work in ``anyio.to_thread`` and, on a local miss, calls the
fetcher from there; the fetch itself must run on the node's trio loop. This bridge starts it
there and waits, with a ``threading.Event`` to cancel it by.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import CancelledError
from typing import TypeVar

import anyio.from_thread
import trio
from multiformats import CID

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.errors import BackendUnavailable, IpfsMcpError

from .fetching import Fetching
from .loop import NodeLoop
from .peers import Peers

# How often a NodeFetcher call waiting in a worker thread looks at its cancel token.
CANCEL_POLL = 0.05
T = TypeVar("T")


class NodeFetcher:
    """``backends.fetcher.BlockFetcher`` over a running node, with a cancel token.

    Its methods are called from worker threads (the router runs blocking work in
    ``anyio.to_thread``). Each call runs the fetch as a task on the node's trio loop and
    waits for it. Pass ``cancel``, a ``threading.Event``, to stop it from anywhere: once
    the event is set, the fetch is cancelled on the loop (within :data:`CANCEL_POLL`
    seconds), ends its network work as :meth:`Fetching.fetch_dag` does, and the call
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

    def __init__(self, loop: NodeLoop, fetching: Fetching, peers: Peers) -> None:
        self.loop = loop
        self.fetching = fetching
        self.peers = peers

    def _call(self, fn: Callable[[CID], Awaitable[T]], cid: CID,
              cancel: threading.Event | None) -> T:
        token = self.loop.token
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
            self.loop.nursery().start_soon(run)

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
        token = self.loop.token
        if token is None:
            raise BackendUnavailable("the p2p node is not running")
        try:
            return anyio.from_thread.run(self.peers.connect_peer, addr, token=token)
        except anyio.RunFinishedError as exc:
            raise BackendUnavailable("the p2p node stopped") from exc

    def fetch_block(self, cid: CID, cancel: threading.Event | None = None) -> bytes:
        """One block, verified and stored locally.

        Raises:
            BlockNotFound: no provider had it within the node's time budget.
            BackendUnavailable: the node is not running, or stopped meanwhile.
            concurrent.futures.CancelledError: ``cancel`` was set.
        """
        return self._call(self.fetching.fetch_block, cid, cancel)

    def fetch_dag(self, root: CID, cancel: threading.Event | None = None) -> None:
        """Every block under ``root``, verified and stored locally; nothing is pinned.

        Raises:
            BlockNotFound: some block could not be found; the error names it.
            BackendUnavailable: the node is not running, or stopped meanwhile.
            concurrent.futures.CancelledError: ``cancel`` was set.
        """
        self._call(self.fetching.fetch_dag, root, cancel)
