"""PubSub: gossipsub (meshsub 1.1) with strict signing, bounded, and wire-compatible with Kubo.

::

    PubSub(host, limits=PubSubLimits())
      ├── router    py-libp2p GossipSub, offering /meshsub/1.1.0, /meshsub/1.0.0 and
      │             /floodsub/1.0.0 (what Kubo's go-libp2p-pubsub accepts); heartbeat 1 s
      ├── pubsub    py-libp2p Pubsub, StrictSign: every message we send is signed with the
      │             host's key and carries author and seqno; a message without a valid
      │             signature from its author is dropped before any validator sees it
      ├── flood     one token bucket per forwarding peer (FloodGuard); a message past it is
      │             invalid, which the router's peer score counts: below PUBLISH_THRESHOLD
      │             everything the peer sends is dropped before validation
      └── feeds     per subscribed topic, the last ``max_messages`` messages (TopicFeed), and
                    the listeners told of each one (the MCP resource notifications)

Topics on the wire are plain strings, as Kubo's; Kubo's RPC only multibase-encodes them in
its HTTP API. Bounds: at most ``max_topics`` subscriptions, ``max_messages`` kept per topic,
``max_message_size`` bytes of data (Kubo's 1 MiB frame, less room for the envelope).
"""

from __future__ import annotations

import logging
import math
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio
from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.pubsub import floodsub
from libp2p.pubsub import pubsub as _pubsub_module
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.pubsub.score import ScoreParams, TopicScoreParams
from libp2p.tools.anyio_service import background_trio_service

from ipfs_mcp.backends.errors import (
    BackendUnavailable,
    InvalidInput,
    NotFound,
    Timeout,
    TooLarge,
)

log = logging.getLogger(__name__)

PROTOCOLS: tuple[TProtocol, ...] = (PROTOCOL_ID_V11, PROTOCOL_ID, floodsub.PROTOCOL_ID)
# Kubo (go-libp2p-pubsub) refuses RPC frames over 1 MiB; a message's signature, key, author,
# seqno and topic must fit beside its data.
MAX_RPC_SIZE = 1 << 20
ENVELOPE_ROOM = 8 << 10
MAX_TOPIC_LENGTH = 512
# A peer whose score falls below this has every message dropped before validation. Each
# message over its rate counts -1 (P4, invalid messages); the count decays by 10 % a second.
PUBLISH_THRESHOLD = -10.0
GREET_TIMEOUT = 15.0


@dataclass(frozen=True)
class PubSubLimits:
    """What one node keeps and accepts."""

    max_topics: int = 32
    max_messages: int = 100  # kept per topic, oldest dropped first
    max_message_size: int = MAX_RPC_SIZE - ENVELOPE_ROOM
    peer_rate: float = 20.0  # messages per second one peer may forward to us, sustained
    peer_burst: int = 50  # ... and at once


@dataclass(frozen=True)
class PubSubMessage:
    """One message as it arrived; ``author`` signed it (checked before it got here)."""

    topic: str
    data: bytes
    author: str
    seqno: int
    index: int  # its place in the topic's feed, counting from 1


@dataclass(frozen=True)
class TopicState:
    topic: str
    kept: int
    received: int  # since the subscription began (kept + dropped as old)
    peers: int  # peers we know subscribe to it


MessageListener = Callable[[PubSubMessage], Awaitable[None]]
LISTENER_TIMEOUT = 5.0  # a listener slower than this loses the message, not the feed


class TopicFeed:
    """The last ``size`` messages of one topic, and an event per arrival to wait on."""

    def __init__(self, topic: str, size: int) -> None:
        self.topic = topic
        self.messages: deque[PubSubMessage] = deque(maxlen=size)
        self.received = 0
        self._arrived = trio.Event()

    def add(self, msg: rpc_pb2.Message) -> PubSubMessage:
        self.received += 1
        entry = PubSubMessage(self.topic, bytes(msg.data), str(ID(msg.from_id)),
                              int.from_bytes(msg.seqno, "big"), self.received)
        self.messages.append(entry)
        self._arrived.set()
        self._arrived = trio.Event()
        return entry

    def since(self, index: int) -> list[PubSubMessage]:
        return [m for m in self.messages if m.index > index]

    async def wait_after(self, index: int) -> None:
        """Until a message later than ``index`` is here (the caller bounds the wait)."""
        while self.received <= index:
            await self._arrived.wait()


