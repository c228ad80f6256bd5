"""Our bitswap engine: serves blocks from a blockstore and asks peers for the blocks we want.

The library's bitswap replies on the requester's stream, which Kubo never reads, so this
engine follows boxo instead:

- every message we send goes out on a stream *we* opened to that peer (one per peer, kept
  open, reopened once if it breaks);
- every stream a peer opens to us is read as a sequence of length-prefixed messages.

Per peer there is one task (:meth:`Bitswap._peer_loop`) that writes everything we owe that
peer: our wants and cancels, presences, and the blocks it asked for, batched into messages of
about ``target_message_size``. While there are blocks to serve, a second task
(:meth:`Bitswap._block_reader`) reads them from the store one batch ahead, so disk and
network overlap, and a peer that wants a gigabyte never makes us hold more than two batches.

Serving honours priorities within fairness, as boxo's decision engine does: a batch takes
the peer's highest-priority wants first (arrival order among equals), and the peers take
turns at reading batches (:class:`ServeTurns`, round-robin with about
``target_message_size`` bytes a turn), so one peer's gigabyte of wants never starves
another's single block.

Received blocks are hashed in a worker thread; the CID is *computed* from the bytes, so a
block is trusted only if that CID is one we want. Anything else is discarded and its sender
penalised; nothing unverified is ever handed to the blockstore. What is kept is stored in
batches, durable together (:mod:`.receive_batches`): a fetch settles them before it returns.

The client side is in :mod:`.session`; it uses :meth:`Bitswap.want_record`,
:meth:`Bitswap.send_wants` and :meth:`Bitswap.cancel`.
"""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import anyio
import trio
from libp2p.abc import IHost, INetStream, INetwork
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from multiformats import CID

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.errors import BlockNotFound, IntegrityError, IpfsMcpError, NetworkError

from .._net import NET_ERRORS, ConnectionEvents, FrameReader, close_quietly, reset_quietly
from ..relay.limits import direct_connections, is_limited
from ..reputation import ProviderReputation
from .message import (
    MAX_BLOCK_SIZE,
    MAX_MESSAGE_SIZE,
    MAX_WANTLIST,
    PROTOCOL_120,
    PROTOCOLS,
    Message,
    Payload,
    Presence,
    WantEntry,
    WantType,
    block_cid,
    decode_message,
    encode_parts,
    frame_parts,
)
from .receive_batches import ReceiveBatch, ReceiveBatches

log = logging.getLogger(__name__)


class BlockStore(Protocol):
    """What the engine serves from and stores into (``backends.blockstore.Blockstore``)."""

    def has(self, cid: CID) -> bool: ...

    def get(self, cid: CID) -> bytes: ...

    def put_computed(self, cid: CID, data: bytes) -> bool: ...

    def receiving(self) -> contextlib.AbstractContextManager[ReceiveBatch]: ...


@dataclass(frozen=True)
class BitswapConfig:
    """Limits and timing. The defaults suit a LAN or the public network; tests shorten the
    timeouts so that a silent peer costs them a fraction of a second."""

    max_message_size: int = MAX_MESSAGE_SIZE
    max_block_size: int = MAX_BLOCK_SIZE
    max_wantlist: int = MAX_WANTLIST
    # Blocks are batched into one message up to about this many bytes (one block at least).
    target_message_size: int = 1 << 20
    # A peer that has been asked for a block and sends us nothing at all for this long
    # loses the want to another peer.
    want_timeout: float = 10.0
    # Blocks in flight in one DAG fetch, across all its peers.
    window: int = 64
    # Bound on opening a stream to a peer and on writing one message to it.
    send_timeout: float = 20.0
    # How long a peer that sent a wrong block is left out of new requests.
    bad_peer_timeout: float = 60.0
    # Batches read for serving at once, across all peers; turns go round-robin.
    serve_slots: int = 4


