"""IPNS over PubSub, as Kubo's namesys pubsub (go-libp2p-pubsub-router) carries it.

A name's records travel on the topic ``/record/`` + base64url (no padding) of its DHT key
(``/ipns/`` and the key's multihash); a message is one record, exactly as signed. Every record
heard is validated as a DHT record is (signature, name, validity); the best one per name
(highest sequence, then longest validity) is kept, anything else is counted and dropped.
"""

from __future__ import annotations

import base64

from ipfs_mcp.backends.core import ipns
from ipfs_mcp.backends.errors import IntegrityError, InvalidInput

from .pubsub import PubSub, PubSubMessage

TOPIC_PREFIX = "/record/"


def ipns_topic(name: str) -> str:
    """Kubo's topic for ``name`` (``/ipns/k51…`` or ``k51…``).

    Raises:
        InvalidInput: not a key's name.
    """
    key = ipns.dht_key(name if name.startswith("/ipns/") else f"/ipns/{name}")
    return TOPIC_PREFIX + base64.urlsafe_b64encode(key).decode().rstrip("=")


class IpnsOverPubsub:
    """Follow names' topics and keep their best valid record; publish ours there too."""

    def __init__(self, pubsub: PubSub) -> None:
        self.pubsub = pubsub
        self._names: dict[str, str] = {}  # topic -> name
        self._best: dict[str, ipns.IpnsRecord] = {}  # name -> best record heard
        self.refused = 0
        pubsub.add_listener(self._heard)

    async def follow(self, name: str) -> str:
        """Subscribe to ``name``'s topic; its topic.

        Raises:
            InvalidInput: not a key's name.
            TooLarge: the node follows as many topics as it may.
        """
        full = name if name.startswith("/ipns/") else f"/ipns/{name}"
        topic = ipns_topic(full)
        self._names[topic] = full
        await self.pubsub.subscribe(topic)
        return topic

    async def publish(self, record: ipns.IpnsRecord) -> None:
        """Send ``record`` on its name's topic (followed, so its peers are in our mesh).

        Raises:
            TooLarge: the node follows as many topics as it may.
        """
        topic = await self.follow(record.name)
        self._keep(record)
        await self.pubsub.publish(topic, record.raw)

    def latest(self, name: str) -> ipns.IpnsRecord | None:
        """The best valid record heard for ``name``, if any."""
        return self._best.get(name if name.startswith("/ipns/") else f"/ipns/{name}")

    async def _heard(self, msg: PubSubMessage) -> None:
        name = self._names.get(msg.topic)
        if name is None:
            return
        try:
            record = ipns.validate_record(name, msg.data)
        except (IntegrityError, InvalidInput):  # forged, for another name, or expired
            self.refused += 1
            return
        self._keep(record)

    def _keep(self, record: ipns.IpnsRecord) -> None:
        held = self._best.get(record.name)
        self._best[record.name] = record if held is None else ipns.best_record([held, record])
