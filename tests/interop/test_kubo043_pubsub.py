"""PubSub against Kubo 0.43's ``ipfs pubsub`` (``Pubsub.Enabled``, gossipsub with StrictSign)
on loopback: a message we publish reaches Kubo's subscriber, and one Kubo publishes reaches
ours, both signed by their author. Kubo's RPC multibase-encodes topics and data; on the
wire both are plain bytes. Kubo's IPNS records (``Ipns.UsePubsub``) reach us on their
name's topic and validate."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import trio
from libp2p.peer.id import ID
from p2p.nodes import FAST, repo_at

from ipfs_mcp.backends.core import ipns
from ipfs_mcp.p2p import open_node
from ipfs_mcp.p2p.pubsub import PubSub, PubSubLimits
from ipfs_mcp.p2p.pubsub_ipns import IpnsOverPubsub

from .kubo_daemon import KuboDaemon

pytestmark = pytest.mark.anyio

TOPIC = "ipfs-mcp/interop"
PUBSUB = {"Pubsub.Enabled": True}


def multibase(data: bytes) -> str:
    """Kubo's RPC spelling of topics and data: base64url, no padding, prefix ``u``."""
    return "u" + base64.urlsafe_b64encode(data).decode().rstrip("=")


def unmultibase(text: str) -> bytes:
    assert text.startswith("u"), text
    body = text[1:]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))


def first_message_kubo_hears(kubo: KuboDaemon, timeout: float) -> dict[str, Any]:
    """Subscribe Kubo to TOPIC through its RPC and return the first message it prints."""
    url = f"{kubo.api_url}/api/v0/pubsub/sub"
    headers = {"Authorization": kubo.authorization} if kubo.authorization else {}
    with httpx.stream("POST", url, params={"arg": multibase(TOPIC.encode())},
                      headers=headers, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.strip():
                return dict(json.loads(line))
    raise AssertionError("Kubo's subscription ended without a message")


async def test_messages_cross_both_ways_with_kubo(
        kubo043_factory: Callable[..., KuboDaemon], tmp_path: Path) -> None:
    with trio.fail_after(120):
        async with open_node(repo_at(tmp_path / "n"), FAST, pubsub=PubSubLimits()) as node:
            pubsub = node.pubsub
            assert isinstance(pubsub, PubSub)
            await pubsub.subscribe(TOPIC)
            kubo: KuboDaemon = await anyio.to_thread.run_sync(
                lambda: kubo043_factory(config=PUBSUB))
            await anyio.to_thread.run_sync(lambda: kubo.connect(node.addrs[0]))
            kubo_id = (await anyio.to_thread.run_sync(lambda: kubo.rpc("id")))["ID"]

            heard: list[dict[str, Any]] = []

            async def listen() -> None:
                heard.append(await anyio.to_thread.run_sync(
                    lambda: first_message_kubo_hears(kubo, 60)))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(listen)
                # Kubo's subscription reaches us over the wire: then it is in our mesh.
                await pubsub.wait_for_topic_peer(TOPIC, kubo_id, timeout=60)
                await pubsub.publish(TOPIC, b"from ipfs-mcp \x00\xff")
            assert unmultibase(heard[0]["data"]) == b"from ipfs-mcp \x00\xff"
            assert heard[0]["from"] == node.peer_id
            assert [unmultibase(t) for t in heard[0]["topicIDs"]] == [TOPIC.encode()]

            await anyio.to_thread.run_sync(lambda: kubo.rpc(
                "pubsub/pub", arg=multibase(TOPIC.encode()),
                files={"file": ("data", b"from kubo \x01")}))
            for _ in range(100):  # bounded: each round takes at least one message
                feed = pubsub.feed(TOPIC)
                got = [m for m in feed.since(0) if m.author == kubo_id]
                if got:
                    break
                await pubsub.wait_for_message(TOPIC, feed.received, timeout=60)
            assert [m.data for m in got] == [b"from kubo \x01"]


async def test_kubos_ipns_record_reaches_us_over_pubsub(
        kubo043_factory: Callable[..., KuboDaemon], tmp_path: Path) -> None:
    with trio.fail_after(150):
        async with open_node(repo_at(tmp_path / "n"), FAST, pubsub=PubSubLimits()) as node:
            assert node.pubsub is not None
            kubo: KuboDaemon = await anyio.to_thread.run_sync(
                lambda: kubo043_factory(config={**PUBSUB, "Ipns.UsePubsub": True}))
            kubo_id = (await anyio.to_thread.run_sync(lambda: kubo.rpc("id")))["ID"]
            name = ipns.name_of_key(b"/ipns/" + ID.from_base58(kubo_id).to_bytes())
            names = IpnsOverPubsub(node.pubsub)
            topic = await names.follow(name)
            await anyio.to_thread.run_sync(lambda: kubo.connect(node.addrs[0]))
            cid = await anyio.to_thread.run_sync(lambda: kubo.add_bytes(b"latest model"))
            await anyio.to_thread.run_sync(lambda: kubo.rpc(
                "name/publish", arg=f"/ipfs/{cid}", allow_offline=True, timeout=120))
            for _ in range(100):  # bounded: each round takes at least one message
                if names.latest(name) is not None:
                    break
                await node.pubsub.wait_for_message(topic, node.pubsub.feed(topic).received,
                                                   timeout=120)
            record = names.latest(name)
            assert record is not None and record.value == f"/ipfs/{cid}"