@dataclass
class Ledger:
    """What we exchanged with one peer (boxo's per-peer ledger)."""

    bytes_sent: int = 0  # block bytes
    bytes_received: int = 0
    blocks_sent: int = 0
    blocks_received: int = 0
    duplicate_blocks: int = 0
    bad_blocks: int = 0
    messages_sent: int = 0
    messages_received: int = 0
    wants_received: int = 0
    cancels_received: int = 0  # wants the peer withdrew (CANCEL entries)
    haves_sent: int = 0
    dont_haves_sent: int = 0


class _Peer:
    __slots__ = ("id", "ledger", "protocol", "stream", "their_wants", "serve", "out_wants",
                 "out_presences", "wake", "running", "reading", "ready_send", "ready_recv",
                 "connected", "failed", "last_activity", "bad_until")

    def __init__(self, peer_id: ID) -> None:
        self.id = peer_id
        self.ledger = Ledger()
        self.protocol: str | None = None
        self.stream: INetStream | None = None
        # The peer's wantlist (by multihash) and the want-blocks we have and still owe it.
        self.their_wants: OrderedDict[bytes, WantEntry] = OrderedDict()
        self.serve: OrderedDict[bytes, WantEntry] = OrderedDict()
        self.out_wants: dict[bytes, WantEntry] = {}
        self.out_presences: dict[bytes, tuple[CID, Presence]] = {}
        self.wake = trio.Event()
        self.running = False  # the writer task (_peer_loop) is alive
        self.reading = False  # the block reader task is alive
        # Batches of (want, block bytes or None) read and waiting for the writer.
        self.ready_send, self.ready_recv = trio.open_memory_channel[
            list[tuple[WantEntry, bytes | None]]](1)
        self.connected = False
        self.failed = False  # we could not reach it, or it disconnected
        self.last_activity = 0.0
        self.bad_until = 0.0

    def has_output(self) -> bool:
        return bool(self.out_wants or self.out_presences
                    or self.ready_recv.statistics().current_buffer_used)


class ServeTurns:
    """Turns at reading a batch of blocks to serve, round-robin between peers.

    Each peer's block reader asks for one turn at a time and asks again at the back of the
    queue after its batch, and the queue is first come, first served (trio's
    ``CapacityLimiter`` is fair), so while several peers wait they are served in rotation,
    each turn bounded by the batch's bytes: a deficit round-robin whose quantum is
    ``target_message_size``. ``slots`` turns may run at once, so disk reads overlap.
    """

    def __init__(self, slots: int) -> None:
        self._limiter = trio.CapacityLimiter(max(1, slots))

    def turn(self) -> trio.CapacityLimiter:
        """``async with turns.turn():`` around one batch read."""
        return self._limiter


def by_priority(wants: Iterable[WantEntry]) -> list[WantEntry]:
    """Highest priority first; equal priorities keep their order (the sort is stable)."""
    return sorted(wants, key=lambda want: -want.priority)


class WantRecord:
    """One block we are waiting for, shared by every session that wants it."""

    __slots__ = ("cid", "asked", "haves", "dont_haves", "block", "source", "failure", "done",
                 "_changed", "refs", "batched")

    def __init__(self, cid: CID) -> None:
        self.cid = cid
        self.asked: dict[str, tuple[float, WantType]] = {}  # peer -> (when, what)
        self.haves: set[str] = set()
        self.dont_haves: set[str] = set()
        self.block: bytes | None = None
        self.source: str | None = None  # the peer whose copy we kept
        # Set with ``done`` when the block arrived but could not be stored (a full disk):
        # every session waiting for it raises this rather than wait on.
        self.failure: IpfsMcpError | None = None
        self.done = trio.Event()
        self._changed = trio.Event()
        self.refs = 0
        # A DAG walk wants it: stored into the open receive batch, which the walk settles
        # at its end; else stored (and synced) on its own, as a one-block fetch needs.
        self.batched = False

    @property
    def changed(self) -> trio.Event:
        """Set at the next change (presence, block, peer failure); grab it, then check."""
        return self._changed

    def notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()


