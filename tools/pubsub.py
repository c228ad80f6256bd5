"""PubSub tools: publish on a topic, subscribe (the topic becomes the resource
``pubsub://{topic}``, updated as messages arrive), read what was kept, unsubscribe.

The node's pubsub is handed in as :class:`Topics` (our gossipsub, ``p2p.pubsub.PubSub``); it
is None when the node runs without it, and ``why`` says so. Bounds are the node's: so many
topics, so many messages kept per topic, Kubo's 1 MiB message size.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, Protocol
from urllib.parse import quote, unquote

from pydantic import BaseModel, Field

from ipfs_mcp.backends.errors import InvalidInput, NodeNotRunning

SCHEME = "pubsub://"

# Short on purpose: tools/list is sent to the model whole; the names say the rest, and
# check_topic and the node bound what the schema does not.
TopicArg = str
MessageText = str | None
MessageBase64 = str | None
LeaveArg = Annotated[bool, Field(description="Unsubscribe instead")]


class Message(Protocol):
    @property
    def topic(self) -> str: ...
    @property
    def data(self) -> bytes: ...
    @property
    def author(self) -> str: ...
    @property
    def seqno(self) -> int: ...
    @property
    def index(self) -> int: ...


class Feed(Protocol):
    @property
    def received(self) -> int: ...
    def since(self, index: int) -> Sequence[Message]: ...


class Topics(Protocol):
    """What the tools ask of a node's pubsub."""

    async def publish(self, topic: str, data: bytes) -> None: ...
    async def subscribe(self, topic: str) -> Feed: ...
    async def unsubscribe(self, topic: str) -> None: ...
    def feed(self, topic: str) -> Feed: ...
    def peers(self, topic: str | None = None) -> list[str]: ...
    def add_listener(self, listener: Callable[[Any], Awaitable[None]]) -> None: ...


class PublishResult(BaseModel):
    topic: str
    size: int
    peers: int  # peers known to subscribe to the topic when it was sent


class SubscribeResult(BaseModel):
    topic: str
    uri: str
    subscribed: bool  # False: it was no longer (unsubscribe)


class TopicMessage(BaseModel):
    index: int
    author: str
    seqno: int
    text: str | None = None  # when the data is UTF-8
    data_base64: str | None = None  # otherwise


class TopicMessages(BaseModel):
    topic: str
    received: int
    messages: list[TopicMessage]


def topic_uri(topic: str) -> str:
    return SCHEME + quote(topic, safe="")


def topic_of(uri_part: str) -> str:
    return unquote(uri_part)


def require(topics: Topics | None, why: str) -> Topics:
    """Raises: NodeNotRunning: the node runs no pubsub (``why`` says why)."""
    if topics is None:
        raise NodeNotRunning(f"pubsub is not available: {why}")
    return topics


def payload(text: str | None, data_base64: str | None) -> bytes:
    """Raises: InvalidInput: neither or both given, or base64 that does not decode."""
    if (text is None) == (data_base64 is None):
        raise InvalidInput("pass exactly one of text and data_base64")
    if text is not None:
        return text.encode()
    try:
        return base64.b64decode(data_base64 or "", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"data_base64 is not base64: {exc}") from exc


async def publish(topics: Topics | None, topic: str, *, text: str | None = None,
                  data_base64: str | None = None, why: str = "") -> PublishResult:
    """Raises: NodeNotRunning, InvalidInput, TooLarge (over the message bound)."""
    node = require(topics, why)
    data = payload(text, data_base64)
    await node.publish(topic, data)
    return PublishResult(topic=topic, size=len(data), peers=len(node.peers(topic)))


async def subscribe(topics: Topics | None, topic: str, *, why: str = "") -> SubscribeResult:
    """Raises: NodeNotRunning, InvalidInput (a bad topic), TooLarge (too many topics)."""
    await require(topics, why).subscribe(topic)
    return SubscribeResult(topic=topic, uri=topic_uri(topic), subscribed=True)


async def unsubscribe(topics: Topics | None, topic: str, *, why: str = "") -> SubscribeResult:
    """Raises: NodeNotRunning; NotFound: not subscribed to ``topic``."""
    await require(topics, why).unsubscribe(topic)
    return SubscribeResult(topic=topic, uri=topic_uri(topic), subscribed=False)


def read(topics: Topics | None, topic: str, *, after: int = 0, why: str = ""
         ) -> TopicMessages:
    """The kept messages of ``topic`` past index ``after``.

    Raises: NodeNotRunning; NotFound: not subscribed to ``topic``.
    """
    feed = require(topics, why).feed(topic)
    return TopicMessages(topic=topic, received=feed.received,
                         messages=[_message(m) for m in feed.since(after)])


def _message(msg: Message) -> TopicMessage:
    try:
        return TopicMessage(index=msg.index, author=msg.author, seqno=msg.seqno,
                            text=msg.data.decode())
    except UnicodeDecodeError:
        return TopicMessage(index=msg.index, author=msg.author, seqno=msg.seqno,
                            data_base64=base64.b64encode(msg.data).decode())
