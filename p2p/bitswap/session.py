"""Fetching blocks and whole DAGs from a set of peers.

A :class:`Session` owns a list of candidate peers (providers found in the DHT, peers we are
connected to) and remembers, for this fetch only, who delivered, how fast, and who did not:

- the first block of a session is discovered by broadcasting want-have (with
  ``sendDontHave``) to every candidate, then asking a peer that said HAVE for the block;
- later blocks go straight to want-block, to the peer expected to deliver soonest:
  ``(in_flight + 1) / rate``, where a peer's *rate* is its measured bytes per second of busy
  time (an EWMA over its recent blocks, see :class:`_Meter`);
- each peer has a depth: at most ``rate × HORIZON`` bytes of wants in flight to it (at least
  ``MIN_DEPTH`` blocks; ``INITIAL_DEPTH`` until it has delivered once). A want whose best
  peer is full waits for a slot rather than go to a slower one, so a slow provider gets a
  share of the DAG in proportion to its rate, never more than ``HORIZON`` of its own work;
  an idle peer that has not stalled always gets one want, so its rate keeps being measured;
- a peer with wants in flight that delivers nothing for ``STALL_FACTOR`` times what its own
  rate predicts (one message's worth of blocks, at least ``STALL_FLOOR``; a peer that has
  not delivered yet is held to the slowest measured peer's pace) is *stalling*:
  each of its wants is also asked of the best other peer with a free slot (one extra copy
  per want, never more), and its rate is taken as decaying, so it gets nothing new. The
  engine sends CANCEL to every other peer asked once the first copy arrives; a late copy
  is counted as a duplicate. A want lost this way counts against the stalling peer's
  reputation (``FetchReport.reissued``), and a peer that never delivered leaves the session;
- a peer that says DONT_HAVE is not asked for that block again; one that stays silent for
  ``want_timeout`` (nothing at all from it, not just nothing for this block) loses the want,
  and is dropped from the session if it never delivered. Before any peer has delivered,
  this global deadline is the only one: there is no pace yet to derive a shorter one from;
- a peer that disconnects, or sends a block we did not ask for, is dropped from the session;
- peers can join while blocks are being fetched (providers found in the DHT while the
  connected peers are already being asked); until :meth:`Session.end_discovery`, a block no
  peer has waits for them instead of failing.

Why this and no more: the shortest-expected-delay choice with a depth of ``HORIZON``
seconds keeps every provider's queue short, so a slow one can only ever hold back the few
blocks it was given, and those only for about ``HORIZON``; a stalling one is detected from
its own pace rather than the long global timeout (which must stay long for the public
network). The state is a few numbers per peer and at most two copies of a want, so it is
bounded by the peers and the fetch window, and costs nothing measurable per block.

:meth:`Session.fetch_dag` walks the DAG with up to ``window`` blocks in flight, reading what
is already local from the blockstore and fetching the rest. It walks on its own rather than
through ``backends.core.dag.walk``: that walker is a synchronous depth-first generator that
loads one block at a time, so a fetch through it would have one want in flight instead of
``window``, and the transfer would run at one round trip per block. It applies the same
bounds of ``backends/core/limits.py`` instead, each before it costs anything: blocks per walk
(counted when scheduled), depth, links per node, and block size.
"""


from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import anyio
import trio
from libp2p.peer.id import ID
from multiformats import CID

from ipfs_mcp.backends.core import limits
from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.core.dag import links_of
from ipfs_mcp.backends.errors import BlockNotFound, DagTooLarge, IpfsMcpError, TooLarge

from .engine import Bitswap, WantRecord
from .message import WantType

log = logging.getLogger(__name__)

_RAW = 0x55
_WAIT = object()  # _pick's answer when a HAVE may still arrive
_FULL = object()  # ... and when the best peer has as many wants in flight as its depth


@dataclass(frozen=True)
class FetchReport:
    root: str
    blocks: int  # blocks in the DAG
    fetched: int  # of which came from peers
    bytes_fetched: int
    seconds: float
    by_peer: dict[str, int] = field(default_factory=dict)  # blocks delivered per peer
    # Wants a stalling peer lost: re-issued to another peer, whose copy came first.
    reissued: dict[str, int] = field(default_factory=dict)


