"""Per-request block loading and the bounds one gateway enforces."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import anyio.to_thread
from multiformats import CID

from ipfs_mcp.backends.core.cids import identity_data, is_identity
from ipfs_mcp.backends.errors import BlockNotFound, TooLarge

from ..config import DEFAULT_GATEWAY_PER_CLIENT
from .source import BlockSource

T = TypeVar("T")


@dataclass(frozen=True)
class GatewayLimits:
    """Bounds one gateway enforces. Values are generous for real clients, small for abuse."""

    max_in_flight: int = 64
    # From one client address (an IPv6 /64): what one client may hold of the slots above.
    max_per_client: int = DEFAULT_GATEWAY_PER_CLIENT
    # --gateway-recursive only: what one request may make this node fetch.
    max_fetch_bytes: int = 256 * 1024 * 1024
    # Entries shown in one folder listing (a HAMT can hold millions).
    max_listing_entries: int = 10_000
    # Entries of one listing whose size is looked up (a block read each, blocks here only).
    max_listing_sizes: int = 1_000
    # Bytes gathered from the worker thread per send: big enough to amortise the hop (a
    # CAR's blocks are read many to a hop), small enough to keep memory per request low
    # (a stream holds two: one being sent while the next is read).
    chunk_bytes: int = 1024 * 1024


class WorkerThreads(Protocol):
    """Where the gateway runs its blocking work (resolving, reading and verifying blocks):
    each call is one hop to a worker thread and back, which the event loop pays for."""

    async def run_sync(self, func: Callable[[], T]) -> T: ...


class AnyioThreads:
    """:class:`WorkerThreads` on anyio's worker thread pool (bounded by its limiter)."""

    async def run_sync(self, func: Callable[[], T]) -> T:
        return await anyio.to_thread.run_sync(func)


class RequestLoader:
    """One request's block loader (runs in worker threads): local first, then, only with a
    remote source, a bounded fetch."""

    def __init__(self, local: BlockSource, remote: BlockSource | None, budget: int) -> None:
        self._local = local
        self._remote = remote
        self._left = budget
        self._lock = threading.Lock()

    def __call__(self, cid: CID) -> bytes:
        if is_identity(cid):
            return identity_data(cid)
        try:
            return self._local.get_block(cid)
        except BlockNotFound:
            if self._remote is None:
                raise
        data = self._remote.get_block(cid)
        with self._lock:
            self._left -= len(data)
            if self._left < 0:
                raise TooLarge("this request fetched more than the gateway's per-request "
                               "bound (GatewayLimits.max_fetch_bytes)")
        return data
