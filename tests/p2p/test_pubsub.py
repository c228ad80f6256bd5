"""Gossipsub between real nodes on 127.0.0.1: messages cross signed; unsigned, badly signed
and impostor messages are dropped; a deliberately flooding peer is scored down and dropped
while an honest peer is still heard; the bounds hold. Every wait is on a message or a
refusal, bounded by ``trio.fail_after``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.keys import KeyPair
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.validators import PUBSUB_SIGNING_PREFIX
from libp2p.utils import encode_varint_prefixed
from multiaddr import Multiaddr

from ipfs_mcp.backends.errors import InvalidInput, NotFound, TooLarge
from ipfs_mcp.p2p import P2PNode, open_node
from ipfs_mcp.p2p.host import build_host, peer_info_from_addr
from ipfs_mcp.p2p.pubsub import PubSub, PubSubLimits, PubSubMessage

from .nodes import FAST, repo_at

pytestmark = pytest.mark.anyio
TOPIC = "ipfs-mcp/test"


@asynccontextmanager
async def pubsub_node(path: Path, limits: PubSubLimits | None = None
                      ) -> AsyncIterator[P2PNode]:
    async with open_node(repo_at(path), FAST, pubsub=limits or PubSubLimits()) as node:
        yield node


def ps(node: P2PNode) -> PubSub:
    assert node.pubsub is not None
    return node.pubsub


async def joined(a: P2PNode, b: P2PNode, topic: str = TOPIC) -> None:
    """Connect ``a`` to ``b`` and wait until each sees the other in the topic's mesh."""
    await a.connect_peer(b.addrs[0])
    await ps(a).wait_for_topic_peer(topic, b.peer_id)
    await ps(b).wait_for_topic_peer(topic, a.peer_id)


async def until_message(pubsub: PubSub, topic: str, data: bytes) -> PubSubMessage:
    """The first kept message of ``topic`` carrying ``data``, waiting for it (bounded by
    the caller's deadline; every round takes at least one new message)."""
    for _ in range(10_000):
        for msg in pubsub.feed(topic).since(0):
            if msg.data == data:
                return msg
        seen = pubsub.feed(topic).received
        await pubsub.wait_for_message(topic, seen, timeout=30)
    raise AssertionError(f"{data!r} never came")


async def test_messages_cross_between_two_nodes_signed_by_their_author(tmp_path: Path
                                                                       ) -> None:
    with trio.fail_after(60):
        async with pubsub_node(tmp_path / "a") as a, pubsub_node(tmp_path / "b") as b:
            await ps(a).subscribe(TOPIC)
            await ps(b).subscribe(TOPIC)
            await joined(a, b)
            await ps(b).publish(TOPIC, b"hello from b")
            got = await until_message(ps(a), TOPIC, b"hello from b")
            await ps(a).publish(TOPIC, b"\x00binary from a")
            back = await until_message(ps(b), TOPIC, b"\x00binary from a")
            assert (got.author, back.author) == (b.peer_id, a.peer_id)
            assert b.peer_id in ps(a).peers(TOPIC)
            assert [t.topic for t in ps(a).topics()] == [TOPIC]


def _signed(key_pair: KeyPair, author: ID, data: bytes, seqno: int) -> rpc_pb2.Message:
    msg = rpc_pb2.Message(data=data, topicIDs=[TOPIC], from_id=author.to_bytes(),
                          seqno=seqno.to_bytes(8, "big"))
    msg.signature = key_pair.private_key.sign(
        PUBSUB_SIGNING_PREFIX.encode() + msg.SerializeToString())
    msg.key = key_pair.public_key.serialize()
    return msg


@asynccontextmanager
async def raw_pubsub_peer() -> AsyncIterator[tuple[object, KeyPair]]:
    """A real libp2p host that speaks the gossipsub wire by hand, to send what an honest
    node never would."""
    key_pair = create_new_key_pair()
    host = build_host(key_pair, FAST)
    async with host.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        try:
            yield host, key_pair
        finally:
            with trio.CancelScope(shield=True):
                await host.close()


async def _open_meshsub(host: object, victim: P2PNode) -> object:
    info = peer_info_from_addr(victim.addrs[0])
    await host.connect(info)  # type: ignore[attr-defined]
    stream = await host.new_stream(info.peer_id,  # type: ignore[attr-defined]
                                   [TProtocol("/meshsub/1.1.0")])
    hello = rpc_pb2.RPC(subscriptions=[rpc_pb2.RPC.SubOpts(subscribe=True, topicid=TOPIC)])
    await stream.write(encode_varint_prefixed(hello.SerializeToString()))
    return stream


async def _send(stream: object, *messages: rpc_pb2.Message) -> None:
    rpc = rpc_pb2.RPC(publish=list(messages))
    await stream.write(encode_varint_prefixed(rpc.SerializeToString()))  # type: ignore[attr-defined]