# Seconds of a peer's own measured work that may be queued to it (its depth).
HORIZON = 0.5
# Wants to a peer before its rate is known, and the fewest once it is.
INITIAL_DEPTH = 4
MIN_DEPTH = 2
# A peer is stalling when it delivers nothing for this many times its expected interval.
STALL_FACTOR = 4.0
# ... and never sooner than this: an event-loop hiccup on a loaded machine is not a stall.
STALL_FLOOR = 0.25
# Blocks a peer is taken to send in one message, at most (small blocks come fast anyway).
MAX_BURST = 16.0
# Copies of one want in flight at once: the first ask, and one re-issue if that peer stalls.
MAX_COPIES = 2
# Weight of the newest block in a peer's meter (about the last 1/ALPHA blocks count).
ALPHA = 0.2
_TYPICAL_BLOCK = 262144  # until the session has seen one


class _Meter:
    """A peer's delivery rate in this session: EWMAs of block bytes and busy seconds.

    Busy time for a block is the time from the peer's previous delivery (or from when it
    was first asked, if it was idle) to this one, so pipelined blocks are not charged for
    each other's queueing; blocks that arrive in one message share its interval.
    """

    __slots__ = ("bytes", "secs", "busy_since", "samples")

    def __init__(self) -> None:
        self.bytes = 0.0
        self.secs = 0.0
        self.busy_since = 0.0
        self.samples = 0

    def observe(self, now: float, size: int) -> None:
        interval = max(0.0, now - self.busy_since)
        if self.samples:
            self.bytes += ALPHA * (size - self.bytes)
            self.secs += ALPHA * (interval - self.secs)
        else:
            self.bytes, self.secs = float(size), interval
        self.samples += 1
        self.busy_since = now

    def per_block(self) -> float:
        """Measured busy seconds per block (a floor keeps the rate finite)."""
        return max(self.secs, 1e-4)


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
        self.reissued: Counter[str] = Counter()  # wants lost to others by a stalling peer
        self.excluded: set[str] = set()
        self.bytes_fetched = 0
        self._meters: dict[str, _Meter] = {}
        self._block_bytes = float(_TYPICAL_BLOCK)
        # Wants waiting for a free slot at some peer: woken whenever a slot frees.
        self._slot_waiters: set[WantRecord] = set()
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

    # -- rates --------------------------------------------------------------------------
    def rate(self, key: str) -> float | None:
        """Bytes per second ``key`` delivers in this session; None until it has delivered.

        A stalling peer's rate decays with the time it has been silent."""
        meter = self._meters.get(key)
        if meter is None or not meter.samples:
            return None
        secs = meter.per_block()
        if self.inflight[key]:
            gap = trio.current_time() - meter.busy_since
            if gap > self._stall_after(meter):
                secs = max(secs, gap)
        return meter.bytes / secs

    def _stall_after(self, meter: _Meter) -> float:
        # A peer may batch about one message (target_message_size) of blocks per write, so
        # its deliveries come that far apart even when it is keeping up. The session's
        # typical block sizes the batch, not this peer's own few: a DAG's first block is
        # its small root, which would make one message look like hundreds of blocks.
        burst = self.engine.config.target_message_size / max(self._block_bytes, 1.0)
        burst = min(MAX_BURST, max(1.0, burst))
        return min(self.timeout, max(STALL_FLOOR, STALL_FACTOR * burst * meter.per_block()))

    def _stall_at(self, key: str) -> float | None:
        """When ``key``, busy with our wants, counts as stalling; None if nothing is known.

        A peer that has not delivered yet is held to the pace of the slowest peer that has:
        the commonest stall is a peer that takes wants and never answers."""
        meter = self._meters.get(key)
        if meter is None:
            return None
        if meter.samples:
            return meter.busy_since + self._stall_after(meter)
        known = [m for m in self._meters.values() if m.samples]
        if not known:
            return None
        slowest = max(known, key=lambda m: m.per_block())
        return meter.busy_since + self._stall_after(slowest)

    def _depth(self, key: str) -> int:
        meter = self._meters.get(key)
        if meter is None or not meter.samples:
            return INITIAL_DEPTH
        rate = self.rate(key) or 0.0
        depth = int(rate * HORIZON / max(self._block_bytes, 1.0)) + 1
        return max(MIN_DEPTH, min(self.engine.config.window, depth))

    def _expected(self, key: str, best_rate: float | None) -> float:
        """Seconds until ``key`` would deliver one more want (or a count, with no rates)."""
        rate = self.rate(key)
        if rate is None:
            rate = best_rate  # an unmeasured peer is given the benefit of the doubt
        if rate is None:
            return float(self.inflight[key] + 1)
        return (self.inflight[key] + 1) * self._block_bytes / rate

    def _ask_started(self, key: str) -> None:
        if not self.inflight[key]:
            self._meters.setdefault(key, _Meter()).busy_since = trio.current_time()
        self.inflight[key] += 1

    def _ask_ended(self, key: str) -> None:
        self.inflight[key] -= 1
        for rec in list(self._slot_waiters):
            rec.notify()

    # -- one block ----------------------------------------------------------------------
    async def get(self, cid: CID, *, batched: bool = False) -> bytes:
        """Fetch one block from the session's peers; it is verified and stored on return
        (``batched``: into the engine's open receive batch, durable and seen by ``has`` at
        the next ``engine.settle``, as a DAG walk does).

        Raises:
            BlockNotFound: every peer said DONT_HAVE, failed or timed out.
            IpfsMcpError: it arrived but could not be stored here (``DiskFull``).
        """
        rec = self.engine.want_record(cid)
        rec.batched = rec.batched or batched
        block = await self._get(rec)
        if rec.batched and not batched:
            # A walk wanted it too, so it went into the batch: stored before it is handed on.
            await self.engine.settle()
        return block

    async def _get(self, rec: WantRecord) -> bytes:  # noqa: C901 - the want loop: ask, stall, re-ask
        cid = rec.cid
        self._active.add(rec)
        asks: dict[str, float] = {}  # peer asked for this block, and when
        moved: set[str] = set()  # asked peers that stalled, so the want was re-issued
        try:
            if rec.done.is_set() and rec.block is not None:
                return rec.block
            if rec.failure is not None:
                raise rec.failure
            tried: set[str] = set()
            broadcast_at: float | None = None
            eligible = self._eligible(rec, tried)
            if not self.hits and len(eligible) > 1:
                for key in eligible:
                    self.engine.send_wants(self._peers[key], rec, WantType.HAVE)
                broadcast_at = trio.current_time()
            while not rec.done.is_set():
                changed = rec.changed
                wake = self._settle(rec, asks)
                now = trio.current_time()
                stalled = [k for k in asks if (t := self._stall_at(k)) is not None and t <= now]
                want_peer = not asks or (stalled and len(asks) < MAX_COPIES)
                if want_peer:
                    choice = self._pick(rec, tried, broadcast_at)
                    if choice is _WAIT:
                        assert broadcast_at is not None
                        wake = min(wake, broadcast_at + self.discovery_wait)
                    elif isinstance(choice, ID):
                        key = str(choice)
                        if asks:
                            moved.update(stalled)
                            log.debug("bitswap: %s stalls; also asking %s for %s",
                                      stalled, key, cid_str(cid))
                        self.engine.send_wants(choice, rec, WantType.BLOCK)
                        self._ask_started(key)
                        asks[key] = trio.current_time()
                        tried.add(key)
                        continue
                    elif choice is _FULL:
                        self._slot_waiters.add(rec)
                    elif asks:
                        pass  # nobody else to ask: keep waiting for the stalling peer
                    elif self.discovering:
                        wake = float("inf")  # a provider may yet turn up
                    else:
                        raise BlockNotFound(
                            cid_str(cid), f"{len(self._peers)} peer(s) "
                            f"({len(rec.dont_haves)} said DONT_HAVE, {len(tried)} tried)")
                # Wake at the first deadline: a global timeout, or a peer starting to stall
                # (only if some other peer could take the want: with one provider there is
                # nobody to re-issue to, and the timers would only wake us for nothing).
                if len(asks) < MAX_COPIES and len(self._peers) - len(self.excluded) > len(asks):
                    for key in asks:
                        if (t := self._stall_at(key)) is not None and t > now:
                            wake = min(wake, t)
                try:
                    with trio.move_on_at(wake):
                        await changed.wait()
                finally:
                    self._slot_waiters.discard(rec)
            if rec.failure is not None:
                raise rec.failure  # it arrived but could not be stored here (a full disk)
            for key in moved & asks.keys() - {rec.source}:
                # Another peer's copy came first: the stalling one lost this want, as if it
                # had timed out, and one that never delivered leaves the session.
                self.reissued[key] += 1
                self.engine.reputation.update_provider_stats(key, False)
                if not self.hits[key]:
                    self.excluded.add(key)
            if rec.source is not None:
                self.hits[rec.source] += 1
                if rec.source in asks:
                    self._meters.setdefault(rec.source, _Meter()).observe(
                        trio.current_time(), len(rec.block or b""))
            assert rec.block is not None
            self._block_bytes += ALPHA * (len(rec.block) - self._block_bytes)
            self.bytes_fetched += len(rec.block)
            return rec.block
        finally:
            for key in asks:
                self._ask_ended(key)
            self._active.discard(rec)
            self.engine.release(rec)

    def _settle(self, rec: WantRecord, asks: dict[str, float]) -> float:
        """End the asks that are over (DONT_HAVE, failed peer, silent for ``timeout``);
        returns the next global deadline among those still open."""
        wake = float("inf")
        now = trio.current_time()
        for key, sent in list(asks.items()):
            if key in rec.dont_haves:
                pass
            elif not self.engine.peer_usable(key):
                self.excluded.add(key)
                if not self.engine.reputation.in_backoff(key):
                    self.engine.reputation.update_provider_stats(key, False)
            else:
                # The clock restarts whenever the peer sends anything: a busy peer that
                # is still delivering other blocks is slow, not silent.
                deadline = max(sent, self.engine.last_activity(key)) + self.timeout
                if deadline > now:
                    wake = min(wake, deadline)
                    continue
                self.timeouts[key] += 1
                self.engine.reputation.update_provider_stats(key, False)
                if not self.hits[key] or self.timeouts[key] >= 2:
                    self.excluded.add(key)
                self.engine.cancel(rec, [key])
            del asks[key]
            self._ask_ended(key)
        return wake

    def _eligible(self, rec: WantRecord, tried: set[str]) -> list[str]:
        return [key for key in self._peers
                if key not in tried and key not in self.excluded
                and key not in rec.dont_haves and self.engine.peer_usable(key)]

    def _pick(self, rec: WantRecord, tried: set[str], broadcast_at: float | None
              ) -> object:
        """The peer to ask next: an ID, ``_WAIT`` (a HAVE may still come), ``_FULL`` (the
        best peer has no free slot) or None (nobody left)."""
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
        rates = [r for k in self._peers if (r := self.rate(k)) is not None]
        best_rate = max(rates) if rates else None
        # Waiting for a full peer costs about its expected time too, so a full peer stays
        # a candidate (and then the want waits for its slot) if its rate is measured; one
        # still unmeasured is only a guess, not worth waiting for.
        free = [k for k in pool if self.inflight[k] < self._depth(k)]
        candidates = free + [k for k in pool if k not in free and self.rate(k) is not None]
        if not candidates:
            return _FULL
        rep = self.engine.reputation
        # An idle peer that has not stalled always gets one want: a rate measured from a
        # peer's first blocks is mostly latency, and a peer never asked again would never
        # be measured again. With one want in flight, a slow peer still gets only its rate.
        idle = [k for k in free if not self.inflight[k] and not self.reissued[k]]
        best = min(idle or candidates,
                   key=lambda k: (self._expected(k, best_rate), -rep.score(k)))
        return self._peers[best] if best in free else _FULL

    # -- a whole DAG --------------------------------------------------------------------
    # Over the complexity bound (C901): the walk, its bounds and the batch of wants in one loop.
    async def fetch_dag(self, root: CID, *, max_bytes: int | None = None,  # noqa: C901
                        max_blocks: int = limits.MAX_WALK_BLOCKS) -> FetchReport:
        """Make every block under ``root`` local, fetching what is missing.

        The walk visits each block once, and at most ``max_blocks`` of them (a DAG from
        peers can claim anything); each block is checked against the depth and
        links-per-node bounds before its children are scheduled.

        Raises:
            BlockNotFound: a block could not be found; the error names it.
            TooLarge: more than ``max_bytes`` would have to be fetched.
            DagTooLarge: more than ``max_blocks`` blocks, or deeper, wider or with a larger
                block than the bounds.
            IntegrityError: a verified block is not valid for its codec.
            IpfsMcpError: storing what arrived failed (DiskFull, say).
        """
        started = time.monotonic()
        store = self.engine.store
        failures = self.engine.received.mark()
        seen = {bytes(root.digest)}
        counts = {"blocks": 0, "fetched": 0}
        window = trio.Semaphore(self.engine.config.window)
        start_bytes = self.bytes_fetched
        start_hits = Counter(self.hits)
        start_reissued = Counter(self.reissued)

        def local(cid: CID) -> bytes | None:
            # Raw leaves have no links: presence is enough, their bytes need not be read.
            if cid.codec.code == _RAW:
                return b"" if store.has(cid) else None
            try:
                return store.get(cid)
            except BlockNotFound:
                return None

        def present(cids: list[CID]) -> list[bool]:
            return [store.has(cid) for cid in cids]

        async def visit(cid: CID, depth: int, nursery: trio.Nursery,
                        missing: bool = False) -> None:
            async with window:
                block = None if missing else await anyio.to_thread.run_sync(local, cid)
                if block is None:
                    block = await self.get(cid, batched=True)
                    counts["fetched"] += 1
                    if max_bytes is not None and self.bytes_fetched - start_bytes > max_bytes:
                        raise TooLarge(f"{cid_str(root)} is larger than the {max_bytes}-byte "
                                       "budget for one fetch")
            counts["blocks"] += 1
            if len(block) > limits.MAX_BLOCK_SIZE:  # a local block: peers' are capped smaller
                raise DagTooLarge(f"block {cid_str(cid)} is {len(block)} bytes, over the bound "
                                  f"of {limits.MAX_BLOCK_SIZE}")
            if cid.codec.code == _RAW:
                return
            links = links_of(cid, block)
            limits.check_links(len(links), cid)
            children: list[CID] = []
            for child in links:
                key = bytes(child.digest)
                if key not in seen:
                    seen.add(key)
                    # Counted when scheduled, not when visited: each scheduled child is a
                    # task waiting for the window, so this also bounds the walk's memory.
                    if len(seen) > max_blocks:
                        raise DagTooLarge(f"DAG {cid_str(root)} has more than {max_blocks} "
                                          "blocks")
                    children.append(child)
            if not children:
                return
            limits.check_depth(depth + 1, "DAG", root)
            # One thread hop for a node's children, not one per child: on a fresh fetch
            # every leaf is missing, and a hop per block costs the event loop a GIL hand-off.
            here = await anyio.to_thread.run_sync(present, children)
            for child, is_here in zip(children, here, strict=True):
                if is_here and child.codec.code == _RAW:
                    counts["blocks"] += 1  # a local raw leaf has no links to follow
                else:
                    nursery.start_soon(visit, child, depth + 1, nursery, not is_here)

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(visit, root, 0, nursery)
        except BaseExceptionGroup as group:
            raise _first_error(group) from None
        # Durable and seen by ``has`` before the report (and so before any pin).
        await self.engine.settle(since=failures)
        return FetchReport(
            root=cid_str(root), blocks=counts["blocks"], fetched=counts["fetched"],
            bytes_fetched=self.bytes_fetched - start_bytes,
            seconds=time.monotonic() - started,
            by_peer={k: v - start_hits[k] for k, v in self.hits.items() if v - start_hits[k]},
            reissued={k: v - start_reissued[k] for k, v in self.reissued.items()
                      if v - start_reissued[k]})


def _first_error(group: BaseExceptionGroup) -> BaseException:
    """The error to report from a failed walk: our own errors first, else the group."""
    if group.subgroup(trio.Cancelled) is not None:
        return group
    ours = group.subgroup(IpfsMcpError)
    leaf: BaseException = ours if ours is not None else group
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    return leaf
