"""How much the recursive gateway may store on behalf of anonymous clients, in all.

Each request is bounded (``GatewayLimits.max_fetch_bytes``), but requests add up: without a
total, anyone who can reach a recursive gateway could fill the disk with content of their
choosing, a request at a time. Kubo bounds its repo with ``Datastore.StorageMax`` (10 GB by
default); the recursive gateway bounds what it adds by the same default
(``--gateway-max-store`` / ``IPFS_MCP_GATEWAY_MAX_STORE`` to change it), and never fetches
once the disk is down to a reserve that the rest of the server still needs (a tenth of the
space that was free when the gateway started).

A fetch is refused before it starts, then charged with what it stored, so the total can pass
the bound by at most one block per request in flight. What the gateway stored is unpinned,
so ``ipfs-mcp repo gc`` takes it back; the budget itself is counted from the gateway's
start.
"""

from __future__ import annotations

import threading
from pathlib import Path

from ipfs_mcp.backends.core.limits import free_bytes
from ipfs_mcp.backends.errors import StorageBudgetSpent

DEFAULT_MAX_STORE = 10 * 1000**3  # Kubo's Datastore.StorageMax default, 10 GB
RESERVE_SHARE = 0.1


class StoreBudget:
    """The bytes the recursive gateway may still store (thread-safe: requests run in
    worker threads)."""

    def __init__(self, root: Path, max_bytes: int | None = None) -> None:
        self.root = Path(root)
        self.limit = DEFAULT_MAX_STORE if max_bytes is None else max_bytes
        self.reserve = int(free_bytes(self.root) * RESERVE_SHARE)
        self.spent = 0
        self._lock = threading.Lock()

    def check(self) -> None:
        """Before a fetch.

        Raises:
            StorageBudgetSpent: the gateway stored its bound already, or the disk is down
                to the reserve.
        """
        with self._lock:
            spent = self.spent
        if spent >= self.limit:
            raise StorageBudgetSpent(
                f"the recursive gateway has stored {spent} bytes, its bound of {self.limit} "
                "(--gateway-max-store / IPFS_MCP_GATEWAY_MAX_STORE); only content already "
                "here is served")
        free = free_bytes(self.root)
        if free <= self.reserve:
            raise StorageBudgetSpent(
                f"the disk holding the repo has {free} bytes free, at or under the "
                f"{self.reserve} bytes kept for the rest of the server; only content "
                "already here is served")

    def charge(self, stored: int) -> None:
        with self._lock:
            self.spent += stored
