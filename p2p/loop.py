"""The running node's trio nursery and loop token, shared by its parts.

The node's parts (peers, providing, fetching, the thread bridge) start background work in
the node's one nursery, so that a failure there reaches the node's ``async with`` and is
never swallowed, and they refuse work while the node is not running. :class:`NodeLoop` is
that one shared handle: the node sets it on entry and clears it on exit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio.lowlevel
import trio

from ipfs_mcp.backends.errors import BackendUnavailable


class NodeLoop:
    """Where the node's background tasks run, while it runs."""

    def __init__(self) -> None:
        self._nursery: trio.Nursery | None = None
        self.token: anyio.lowlevel.EventLoopToken | None = None

    def open(self, nursery: trio.Nursery) -> None:
        """The node is up: tasks start in ``nursery``; threads reach the current loop."""
        self._nursery = nursery
        self.token = anyio.lowlevel.current_token()

    def close(self) -> None:
        self._nursery = None
        self.token = None

    def nursery(self) -> trio.Nursery:
        """The nursery to start work in.

        Raises:
            BackendUnavailable: the node is not running.
        """
        if self._nursery is None:
            raise BackendUnavailable("the p2p node is not running; start it with `async with`")
        return self._nursery

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: object) -> bool:
        """Start ``fn(*args)`` in the background if the node is up; whether it started."""
        if self._nursery is None:
            return False
        self._nursery.start_soon(fn, *args)
        return True
