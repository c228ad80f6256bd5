"""The cancel token of the blocking work running in this thread.

Tools run blocking backend calls in worker threads (``tools.progress.run_blocking``). When
the caller is cancelled, the thread cannot be interrupted from outside; instead it carries
a ``threading.Event`` that is set on cancellation. Deep in a read, a block fetch from the
network (``BlockFetcher.fetch_dag(root, cancel=...)``) hands that event to the P2P node,
which then stops its network work at once instead of at its own time-out.

A thread-local rather than an argument on every backend method: the token belongs to the
call, not to the data, and every layer in between (router, backend, exporter) would
otherwise have to pass along something it never uses.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

_local = threading.local()


def current_cancel() -> threading.Event | None:
    """The event that is set when this thread's work is cancelled, if any."""
    event: threading.Event | None = getattr(_local, "event", None)
    return event


@contextlib.contextmanager
def cancelling(event: threading.Event) -> Iterator[None]:
    """Run the block with ``event`` as this thread's cancel token."""
    previous = current_cancel()
    _local.event = event
    try:
        yield
    finally:
        _local.event = previous
