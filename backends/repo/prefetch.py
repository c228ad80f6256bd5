"""Reading a DAG while it arrives: the whole-DAG fetch runs in the background and the
reader (an export to a file, a ``cat``) takes each block as soon as it is stored.

Without this, reading content that is not here first fetched the whole DAG and only then
read it back and wrote the output, so the output's writing (and its fsync) came after the
transfer instead of beside it. Here the first miss starts one ``fetch_dag`` for the
content's root in a thread of its own; every miss then waits on the blockstore's
``arrivals`` (notified after each put) until its block is stored, which the DAG fetch
does in about the order a depth-first reader needs. When the DAG fetch fails, the reader
fails with its error; a block it never promised (not under the root) is asked for on its
own, so a reader never waits on nothing.

Every block is verified by the blockstore that stores it. The reader takes the bytes of a
block stored a moment ago straight from that put (``Blockstore.fresh_blocks``), so they are
neither read back nor hashed a second time, whether the reader waited for it or the fetch
was ahead; only a block the reader reaches more than ``FRESH_BYTES`` behind the fetch is
read back from disk and verified again, as any read is.
Closing stops the background fetch (the reader failed, or was cancelled) and waits for it.
"""

from __future__ import annotations

import contextlib
import threading
from types import TracebackType

from multiformats import CID

from ipfs_mcp.backends.errors import BlockNotFound, OperationCancelled
from ipfs_mcp.backends.fetcher import BlockFetcher
from ipfs_mcp.backends.repo.blockstore import Blockstore

# How long one wait on the arrivals may last before the reader looks again (a put it
# missed between its check and its wait, or a cancel): a bound, not a pace.
_RECHECK_SECONDS = 0.5


class DagPrefetch:
    """One reader's background fetch of the DAG under ``root``."""

    def __init__(self, fetcher: BlockFetcher, blocks: Blockstore, root: CID,
                 cancel: threading.Event | None = None) -> None:
        self.fetcher = fetcher
        self.blocks = blocks
        self.root = root
        self.cancel = cancel  # the caller's (a tool's): set, everything stops
        self._stop = threading.Event()  # ours: the background fetch's cancel
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self._error: BaseException | None = None
        self._fresh = contextlib.ExitStack()  # the blockstore's fresh blocks, while we run

    def __enter__(self) -> DagPrefetch:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _run(self) -> None:
        try:
            self.fetcher.fetch_dag(self.root, self._stop)
        except BaseException as exc:  # kept for the reader, which decides what it means
            self._error = exc
        finally:
            self._done.set()
            with self.blocks.arrivals:
                self.blocks.arrivals.notify_all()

    def _start(self) -> None:
        if self._thread is None:
            self._fresh.enter_context(self.blocks.fresh_blocks())
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name=f"prefetch-{self.root}")
            self._thread.start()

    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            self._stop.set()
            raise OperationCancelled("the read was cancelled")

    def take(self, cid: CID) -> bytes | bool:
        """The block if the background fetch stored it a moment ago, handed over from that
        put (verified there, not read back); else whether it is stored already. Both are
        looked at in one hold of ``arrivals``: a block that arrives between two looks (a
        CAR stream can bring the rest of the DAG in that moment) is taken, not read back."""
        with self.blocks.arrivals:
            data = self.blocks.take_fresh(cid)
            return data if data is not None else self.blocks.has(cid)

    def load(self, cid: CID) -> bytes:
        """The block, from the blockstore, waiting for the background fetch to store it.

        Raises:
            BlockNotFound: the DAG fetch ended without it and no peer has it.
            OperationCancelled: the caller's cancel was set.
        """
        self._start()
        while not self._done.is_set():
            self._check_cancel()
            with self.blocks.arrivals:
                data = self.blocks.take_fresh(cid)
                if data is not None:
                    return data
                if self.blocks.has(cid):
                    break
                if self._done.is_set():
                    break
                self.blocks.arrivals.wait(_RECHECK_SECONDS)
        try:
            return self.blocks.get(cid)
        except BlockNotFound:
            pass
        self._check_cancel()
        if self._error is not None:
            # The DAG fetch failed (a block no source had, a DAG over the bounds): that is
            # this read's failure too, named as the fetch named it; asking again for this
            # block alone would only wait out another timeout.
            raise self._error
        # The DAG fetch ended well without this block: it is not under the root the read
        # began from, so it is asked for alone.
        return self.fetcher.fetch_block(cid, self.cancel)

    def close(self) -> None:
        """Stop the background fetch and wait for it to end."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._fresh.close()
