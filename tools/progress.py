"""Running blocking work (hashing, disk I/O) off the event loop, with progress and cancel.

The backends are synchronous and report bytes through a ``progress(nbytes)`` callback. A
:class:`Progress` is that callback: in the worker thread it counts bytes, forwards a
throttled report to the event loop, and raises :class:`OperationCancelled` once the caller
has been cancelled, so the import or export unwinds through its own cleanup (temp files
removed, nothing pinned) before the tool call returns. Where the content declares its size
the work tells the callback first (``total``, or :meth:`Progress.expect` from a backend), so
every report carries it; the CLI's bars read the same object.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread

from ipfs_mcp.backends.cancel import cancelling
from ipfs_mcp.backends.errors import OperationCancelled

T = TypeVar("T")
Reporter = Callable[[float, float | None, str | None], Awaitable[None]]

# Enough reports for a smooth bar, few enough that a fast local add is not slowed down by
# a round trip to the event loop per 256 KiB chunk.
_MIN_INTERVAL = 0.1


class Progress:
    def __init__(self, report: Reporter | None = None, total: int | None = None,
                 message: str = "") -> None:
        self.report = report
        self.total = total
        self.message = message
        self.done = 0
        self.stop = threading.Event()
        self._last = 0.0
        self.sent = 0  # bytes in the last report sent (so the final one is never skipped)

    def __call__(self, nbytes: int) -> None:
        """Called from the worker thread for each chunk handled.

        Raises:
            OperationCancelled: the tool call was cancelled.
        """
        if self.stop.is_set():
            raise OperationCancelled(f"{self.message or 'operation'} cancelled")
        self.done += nbytes
        now = time.monotonic()
        if self.report is not None and now - self._last >= _MIN_INTERVAL:
            self._last = now
            self.sent = self.done
            anyio.from_thread.run(self.report, float(self.done),
                                  None if self.total is None else float(self.total),
                                  self.message or None)

    def expect(self, total: int) -> None:
        """The bytes this operation will report in all, as the content declares them (the
        backends call it once they know; every report after carries it)."""
        self.total = total

    def check(self) -> None:
        """Raise if cancelled; for loops that have no byte count to report. Sends no
        report: one sent before the total is known would tell the client there is none.

        Raises:
            OperationCancelled: the tool call was cancelled.
        """
        if self.stop.is_set():
            raise OperationCancelled(f"{self.message or 'operation'} cancelled")


async def run_blocking(fn: Callable[[], T], progress: Progress | None = None) -> T:
    """Run ``fn`` in a worker thread; on cancellation, tell it to stop and wait for it.

    Waiting (rather than abandoning the thread) means a cancelled call has finished its
    cleanup when this returns. The wait is bounded by how often ``fn`` reports progress.
    """
    if progress is None:
        progress = Progress()
    stop = progress.stop

    def call() -> T:
        with cancelling(stop):  # a network fetch deep inside hears the cancel too
            return fn()

    async def watch() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            stop.set()

    # The error is kept and re-raised outside the task group, so callers see the
    # project's error itself rather than an ExceptionGroup around it.
    error: Exception | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(watch)
        try:
            result = await anyio.to_thread.run_sync(call)
        except Exception as exc:
            error = exc
        tg.cancel_scope.cancel()
    if error is not None:
        raise error
    if progress.report is not None and progress.done != progress.sent:
        # Reports are throttled: the last bytes always get one, so a client's bar ends full.
        progress.sent = progress.done
        await progress.report(float(progress.done),
                              None if progress.total is None else float(progress.total),
                              progress.message or None)
    return result
