"""Blocks received over bitswap, made durable in batches rather than one by one.

Each block a peer sends is hashed on a worker thread (its CID computed from its bytes, see
:func:`.message.block_cid`) and then stored. Stored one by one, each cost an fsync of its
own and of its folder: from a Kubo provider, which sends every 256 KiB block on a stream of
its own, ``atomic_write`` and ``DiskSync.file`` took 38% of the receiving threads' samples.
Here the blocks go into the blockstore's receive batch (``Blockstore.receiving``, the one a
CAR stream uses): written with no sync each, then made durable and renamed into place
together every few MiB.

Only a DAG walk's blocks go this way (the want says so, ``WantRecord.batched``); a block
fetched on its own is still stored and synced on its own, since it is handed on at once. A
block in the open batch is not yet seen by ``has`` or ``get``, so whoever hands such blocks
on settles first (:meth:`ReceiveBatches.settle`): a DAG walk before its report (and so
before any pin), a one-block fetch whose block a walk wanted too, and the engine when it
stops. A batch whose commit fails fails every walk that was running while it was open
(:meth:`ReceiveBatches.mark`), since any of them may have had a block in it. Blocks of a
walk cut short wait in ``tmp/`` for the next settle, and a later walk that wants them again
takes them from the batch without writing them twice.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Protocol

from multiformats import CID

from ipfs_mcp.backends.errors import IpfsMcpError


class ReceiveBatch(Protocol):
    """One open batch (``blockstore.ReceivingBatch``)."""

    def put_computed(self, cid: CID, data: bytes) -> None: ...


class ReceivingStore(Protocol):
    def receiving(self) -> contextlib.AbstractContextManager[ReceiveBatch]: ...


class _Open:
    """A batch and the threads putting into it right now."""

    def __init__(self, store: ReceivingStore) -> None:
        self.context = store.receiving()
        self.batch = self.context.__enter__()
        self.users = 0  # under ReceiveBatches._lock
        self.closed = False  # likewise: the first to close it does, once


class ReceiveBatches:
    """The engine's open receive batch, shared by its worker threads."""

    def __init__(self, store: ReceivingStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # a batch's last user left it
        self._settling = threading.Lock()  # one close at a time, so a settle waits for all
        self._open: _Open | None = None
        self._failures = 0
        self._failure: IpfsMcpError | None = None

    def put(self, cid: CID, data: bytes) -> None:
        """Store a block whose CID the caller computed from these very bytes (worker thread).

        Raises:
            IpfsMcpError: its write failed (DiskFull, or an earlier write of the same batch);
                the batch is then closed, and the next put opens another.
        """
        with self._lock:
            if self._open is None:
                self._open = _Open(self._store)
            current = self._open
            current.users += 1
        try:
            current.batch.put_computed(cid, data)
        except IpfsMcpError:
            with self._lock:
                if self._open is current:
                    self._open = None  # later blocks go into a fresh batch
            self._leave(current)
            self._close(current)
            raise
        self._leave(current)

    def mark(self) -> int:
        """A fetch about to start takes this, and hands it to :meth:`settle` at its end."""
        with self._lock:
            return self._failures

    def settle(self, since: int | None = None) -> None:
        """Make every block put so far durable and seen by ``has`` (worker thread).

        Raises:
            IpfsMcpError: this commit failed, or (with ``since`` from :meth:`mark`) a batch
                committed since then failed.
        """
        with self._settling:
            with self._lock:
                current, self._open = self._open, None
            if current is not None:
                self._close(current)
        with self._lock:
            if since is not None and self._failures > since:
                assert self._failure is not None
                raise self._failure

    def _leave(self, current: _Open) -> None:
        with self._lock:
            current.users -= 1
            if not current.users:
                self._idle.notify_all()

    def _close(self, current: _Open) -> None:
        """Commit a batch that is no longer open to puts, once its last user has left: what
        was put is durable and in place. A failure is counted, and raised to this caller.
        """
        with self._lock:
            while current.users:
                self._idle.wait()
            if current.closed:
                return
            current.closed = True
        try:
            current.context.__exit__(None, None, None)
        except IpfsMcpError as exc:
            with self._lock:
                self._failures += 1
                self._failure = exc
            raise
