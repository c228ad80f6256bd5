"""IPNS over PubSub between real nodes on 127.0.0.1: a record published on its name's topic
(Kubo's ``/record/`` + base64url of the DHT key) is validated and kept by a follower; a
record signed by another key, and an older sequence, do not replace it."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ipfs_mcp.backends.core import ipns
from ipfs_mcp.p2p.pubsub import PubSub
from ipfs_mcp.p2p.pubsub_ipns import IpnsOverPubsub, ipns_topic

from .test_pubsub import pubsub_node

pytestmark = pytest.mark.anyio
CID_A = "/ipfs/bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
CID_B = "/ipfs/bafkqaaa"


async def until_received(pubsub: PubSub, topic: str, count: int) -> None:
    for _ in range(count + 1):  # bounded: each round takes at least one message
        feed = pubsub.feed(topic)
        if feed.received >= count:
            return
        await pubsub.wait_for_message(topic, feed.received, timeout=30)


def test_the_topic_is_kubos() -> None:
    key = Ed25519PrivateKey.generate()
    name = ipns.ipns_name(ipns.key_multihash(key.public_key()))
    dht_key = b"/ipns/" + ipns.key_multihash(key.public_key())
    expected = "/record/" + base64.urlsafe_b64encode(dht_key).decode().rstrip("=")
    assert ipns_topic(name) == expected == ipns_topic(name.removeprefix("/ipns/"))


async def test_a_follower_keeps_the_best_valid_record(tmp_path: Path) -> None:
    key, other_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    newer = ipns.make_record(key, CID_A, sequence=2, lifetime_seconds=3600, ttl_seconds=60)
    older = ipns.make_record(key, CID_B, sequence=1, lifetime_seconds=3600, ttl_seconds=60)
    forged = ipns.make_record(other_key, CID_B, sequence=9, lifetime_seconds=3600,
                              ttl_seconds=60)
    with trio.fail_after(60):
        async with pubsub_node(tmp_path / "a") as a, pubsub_node(tmp_path / "b") as b:
            assert a.pubsub is not None and b.pubsub is not None
            publisher, follower = IpnsOverPubsub(a.pubsub), IpnsOverPubsub(b.pubsub)
            topic = await follower.follow(newer.name)
            await publisher.follow(newer.name)
            await a.connect_peer(b.addrs[0])
            await a.pubsub.wait_for_topic_peer(topic, b.peer_id)
            await b.pubsub.wait_for_topic_peer(topic, a.peer_id)

            await publisher.publish(newer)
            await until_received(b.pubsub, topic, 1)
            assert follower.latest(newer.name) == newer
            # Another key's record on the same topic, and an older one of the right key.
            await a.pubsub.publish(topic, forged.raw)
            await a.pubsub.publish(topic, older.raw)
            await until_received(b.pubsub, topic, 3)
            assert follower.refused == 1
            assert follower.latest(newer.name) == newer