async def test_unsigned_badly_signed_and_impostor_messages_are_dropped(tmp_path: Path
                                                                       ) -> None:
    with trio.fail_after(60):
        async with pubsub_node(tmp_path / "v") as victim, \
                pubsub_node(tmp_path / "o") as other, raw_pubsub_peer() as (liar, keys):
            await ps(victim).subscribe(TOPIC)
            stream = await _open_meshsub(liar, victim)
            me = ID.from_pubkey(keys.public_key)
            unsigned = rpc_pb2.Message(data=b"unsigned", topicIDs=[TOPIC],
                                       from_id=me.to_bytes(), seqno=(1).to_bytes(8, "big"))
            tampered = _signed(keys, me, b"what was signed", 2)
            tampered.data = b"tampered after signing"
            # Signed by the liar's key but claiming another node as its author.
            impostor = _signed(keys, ID.from_base58(other.peer_id), b"impostor", 3)
            no_seqno = _signed(keys, me, b"no seqno", 4)
            no_seqno.ClearField("seqno")
            await _send(stream, unsigned, tampered, impostor, no_seqno)
            # The barrier: an honest message on the same stream, after the bad ones.
            await _send(stream, _signed(keys, me, b"honest", 5))
            got = await ps(victim).wait_for_message(TOPIC)
            assert [m.data for m in got] == [b"honest"]
            assert [m.data for m in ps(victim).feed(TOPIC).since(0)] == [b"honest"]


async def test_a_deliberately_flooding_peer_is_scored_down_and_an_honest_one_heard(
        tmp_path: Path) -> None:
    limits = PubSubLimits(peer_rate=5.0, peer_burst=10)
    with trio.fail_after(90):
        async with pubsub_node(tmp_path / "v", limits) as victim, \
                pubsub_node(tmp_path / "h") as honest, \
                raw_pubsub_peer() as (flooder, keys):
            await ps(victim).subscribe(TOPIC)
            await ps(honest).subscribe(TOPIC)
            await joined(victim, honest)
            stream = await _open_meshsub(flooder, victim)
            me = ID.from_pubkey(keys.public_key)
            flood = [_signed(keys, me, b"flood %d" % i, i + 1) for i in range(300)]
            for start in range(0, len(flood), 50):
                await _send(stream, *flood[start:start + 50])
            await ps(victim).flood.wait_refused(str(me), 5)
            # Each refusal counted against the flooder's score (it decays, but stays below
            # zero); past PUBLISH_THRESHOLD the router drops its messages unvalidated.
            assert ps(victim).score(me, TOPIC) < 0 <= ps(victim).score(honest.peer_id, TOPIC)
            await ps(honest).publish(TOPIC, b"honest after the flood")
            await until_message(ps(victim), TOPIC, b"honest after the flood")
            from_flooder = [m for m in ps(victim).feed(TOPIC).since(0) if m.author == str(me)]
            # The bucket (10 at once, 5 a second) let the first few through; the refusals
            # and then the score gate dropped the rest.
            assert len(from_flooder) < len(flood) // 2


async def test_bounds_topics_message_size_and_kept_messages(tmp_path: Path) -> None:
    limits = PubSubLimits(max_topics=2, max_messages=3, max_message_size=1000)
    with trio.fail_after(60):
        async with pubsub_node(tmp_path / "a", limits) as a, pubsub_node(tmp_path / "b") as b:
            await ps(a).subscribe(TOPIC)
            await ps(a).subscribe("second")
            with pytest.raises(TooLarge, match="at most 2 topics"):
                await ps(a).subscribe("third")
            with pytest.raises(TooLarge, match="at most 1,000 bytes"):
                await ps(a).publish(TOPIC, b"x" * 1001)
            with pytest.raises(InvalidInput):
                await ps(a).subscribe("")
            await ps(b).subscribe(TOPIC)
            await joined(a, b)
            for i in range(5):
                await ps(b).publish(TOPIC, b"m%d" % i)
            for _ in range(10):  # bounded: every round takes at least one message
                feed = ps(a).feed(TOPIC)
                if feed.received >= 5:
                    break
                await ps(a).wait_for_message(TOPIC, feed.received)
            assert ps(a).feed(TOPIC).received == 5
            kept = [m.data for m in ps(a).feed(TOPIC).since(0)]
            # Three kept, the last three to arrive (arrival order may differ from sending).
            assert len(kept) == 3 and set(kept) <= {b"m%d" % i for i in range(5)}
            await ps(a).unsubscribe("second")
            with pytest.raises(NotFound):
                ps(a).feed("second")
            with pytest.raises(NotFound):
                await ps(a).unsubscribe("second")
            await ps(a).subscribe("third")  # the freed place is usable


async def test_a_peers_hello_counts_while_it_is_a_peer_and_is_forgotten_when_it_goes(
        tmp_path: Path) -> None:
    """``heard_from`` (what the CLI waits on before it lists topics) holds the peers whose
    hello was read, and forgets one that goes: it stays bounded on a long-running node, and
    a peer that comes back is counted again only once its new hello is read."""
    with trio.fail_after(60):
        async with pubsub_node(tmp_path / "a") as a:
            await ps(a).subscribe(TOPIC)
            async with pubsub_node(tmp_path / "b") as b:
                await ps(b).subscribe(TOPIC)
                await joined(a, b)
                while b.peer_id not in ps(a).heard_from:
                    await ps(a).heard()
                gone = b.peer_id
            while gone in ps(a).heard_from:  # a notices b's connection end
                await trio.sleep(0.05)
            assert ps(a).heard_from == set()
