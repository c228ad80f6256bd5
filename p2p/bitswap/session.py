"""Fetching blocks and whole DAGs from a set of peers.

A :class:`Session` owns a list of candidate peers (providers found in the DHT, peers we are
connected to) and remembers, for this fetch only, who delivered and who did not:

- the first block of a session is discovered by broadcasting want-have (with
  ``sendDontHave``) to every candidate, then asking a peer that said HAVE for the block;
- later blocks go straight to want-block, spread over the peers that delivered, in
  proportion to what they delivered (a peer's load is ``in_flight / (1 + delivered)``);
- a peer that says DONT_HAVE is not asked for that block again; one that stays silent for
  ``want_timeout`` (nothing at all from it, not just nothing for this block) loses the want
  to the next peer, and is dropped from the session if it never delivered;
- a peer that disconnects, or sends a block we did not ask for, is dropped from the session;
- peers can join while blocks are being fetched (providers found in the DHT while the
  connected peers are already being asked); until :meth:`Session.end_discovery`, a block no
  peer has waits for them instead of failing.

:meth:`Session.fetch_dag` walks the DAG with up to ``window`` blocks in flight, reading what
is already local from the blockstore and fetching the rest.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import anyio
import trio
from libp2p.peer.id import ID
from multiformats import CID

from ipfs_mcp.backends.cids import cid_str
from ipfs_mcp.backends.dag import links_of
from ipfs_mcp.backends.errors import BlockNotFound, IpfsMcpError, TooLarge

from .engine import Bitswap, WantRecord
from .message import WantType

_RAW = 0x55
_WAIT = object()  # _pick's answer when a HAVE may still arrive


@dataclass(frozen=True)
class FetchReport:
    root: str
    blocks: int  # blocks in the DAG
    fetched: int  # of which came from peers
    bytes_fetched: int
    seconds: float
    by_peer: dict[str, int] = field(default_factory=dict)  # blocks delivered per peer


class Session:
    def __init__(self, engine: Bitswap, peers: Iterable[ID] = (), *,
                 want_timeout: float | None = None) -> None:
        self.engine = engine
        self.timeout = engine.config.want_timeout if want_timeout is None else want_timeout
        self.discovery_wait = min(1.0, self.timeout)
        self._peers: dict[str, ID] = {}
        self.hits: Counter[str] = Counter()
        self.inflight: Counter[str] = Counter()
        self.timeouts: Counter[str] = Counter()
        self.excluded: set[str] = set()
        self.bytes_fetched = 0
        # While providers are still being looked up, a block no current peer has is not
        # yet "not found": gets wait for new peers or for the lookup to end.
        self.discovering = False
        self.closed = False  # the fetch is over: peers found later are not taken
        self._active: set[WantRecord] = set()
        self.add_peers(peers)

    def add_peers(self, peers: Iterable[ID]) -> None:
        if self.closed:
            return
        for peer in peers:
            self._peers.setdefault(str(peer), peer)
        self._poke()

    def begin_discovery(self) -> None:
        self.discovering = True

    def end_discovery(self) -> None:
        self.discovering = False
        self._poke()

    def close(self) -> None:
        """The fetch using this session is over; a lookup still running is ignored."""
        self.closed = True
        self.discovering = False

    def _poke(self) -> None:
        for rec in list(self._active):
            rec.notify()

    @property
    def peers(self) -> list[ID]:
        return list(self._peers.values())

    # -- one block ----------------------------------------------------------------------
    async def get(self, cid: CID) -> bytes:
        """Fetch one block from the session's peers; it is verified and stored on return.

        Raises:
            BlockNotFound: every peer said DONT_HAVE, failed or timed out.
        """
        rec = self.engine.want_record(cid)
        self._active.add(rec)
        try:
            if rec.done.is_set() and rec.block is not None:
                return rec.block
            tried: set[str] = set()
            broadcast_at: float | None = None
            eligible = self._eligible(rec, tried)
            if not self.hits and len(eligible) > 1:
                for key in eligible:
                    self.engine.send_wants(self._peers[key], rec, WantType.HAVE)
                broadcast_at = trio.current_time()
            while not rec.done.is_set():
                choice = self._pick(rec, tried, broadcast_at)
                if choice is _WAIT:
                    assert broadcast_at is not None
                    with trio.move_on_after(
                            broadcast_at + self.discovery_wait - trio.current_time()):
                        await rec.changed.wait()
                    continue
                if choice is None and self.discovering:
                    await rec.changed.wait()  # a provider may yet turn up
                    continue
                if choice is None:
                    raise BlockNotFound(
                        cid_str(cid), f"{len(self._peers)} peer(s) "
                        f"({len(rec.dont_haves)} said DONT_HAVE, {len(tried)} tried)")
                key = str(choice)
                await self._ask(rec, key)
                tried.add(key)
            if rec.source is not None:
                self.hits[rec.source] += 1
            assert rec.block is not None
            self.bytes_fetched += len(rec.block)
            return rec.block
        finally:
            self._active.discard(rec)
            self.engine.release(rec)

    def _eligible(self, rec: WantRecord, tried: set[str]) -> list[str]:
        return [key for key in self._peers
                if key not in tried and key not in self.excluded
                and key not in rec.dont_haves and self.engine.peer_usable(key)]

    def _pick(self, rec: WantRecord, tried: set[str], broadcast_at: float | None
              ) -> object:
        eligible = self._eligible(rec, tried)
        if not eligible:
            return None
        haves = [key for key in eligible if key in rec.haves]
        if not haves and broadcast_at is not None:
            silent = [key for key in eligible
                      if key not in rec.haves and key not in rec.dont_haves]
            if silent and trio.current_time() < broadcast_at + self.discovery_wait:
                return _WAIT
        pool = haves or eligible
        rep = self.engine.reputation
        best = min(pool, key=lambda k: (self.inflight[k] / (1 + self.hits[k]), -rep.score(k)))
        return self._peers[best]

    async def _ask(self, rec: WantRecord, key: str) -> None:
        """Send want-block to one peer and wait for the block, a DONT_HAVE, or give up."""
        self.engine.send_wants(self._peers[key], rec, WantType.BLOCK)
        self.inflight[key] += 1
        sent = trio.current_time()
        try:
            while not rec.done.is_set():
                changed = rec.changed
                if key in rec.dont_haves:
                    return
                if not self.engine.peer_usable(key):
                    self.excluded.add(key)
                    if not self.engine.reputation.in_backoff(key):
                        self.engine.reputation.update_provider_stats(key, False)
                    return
                # The clock restarts whenever the peer sends anything: a busy peer that
                # is still delivering other blocks is slow, not silent.
                deadline = max(sent, self.engine.last_activity(key)) + self.timeout
                remaining = deadline - trio.current_time()
                if remaining <= 0:
                    self.timeouts[key] += 1
                    self.engine.reputation.update_provider_stats(key, False)
                    if not self.hits[key] or self.timeouts[key] >= 2:
                        self.excluded.add(key)
                    self.engine.cancel(rec, [key])
                    return
                with trio.move_on_after(remaining):
                    await changed.wait()
        finally:
            self.inflight[key] -= 1

    # -- a whole DAG --------------------------------------------------------------------
    async def fetch_dag(self, root: CID, *, max_bytes: int | None = None) -> FetchReport:
        """Make every block under ``root`` local, fetching what is missing.

        Raises:
            BlockNotFound: a block could not be found; the error names it.
            TooLarge: more than ``max_bytes`` would have to be fetched.
            IntegrityError: a verified block is not valid for its codec.
        """
        started = time.monotonic()
        store = self.engine.store
        seen = {bytes(root.digest)}
        counts = {"blocks": 0, "fetched": 0}
        window = trio.Semaphore(self.engine.config.window)
        start_bytes = self.bytes_fetched
        start_hits = Counter(self.hits)

        def local(cid: CID) -> bytes | None:
            # Raw leaves have no links: presence is enough, their bytes need not be read.
            if cid.codec.code == _RAW:
                return b"" if store.has(cid) else None
            try:
                return store.get(cid)
            except BlockNotFound:
                return None

        async def visit(cid: CID, nursery: trio.Nursery) -> None:
            async with window:
                block = await anyio.to_thread.run_sync(local, cid)
                if block is None:
                    block = await self.get(cid)
                    counts["fetched"] += 1
                    if max_bytes is not None and self.bytes_fetched - start_bytes > max_bytes:
                        raise TooLarge(f"{cid_str(root)} is larger than the {max_bytes}-byte "
                                       "budget for one fetch")
            counts["blocks"] += 1
            if cid.codec.code == _RAW:
                return
            for child in links_of(cid, block):
                key = bytes(child.digest)
                if key not in seen:
                    seen.add(key)
                    nursery.start_soon(visit, child, nursery)

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(visit, root, nursery)
        except BaseExceptionGroup as group:
            raise _first_error(group) from None
        return FetchReport(
            root=cid_str(root), blocks=counts["blocks"], fetched=counts["fetched"],
            bytes_fetched=self.bytes_fetched - start_bytes,
            seconds=time.monotonic() - started,
            by_peer={k: v - start_hits[k] for k, v in self.hits.items() if v - start_hits[k]})


def _first_error(group: BaseExceptionGroup) -> BaseException:
    """The error to report from a failed walk: our own errors first, else the group."""
    if group.subgroup(trio.Cancelled) is not None:
        return group
    ours = group.subgroup(IpfsMcpError)
    leaf: BaseException = ours if ours is not None else group
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    return leaf