class FloodGuard:
    """A token bucket per forwarding peer: ``rate`` messages a second, ``burst`` at once.

    Our own messages pass. The router counts each refusal as an invalid message, which
    scores the peer down (see :data:`PUBLISH_THRESHOLD`).
    """

    def __init__(self, me: ID, rate: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.me, self.rate, self.burst, self.clock = me, rate, burst, clock
        self._buckets: dict[ID, tuple[float, float]] = {}
        self.refused: dict[str, int] = {}
        self._refusal = trio.Event()

    def __call__(self, forwarder: ID, msg: rpc_pb2.Message) -> bool:
        if forwarder == self.me:
            return True
        now = self.clock()
        tokens, last = self._buckets.get(forwarder, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[forwarder] = (tokens, now)
            key = str(forwarder)
            self.refused[key] = self.refused.get(key, 0) + 1
            self._refusal.set()
            self._refusal = trio.Event()
            return False
        self._buckets[forwarder] = (tokens - 1.0, now)
        if len(self._buckets) > 4096:  # forget the longest-idle peers, not grow forever
            for peer, _ in sorted(self._buckets.items(), key=lambda kv: kv[1][1])[:1024]:
                del self._buckets[peer]
        return True


    async def wait_refused(self, peer: str, count: int) -> None:
        """Until ``count`` messages of ``peer`` were refused (the caller bounds the wait)."""
        while self.refused.get(peer, 0) < count:
            await self._refusal.wait()


def score_params() -> ScoreParams:
    """Gossipsub 1.1 scoring as we use it: invalid messages (P4) cost, and decay slowly."""
    return ScoreParams(
        p4_invalid_messages=TopicScoreParams(weight=1.0, cap=10_000.0, decay=0.9),
        publish_threshold=PUBLISH_THRESHOLD,
        gossip_threshold=PUBLISH_THRESHOLD,
        graylist_threshold=-math.inf,
    )


class _StoppablePubsub(Pubsub):
    """py-libp2p 0.8.1's Pubsub, whose inbound streams end quietly once it has stopped.

    Its service stops before the host closes the connections (the node's parts stop in
    reverse order); a message read meanwhile is handed to the stopped service's closed
    nursery, and the RuntimeError would end the host's stream handler, and so the node,
    with an error. That stream is reset instead.
    """

    # Told of each peer the library drops (its streams died, or it disconnected).
    gone: Callable[[ID], None] | None = None

    def _handle_dead_peer(self, peer_id: ID) -> None:
        super()._handle_dead_peer(peer_id)
        if self.gone is not None:
            self.gone(peer_id)

    async def stream_handler(self, stream: INetStream) -> None:
        try:
            await super().stream_handler(stream)
        except RuntimeError as exc:
            if "closed to new arrivals" not in str(exc):
                raise
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                try:
                    await stream.reset()
                except Exception as reset_exc:  # it may be gone already
                    log.debug("pubsub: resetting a stream after stop: %r", reset_exc)


# -- py-libp2p 0.8.1: which peers' first RPC (their hello) has been read -------------------
# A peer counts as a pubsub peer (``Pubsub.peers``) once *our* stream to it is open, before
# anything it sent has been read; so "greeted" by that count, a reader could list a peer's
# topics before its hello (which carries them) arrived. The library checks each RPC it
# reads with ``maybe_consume_signed_record`` and then applies its subscriptions with no
# await in between, so the hook below, which notes the peer first, marks the moment after
# which its subscriptions are known. The function is module-wide: each host's PubSub
# registers itself here.
_HELLO_LISTENERS: weakref.WeakKeyDictionary[IHost, Callable[[ID], None]] = (
    weakref.WeakKeyDictionary())
_check_record = _pubsub_module.maybe_consume_signed_record


def _noting_the_sender(rpc: rpc_pb2.RPC, host: IHost, peer_id: ID) -> bool:
    heard = _HELLO_LISTENERS.get(host)
    if heard is not None:
        heard(peer_id)
    return bool(_check_record(rpc, host, peer_id))


_pubsub_module.maybe_consume_signed_record = _noting_the_sender  # type: ignore[assignment]


def check_topic(topic: str) -> str:
    """Raises: InvalidInput: empty, too long, or not printable text."""
    if not topic or len(topic) > MAX_TOPIC_LENGTH or not topic.isprintable():
        raise InvalidInput(f"a topic is 1 to {MAX_TOPIC_LENGTH} printable characters")
    return topic


class PubSub:
    """Gossipsub on ``host``: publish, subscribe into bounded feeds, unsubscribe."""

    def __init__(self, host: IHost, limits: PubSubLimits | None = None) -> None:
        self.host = host
        self.limits = limits or PubSubLimits()
        self.router = GossipSub(
            list(PROTOCOLS), degree=6, degree_low=4, degree_high=12,
            heartbeat_interval=1,  # Kubo's, so the mesh forms within a second or two
            score_params=score_params(),
            # Its built-in limit also throttles our own publishing (10 a second per topic)
            # and only after delivery; FloodGuard refuses before delivery, per peer.
            spam_protection_enabled=False,
        )
        self.pubsub = _StoppablePubsub(host, self.router, strict_signing=True,
                                       max_inbound_rpc_size=MAX_RPC_SIZE,
                                       max_subscriptions_per_peer=self.limits.max_topics * 4)
        self.flood = FloodGuard(host.get_id(), self.limits.peer_rate, self.limits.peer_burst)
        self.feeds: dict[str, TopicFeed] = {}
        self._pumps: dict[str, trio.CancelScope] = {}
        self._listeners: list[MessageListener] = []
        self._nursery: trio.Nursery | None = None
        # Peers whose hello (first RPC) has been read, while they are pubsub peers: one that
        # goes (and may come back, with a new hello) is forgotten, so this stays bounded.
        self.heard_from: set[str] = set()
        self._heard = trio.Event()
        _HELLO_LISTENERS[host] = self._note_heard
        self.pubsub.gone = self._forget_heard

    @asynccontextmanager
    async def running(self) -> AsyncIterator[PubSub]:
        """Run the router and pubsub services (and the feeds' readers) for the block."""
        async with background_trio_service(self.pubsub), \
                background_trio_service(self.router), trio.open_nursery() as nursery:
            self._nursery = nursery
            await self.pubsub.wait_until_ready()
            # Peers connected before we started never saw a connection event: greet them.
            for peer in self.host.get_connected_peers():
                nursery.start_soon(self._greet, peer)
            try:
                yield self
            finally:
                self._nursery = None
                nursery.cancel_scope.cancel()

    def _note_heard(self, peer: ID) -> None:
        key = str(peer)
        if key not in self.heard_from:
            self.heard_from.add(key)
            self._heard.set()
            self._heard = trio.Event()

    def _forget_heard(self, peer: ID) -> None:
        self.heard_from.discard(str(peer))

    async def heard(self) -> None:
        """Until another peer's hello has been read (see ``heard_from``)."""
        await self._heard.wait()

    async def _greet(self, peer: ID) -> None:
        with trio.move_on_after(GREET_TIMEOUT):
            try:
                await self.pubsub.ensure_peer_stream(peer, timeout=GREET_TIMEOUT)
            except Exception as exc:  # a peer without pubsub: nothing to greet
                log.debug("pubsub: no stream to %s: %r", peer, exc)

    def add_listener(self, listener: MessageListener) -> None:
        """Await ``listener`` with every message that reaches a feed, for at most
        :data:`LISTENER_TIMEOUT` seconds each."""
        self._listeners.append(listener)

    async def publish(self, topic: str, data: bytes) -> None:
        """Sign and send ``data`` on ``topic`` to the peers that subscribe to it.

        Raises:
            InvalidInput: a bad topic.
            TooLarge: ``data`` is over ``max_message_size``.
            BackendUnavailable: the node is not running.
        """
        check_topic(topic)
        if len(data) > self.limits.max_message_size:
            raise TooLarge(f"a message is at most {self.limits.max_message_size:,} bytes; "
                           f"this one is {len(data):,}")
        self._running()
        await self.pubsub.publish(topic, data)

    async def subscribe(self, topic: str) -> TopicFeed:
        """Join ``topic``; its messages from now on are kept in the returned feed.

        Raises:
            InvalidInput: a bad topic.
            TooLarge: already ``max_topics`` subscriptions.
            BackendUnavailable: the node is not running.
        """
        check_topic(topic)
        if topic in self.feeds:
            return self.feeds[topic]
        if len(self.feeds) >= self.limits.max_topics:
            raise TooLarge(f"at most {self.limits.max_topics} topics at once; "
                           "unsubscribe from one first")
        nursery = self._running()
        self.pubsub.set_topic_validator(topic, self.flood, is_async_validator=False)
        feed = self.feeds[topic] = TopicFeed(topic, self.limits.max_messages)
        subscription = await self.pubsub.subscribe(topic)
        scope = self._pumps[topic] = trio.CancelScope()
        nursery.start_soon(self._pump, feed, subscription, scope)
        return feed

    async def unsubscribe(self, topic: str) -> None:
        """Leave ``topic`` and forget its feed.

        Raises:
            NotFound: not subscribed to ``topic``.
        """
        if topic not in self.feeds:
            raise NotFound(f"not subscribed to topic {topic!r}")
        del self.feeds[topic]
        self._pumps.pop(topic).cancel()
        self.pubsub.remove_topic_validator(topic)
        await self.pubsub.unsubscribe(topic)

    async def _pump(self, feed: TopicFeed, subscription: object,
                    scope: trio.CancelScope) -> None:
        with scope:
            async for msg in subscription:  # type: ignore[attr-defined]
                entry = feed.add(msg)
                for listener in list(self._listeners):
                    try:
                        with trio.move_on_after(LISTENER_TIMEOUT):
                            await listener(entry)
                    except Exception:  # a listener's bug must not stop the feed
                        log.exception("pubsub: a message listener failed")

    async def wait_for_message(self, topic: str, after: int = 0, *,
                               timeout: float = 10.0) -> list[PubSubMessage]:
        """The messages of ``topic`` past index ``after``, waiting for one if none is.

        Raises:
            NotFound: not subscribed to ``topic``.
            Timeout: nothing came within ``timeout`` seconds.
        """
        feed = self.feed(topic)
        with trio.move_on_after(timeout):
            await feed.wait_after(after)
            return feed.since(after)
        raise Timeout(f"no message on {topic!r} within {timeout:g} s")

    async def wait_for_topic_peer(self, topic: str, peer: str | ID, *,
                                  timeout: float = 10.0) -> None:
        """Until ``peer`` subscribes to ``topic`` (and, if we joined it, is in our mesh).

        Raises:
            Timeout: it did not within ``timeout`` seconds.
        """
        peer_id = peer if isinstance(peer, ID) else ID.from_base58(peer)
        try:
            with trio.fail_after(timeout):
                await self.pubsub.wait_for_subscription(peer_id, topic, timeout=timeout)
                if topic in self.feeds:
                    await self.pubsub.wait_for_mesh(peer_id, topic, timeout=timeout)
        except trio.TooSlowError as exc:
            raise Timeout(f"{peer_id} did not join {topic!r} within {timeout:g} s") from exc

    def feed(self, topic: str) -> TopicFeed:
        """Raises: NotFound: not subscribed to ``topic``."""
        try:
            return self.feeds[topic]
        except KeyError:
            raise NotFound(f"not subscribed to topic {topic!r}") from None

    def topics(self) -> list[TopicState]:
        return [TopicState(t, len(f.messages), f.received,
                           len(self.pubsub.peer_topics.get(t, ())))
                for t, f in sorted(self.feeds.items())]

    def peers(self, topic: str | None = None) -> list[str]:
        """Peers that speak pubsub with us (subscribed to ``topic``, if given)."""
        if topic is None:
            return sorted(str(p) for p in self.pubsub.peers)
        return sorted(str(p) for p in self.pubsub.peer_topics.get(topic, ()))

    async def flush(self, timeout: float = 5.0) -> bool:
        """Wait (at most ``timeout`` s) until what we sent has left our queues: a process
        that exits right after publishing would otherwise drop it. Whether it left."""
        with trio.move_on_after(timeout):
            while any(len(q) for q in self.pubsub.peer_queues.values()):
                await trio.sleep(0.02)
            # The sender task took the last one; give its write the same short turns.
            await trio.sleep(0.2)
            return True
        return False

    def neighbour_topics(self) -> list[str]:
        """The topics our pubsub peers subscribe to (whether or not we do)."""
        return sorted(t for t, peers in self.pubsub.peer_topics.items() if peers)

    def score(self, peer: str | ID, topic: str) -> float:
        """The router's score of ``peer`` on ``topic`` (below PUBLISH_THRESHOLD: ignored)."""
        peer_id = peer if isinstance(peer, ID) else ID.from_base58(peer)
        scorer = self.router.scorer
        return 0.0 if scorer is None else float(scorer.score(peer_id, [topic]))

    def _running(self) -> trio.Nursery:
        if self._nursery is None:
            raise BackendUnavailable("pubsub is not running: the p2p node is not started")
        return self._nursery