class Bitswap:
    """The engine. Components come in through the constructor; :meth:`run` serves."""

    def __init__(self, host: IHost, store: BlockStore, *,
                 reputation: ProviderReputation | None = None,
                 config: BitswapConfig | None = None) -> None:
        self.host = host
        self.store = store
        self.reputation = reputation or ProviderReputation()
        self.config = config or BitswapConfig()
        self._peers: dict[str, _Peer] = {}
        self._wants: dict[bytes, WantRecord] = {}
        # Blocks recently received, or wanted and then cancelled: a copy that arrives now
        # is a duplicate or a late answer, not an attack. Bounded so it cannot grow
        # without limit.
        self._recent: OrderedDict[bytes, None] = OrderedDict()
        self._changed = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._notifee = ConnectionEvents(self._on_connected, self._on_connection_closed)
        self.bytes_in = 0  # whole messages, both directions, for bandwidth totals
        self.bytes_out = 0
        self.protocol_errors = 0
        # Received messages being hashed and stored at once, each about
        # target_message_size and each on its own worker thread: this bounds the memory a
        # fast sender can make us hold, and how many fsyncs overlap.
        self._block_slots = trio.Semaphore(16)
        # Where they are stored: written with no sync each, durable in batches.
        self.received = ReceiveBatches(store)
        self._turns = ServeTurns(self.config.serve_slots)

    # -- lifecycle ----------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Serve until cancelled. Start it with ``nursery.start(engine.run)``."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for proto in PROTOCOLS:
                self.host.set_stream_handler(TProtocol(proto), self._handle_stream)
            self.host.get_network().register_notifee(self._notifee)
            for peer_id in self.host.get_connected_peers():
                self._on_connected(peer_id)
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self._nursery = None
                with trio.CancelScope(shield=True):
                    await self._settle_quietly()
                for proto in PROTOCOLS:
                    self.host.remove_stream_handler(TProtocol(proto))
                self.host.get_network().remove_notifee(self._notifee)
                with trio.CancelScope(shield=True), trio.move_on_after(2):
                    for peer in self._peers.values():
                        await self._drop_stream(peer)
                for rec in self._wants.values():
                    rec.notify()

    # -- peers --------------------------------------------------------------------------
    def _peer(self, peer_id: ID) -> _Peer:
        key = str(peer_id)
        peer = self._peers.get(key)
        if peer is None:
            peer = self._peers[key] = _Peer(peer_id)
        return peer

    def _on_connected(self, peer_id: ID) -> None:
        peer = self._peer(peer_id)
        peer.connected = True
        peer.failed = False

    def _on_connection_closed(self, network: INetwork, peer_id: ID) -> None:
        remaining = network.get_connections(peer_id)
        log.debug("bitswap: a connection to %s closed; %d remain", peer_id, len(remaining))
        if not remaining:
            self._on_disconnected(peer_id)

    def _on_disconnected(self, peer_id: ID) -> None:
        peer = self._peers.get(str(peer_id))
        if peer is None:
            return
        peer.connected = False
        self._peer_failed(peer, "disconnected")

    def _peer_failed(self, peer: _Peer, why: str) -> None:
        log.debug("bitswap: peer %s failed: %s", peer.id, why)
        peer.failed = True
        peer.stream = None
        peer.serve.clear()
        peer.their_wants.clear()
        peer.out_wants.clear()
        peer.out_presences.clear()
        while True:  # free a reader blocked on a full channel; it sees `failed` and ends
            try:
                peer.ready_recv.receive_nowait()
            except trio.WouldBlock:
                break
        peer.wake.set()
        key = str(peer.id)
        for rec in self._wants.values():
            if key in rec.asked:
                rec.notify()

    def peer_usable(self, peer_id: object) -> bool:
        peer = self._peers.get(str(peer_id))
        if peer is None:
            return True
        return not peer.failed and peer.bad_until <= trio.current_time()

    def last_activity(self, peer_id: object) -> float:
        peer = self._peers.get(str(peer_id))
        return peer.last_activity if peer else 0.0

    def ledger(self, peer_id: object) -> Ledger:
        peer = self._peers.get(str(peer_id))
        return peer.ledger if peer else Ledger()

    def ledgers(self) -> dict[str, Ledger]:
        return {key: peer.ledger for key, peer in self._peers.items()}

    def wantlist(self) -> list[CID]:
        """The blocks we are asking peers for right now."""
        return [rec.cid for rec in self._wants.values()]

    def peer_wantlist(self, peer_id: object) -> list[CID]:
        """The blocks ``peer_id`` is asking us for right now (boxo's ``WantlistForPeer``)."""
        peer = self._peers.get(str(peer_id))
        return [want.cid for want in peer.their_wants.values()] if peer else []

    @property
    def changed(self) -> trio.Event:
        """Set after the next inbound message has been handled, and again once the blocks
        it carried are stored and counted in the ledger; grab it, then check."""
        return self._changed

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def peer_protocol(self, peer_id: object) -> str | None:
        peer = self._peers.get(str(peer_id))
        return peer.protocol if peer else None

    def _wake(self, peer: _Peer) -> None:
        peer.wake.set()
        if self._nursery is None:
            return
        if not peer.running:
            peer.running = True
            self._nursery.start_soon(self._peer_loop, peer)
        if peer.serve and not peer.reading:
            peer.reading = True
            self._nursery.start_soon(self._block_reader, peer)

    # -- client side: wants -------------------------------------------------------------
    def want_record(self, cid: CID) -> WantRecord:
        """The shared record for ``cid``; call :meth:`release` when done with it."""
        key = bytes(cid.digest)
        rec = self._wants.get(key)
        if rec is None:
            rec = self._wants[key] = WantRecord(cid)
        rec.refs += 1
        return rec

    def release(self, rec: WantRecord) -> None:
        rec.refs -= 1
        if rec.refs <= 0:
            key = bytes(rec.cid.digest)
            if self._wants.get(key) is rec:
                del self._wants[key]
            if not rec.done.is_set():
                self.cancel(rec, rec.asked)
                self._remember(key)

    def _remember(self, mh: bytes) -> None:
        self._recent[mh] = None
        self._recent.move_to_end(mh)
        if len(self._recent) > 8192:
            self._recent.popitem(last=False)

    def send_wants(self, peer_id: ID, rec: WantRecord, want_type: WantType) -> None:
        """Queue a want for ``rec`` to ``peer_id``; DONT_HAVE is always requested."""
        if self._nursery is None:
            raise NetworkError("the bitswap engine is not running")
        peer = self._peer(peer_id)
        peer.failed = False if peer.connected else peer.failed
        rec.asked[str(peer_id)] = (trio.current_time(), want_type)
        peer.out_wants[bytes(rec.cid.digest)] = _want_entry(rec, want_type)
        self._wake(peer)

    def cancel(self, rec: WantRecord, peers: Iterable[str]) -> None:
        key = bytes(rec.cid.digest)
        for peer_key in list(peers):
            peer = self._peers.get(peer_key)
            if peer is None or peer.failed:
                continue
            peer.out_wants[key] = WantEntry(rec.cid, cancel=True)
            self._wake(peer)

    def mark_bad(self, peer_id: object, why: str) -> None:
        """Leave a misbehaving peer out of new requests for a while, and penalise it."""
        peer = self._peers.get(str(peer_id))
        log.warning("bitswap: peer %s misbehaved: %s", peer_id, why)
        self.reputation.record_bad_block(peer_id)
        if peer is not None:
            peer.ledger.bad_blocks += 1
            peer.bad_until = trio.current_time() + self.config.bad_peer_timeout
            key = str(peer.id)
            for rec in self._wants.values():
                if key in rec.asked:
                    rec.notify()

    # -- inbound ------------------------------------------------------------------------
    async def _handle_stream(self, stream: INetStream) -> None:
        peer_id = stream.muxed_conn.peer_id
        peer = self._peer(peer_id)
        reader = FrameReader(stream, self.config.max_message_size)
        try:
            while True:
                body = await reader.next()
                if body is None:
                    break
                self.bytes_in += len(body)
                peer.ledger.messages_received += 1
                peer.last_activity = trio.current_time()
                await self._on_message(peer, decode_message(body))
                self._notify()
        except NetworkError as exc:
            self.protocol_errors += 1
            log.info("bitswap: dropping stream from %s: %s", peer_id, exc)
            await reset_quietly(stream)
            self._ask_again(peer)
        except NET_ERRORS as exc:
            log.debug("bitswap: inbound stream from %s ended: %r", peer_id, exc)
            await reset_quietly(stream)
            self._ask_again(peer)
        else:
            await close_quietly(stream)

    def _ask_again(self, peer: _Peer) -> None:
        """A stream from ``peer`` broke off, perhaps inside a message that carried blocks we
        asked it for: it counts them sent (boxo drops a want once it has sent the block), so
        its wants would go unanswered until they time out. Ask it again for every block we
        still wait on from it (a block that did arrive comes twice, counted a duplicate)."""
        if not peer.connected or peer.failed:
            return
        key = str(peer.id)
        again = [(rec, rec.asked[key][1]) for rec in self._wants.values()
                 if key in rec.asked and not rec.done.is_set()]
        for rec, want_type in again:
            peer.out_wants[bytes(rec.cid.digest)] = _want_entry(rec, want_type)
        if again:
            self._wake(peer)

    async def _on_message(self, peer: _Peer, msg: Message) -> None:
        if peer.failed and peer.connected:
            # It reached us, so the connection is alive: what failed was our stream to it,
            # which the next send reopens. Left failed, its wants would go unanswered.
            peer.failed = False
        if msg.full:
            peer.their_wants.clear()
            peer.serve.clear()
        if msg.wants:
            await self._on_wants(peer, msg.wants)
        if msg.payloads and self._nursery is not None:
            # Hash and store in the background so this stream keeps being read (and the
            # muxer keeps granting the sender window) meanwhile; the slots bound how many
            # received messages may wait in memory.
            await self._block_slots.acquire()
            self._nursery.start_soon(self._on_blocks_released, peer, msg.payloads)
        key = str(peer.id)
        for cid, presence in msg.presences:
            rec = self._wants.get(bytes(cid.digest))
            if rec is None:
                continue
            if presence == Presence.HAVE:
                rec.haves.add(key)
            else:
                rec.dont_haves.add(key)
            rec.notify()

    async def _on_wants(self, peer: _Peer, wants: list[WantEntry]) -> None:
        cancels = [w for w in wants if w.cancel]
        peer.ledger.cancels_received += len(cancels)
        for want in cancels:
            mh = bytes(want.cid.digest)
            peer.their_wants.pop(mh, None)
            peer.serve.pop(mh, None)
        fresh = [w for w in wants if not w.cancel]
        if not fresh:
            return
        room = self.config.max_wantlist - len(peer.their_wants)
        if room < len(fresh):
            log.info("bitswap: %s wants more than %d blocks; ignoring %d",
                     peer.id, self.config.max_wantlist, len(fresh) - max(room, 0))
            fresh = fresh[:max(room, 0)]
        peer.ledger.wants_received += len(fresh)
        have = await anyio.to_thread.run_sync(self._has_many, [w.cid for w in fresh])
        for want, present in zip(fresh, have, strict=True):
            mh = bytes(want.cid.digest)
            peer.their_wants[mh] = want
            if present and want.want_type == WantType.BLOCK:
                peer.serve[mh] = want
            elif present:
                peer.out_presences[mh] = (want.cid, Presence.HAVE)
                peer.ledger.haves_sent += 1
            elif want.send_dont_have:
                peer.out_presences[mh] = (want.cid, Presence.DONT_HAVE)
                peer.ledger.dont_haves_sent += 1
        if peer.serve or peer.has_output():
            self._wake(peer)

    def _has_many(self, cids: list[CID]) -> list[bool]:
        return [self.store.has(cid) for cid in cids]

    async def _on_blocks_released(self, peer: _Peer, payloads: list[Payload]) -> None:
        try:
            await self._on_blocks(peer, payloads)
        finally:
            self._block_slots.release()
            self._notify()  # the ledger counts these blocks now

    async def settle(self, since: int | None = None) -> None:
        """Every block received so far is durable and in the store when this returns
        (see :mod:`.receive_batches`).

        Raises:
            IpfsMcpError: a batch's commit failed (since ``since``, from
                ``received.mark()``, when given).
        """
        await trio.to_thread.run_sync(self.received.settle, since)

    async def _settle_quietly(self) -> None:
        try:
            await self.settle()
        except IpfsMcpError as exc:  # the fetches that were running fail with it
            log.warning("bitswap: storing received blocks failed: %s", exc)

    async def _on_blocks(self, peer: _Peer, payloads: list[Payload]) -> None:
        ok: list[Payload] = []
        for payload in payloads:
            if len(payload.data) > self.config.max_block_size:
                self.mark_bad(peer.id, f"sent a {len(payload.data)}-byte block")
            else:
                ok.append(payload)
        # One worker thread per received message hashes and stores its blocks; several
        # messages are in flight at once (the slots), so their fsyncs overlap. One thread
        # hop per message, not per block: each hop costs the event loop a GIL hand-off.
        results = await trio.to_thread.run_sync(self._verify_and_store, ok)
        for payload, (cid, stored) in zip(ok, results, strict=True):
            if cid is None:
                self.mark_bad(peer.id, "sent a block with an unusable CID prefix")
                continue
            mh = bytes(cid.digest)
            rec = self._wants.get(mh)
            if isinstance(stored, IpfsMcpError):  # our side failed, not the peer
                if rec is not None and not rec.done.is_set():
                    rec.failure = stored
                    rec.done.set()
                    rec.notify()
                continue
            if stored and rec is not None and not rec.done.is_set():
                self._deliver(peer, rec, cid, payload.data)
            elif rec is not None or mh in self._recent:
                peer.ledger.duplicate_blocks += 1
            else:
                # Its hash matches nothing we asked for: a corrupted or unsolicited block.
                self.mark_bad(peer.id, f"sent a block we did not ask for ({cid_str(cid)})")

    def _verify_and_store(self, payloads: list[Payload]
                          ) -> list[tuple[CID | None, bool | IpfsMcpError]]:
        """In a worker thread: each block's real CID, and whether it was wanted and stored.

        The CID is computed from these very bytes, so a block is stored only if that CID is
        one we want; the blockstore checks again before it writes. Reading ``_wants`` from
        this thread is one dict lookup, atomic in CPython; a want added or ended meanwhile
        is settled by the event loop in :meth:`_on_blocks`.
        """
        out: list[tuple[CID | None, bool | IpfsMcpError]] = []
        for payload in payloads:
            try:
                cid = block_cid(payload)
            except NetworkError:
                out.append((None, False))
                continue
            rec = self._wants.get(bytes(cid.digest))
            if rec is None or rec.done.is_set():
                out.append((cid, False))
                continue
            try:
                if rec.batched:  # cid is the bytes' own hash
                    self.received.put(cid, payload.data)
                else:
                    self.store.put_computed(cid, payload.data)
            except IpfsMcpError as exc:  # DiskFull, or a receiver's file that failed
                out.append((cid, exc))
                continue
            out.append((cid, True))
        return out

    def _deliver(self, peer: _Peer, rec: WantRecord, cid: CID, data: bytes) -> None:
        key = str(peer.id)
        peer.ledger.blocks_received += 1
        peer.ledger.bytes_received += len(data)
        asked = rec.asked.get(key)
        self.reputation.update_provider_stats(
            key, True, trio.current_time() - asked[0] if asked else None, len(data))
        rec.block = data
        rec.source = key
        rec.done.set()
        rec.notify()
        self._remember(bytes(cid.digest))
        self.cancel(rec, (p for p in rec.asked if p != key))
        self._on_new_block(cid)

    def _on_new_block(self, cid: CID) -> None:
        """A block just arrived: serve it to peers that had asked us for it."""
        mh = bytes(cid.digest)
        for peer in self._peers.values():
            want = peer.their_wants.get(mh)
            if want is None or peer.failed:
                continue
            if want.want_type == WantType.BLOCK:
                peer.serve[mh] = want
            else:
                peer.out_presences[mh] = (want.cid, Presence.HAVE)
                peer.ledger.haves_sent += 1
            self._wake(peer)

    # -- outbound -----------------------------------------------------------------------
    async def _peer_loop(self, peer: _Peer) -> None:
        """Write everything we owe ``peer``; exits when idle or when the peer is gone."""
        try:
            while not peer.failed:
                if not peer.has_output():
                    peer.wake = trio.Event()
                    # Idle peers cost no task: the loop ends and _wake restarts it.
                    with trio.move_on_after(30):
                        await peer.wake.wait()
                    if not peer.has_output():
                        return
                msg = Message()
                msg.wants = list(peer.out_wants.values())
                peer.out_wants.clear()
                msg.presences = list(peer.out_presences.values())
                peer.out_presences.clear()
                try:
                    batch = peer.ready_recv.receive_nowait()
                except trio.WouldBlock:
                    batch = None
                if batch is not None:
                    self._add_blocks(peer, msg, batch)
                if not msg.empty():
                    await self._send(peer, msg)
        finally:
            peer.running = False

    async def _block_reader(self, peer: _Peer) -> None:
        """Read the blocks ``peer`` asked for, one batch ahead of the writer.

        The batch being written and at most one read batch waiting (the channel holds
        one) bound the memory a peer can make us use, while reading from disk overlaps
        with writing to the network.
        """
        try:
            while peer.serve and not peer.failed:
                async with self._turns.turn():
                    # Chosen once the turn is ours, so wants that arrived while we
                    # waited compete by priority too.
                    batch = self._next_batch(peer)
                    if not batch:
                        return
                    blocks = await anyio.to_thread.run_sync(self._read_blocks,
                                                            [w.cid for w in batch])
                if peer.failed:
                    return
                await peer.ready_send.send(list(zip(batch, blocks, strict=True)))
                self._wake(peer)
        finally:
            peer.reading = False

    def _next_batch(self, peer: _Peer) -> list[WantEntry]:
        """The peer's highest-priority wants, about ``target_message_size`` of them,
        taken off its serve queue."""
        batch: list[WantEntry] = []
        size = 0
        for want in by_priority(peer.serve.values()):
            if batch and size >= self.config.target_message_size:
                break
            del peer.serve[bytes(want.cid.digest)]
            batch.append(want)
            size += 262144  # a typical block; the real size is known once read
            if len(batch) >= 64:
                break
        return batch

    def _add_blocks(self, peer: _Peer, msg: Message,
                    batch: list[tuple[WantEntry, bytes | None]]) -> None:
        for want, data in batch:
            mh = bytes(want.cid.digest)
            if mh not in peer.their_wants:
                continue  # cancelled while it was being read: the peer no longer wants it
            if data is None:
                if want.send_dont_have:
                    msg.presences.append((want.cid, Presence.DONT_HAVE))
                    peer.ledger.dont_haves_sent += 1
                continue
            if peer.their_wants[mh] is want:
                del peer.their_wants[mh]
            msg.blocks.append((want.cid, data))
            peer.ledger.blocks_sent += 1
            peer.ledger.bytes_sent += len(data)

    def _read_blocks(self, cids: Sequence[CID]) -> list[bytes | None]:
        out: list[bytes | None] = []
        budget = self.config.max_message_size - 64 * 1024
        for cid in cids:
            try:
                data = self.store.get(cid)
            except (BlockNotFound, IntegrityError):
                out.append(None)
                continue
            if len(data) > self.config.max_block_size or len(data) > budget:
                out.append(None)
                continue
            out.append(data)
        return out

    async def _send(self, peer: _Peer, msg: Message) -> None:
        for attempt in (1, 2):
            try:
                # The library bounds each step (stream negotiation, the muxer's window
                # wait); this outer bound catches a peer that stops reading its socket.
                with trio.fail_after(self.config.send_timeout):
                    if peer.stream is not None and _moved_off_relay(self.host, peer):
                        # Hole punching brought a direct connection: leave the relayed
                        # one, whose limit a transfer would run into (the swarm opens new
                        # streams on the direct one).
                        await self._drop_stream(peer)
                    if peer.stream is None:
                        peer.stream = await self.host.new_stream(peer.id, list(PROTOCOLS))
                        peer.protocol = str(peer.stream.get_protocol() or PROTOCOL_120)
                    messages = _split(msg, peer.protocol or PROTOCOL_120,
                                      self.config.max_message_size)
                    # One write for the lot: the muxer then cuts it into full frames.
                    await peer.stream.write(frame_parts(messages))
                    self.bytes_out += sum(len(p) for parts in messages for p in parts)
                    peer.ledger.messages_sent += len(messages)
                return
            except trio.TooSlowError:
                # Cancelled mid-write, the connection may hold half an encrypted frame:
                # nothing more can be sent on it, so drop the whole connection.
                log.info("bitswap: %s stopped reading; disconnecting", peer.id)
                peer.stream = None
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    try:
                        await self.host.disconnect(peer.id)
                    except NET_ERRORS:
                        pass
                break
            except NET_ERRORS as exc:
                log.debug("bitswap: send to %s failed (attempt %d): %r", peer.id, attempt, exc)
                await self._drop_stream(peer)
        self._peer_failed(peer, "cannot send")

    async def _drop_stream(self, peer: _Peer) -> None:
        stream, peer.stream = peer.stream, None
        if stream is not None:
            await reset_quietly(stream)


def _want_entry(rec: WantRecord, want_type: WantType) -> WantEntry:
    """Our want for ``rec``: DONT_HAVE always requested; blocks before presences."""
    return WantEntry(rec.cid, want_type, send_dont_have=True,
                     priority=1 if want_type == WantType.HAVE else 2)


def _moved_off_relay(host: IHost, peer: _Peer) -> bool:
    """Whether ``peer``'s stream runs over a limited (relayed) connection while a direct one
    to the peer is open."""
    conn = getattr(peer.stream, "muxed_conn", None)
    return is_limited(conn) and bool(direct_connections(host, peer.id))


def _split(msg: Message, protocol: str, cap: int) -> list[list[bytes]]:
    """Encode ``msg`` (see :func:`encode_parts`); if it is over the cap, send its blocks
    one message each."""
    parts = encode_parts(msg, protocol)
    if sum(len(p) for p in parts) <= cap or len(msg.blocks) <= 1:
        return [parts]
    head = Message(wants=msg.wants, presences=msg.presences)
    out = [encode_parts(head, protocol)] if not head.empty() else []
    out += [encode_parts(Message(blocks=[b]), protocol) for b in msg.blocks]
    return out

