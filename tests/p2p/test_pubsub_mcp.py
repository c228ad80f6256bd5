"""PubSub through MCP: reading ``pubsub://{topic}`` subscribes the server's node; a message
another node publishes arrives as a resource-updated event and in the next read;
``pubsub_publish`` reaches the other node; ``leave=true`` unsubscribes; bad input is one
clear error. A real server with its node on 127.0.0.1, and a real second node."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
import trio
from mcp import Client
from mcp_types import CallToolResult, TextContent, TextResourceContents

from ipfs_mcp.p2p import open_node
from ipfs_mcp.p2p.pubsub import PubSubLimits
from ipfs_mcp.server.app import build_server
from ipfs_mcp.server.config import ServerSettings
from ipfs_mcp.tools.pubsub import topic_uri

from .nodes import FAST, repo_at
from .test_pubsub import until_message

pytestmark = pytest.mark.anyio
TOPIC = "ipfs-mcp/agents"


async def read_json(client: Client, uri: str) -> dict[str, Any]:
    content = (await client.read_resource(uri)).contents[0]
    assert isinstance(content, TextResourceContents), content
    return dict(json.loads(content.text))


def text_of(result: CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, TextContent))


def settings_at(home: Path) -> ServerSettings:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_CACHE", "IPFS_MCP_P2P")}
    env["HF_HOME"] = str(home)
    return ServerSettings.load(env)


async def test_a_topic_is_a_resource_updated_as_messages_arrive(tmp_path: Path) -> None:
    uri = topic_uri(TOPIC)
    with trio.fail_after(90):
        async with Client(build_server(settings_at(tmp_path / "home"))) as client, \
                open_node(repo_at(tmp_path / "other"), FAST, pubsub=PubSubLimits()) as other:
            first = await read_json(client, uri)
            assert first == {"topic": TOPIC, "received": 0, "messages": []}
            stats = await client.call_tool("peer_stats", {})
            ours = stats.structured_content["network"]
            await other.connect_peer(ours["listen_addrs"][0])
            assert other.pubsub is not None
            await other.pubsub.subscribe(TOPIC)
            await other.pubsub.wait_for_topic_peer(TOPIC, ours["peer_id"], timeout=60)

            async with client.listen(resource_subscriptions=[uri]) as events:
                await other.pubsub.publish(TOPIC, "bonjour ☃".encode())
                async for event in events:  # bounded by the deadline above
                    if getattr(event, "uri", None) == uri:
                        break
            read = await read_json(client, uri)
            assert [(m["text"], m["author"]) for m in read["messages"]] == [
                ("bonjour ☃", other.peer_id)]

            sent = await client.call_tool("pubsub_publish", {
                "topic": TOPIC, "data_base64": base64.b64encode(b"\x00\xff").decode()})
            assert not sent.is_error, sent.content
            assert sent.structured_content["size"] == 2
            got = await until_message(other.pubsub, TOPIC, b"\x00\xff")
            assert got.author == ours["peer_id"]

            both = await client.call_tool("pubsub_publish", {"topic": TOPIC, "text": "a",
                                                             "data_base64": "YQ=="})
            assert both.is_error and "exactly one" in text_of(both)
            big = await client.call_tool("pubsub_publish", {
                "topic": TOPIC, "data_base64": base64.b64encode(b"x" * (1 << 20)).decode()})
            assert big.is_error and "at most" in text_of(big)

            left = await client.call_tool("pubsub_publish", {"topic": TOPIC, "leave": True})
            assert not left.is_error and left.structured_content["subscribed"] is False
            again = await client.call_tool("pubsub_publish", {"topic": TOPIC, "leave": True})
            assert again.is_error and "not subscribed" in text_of(again)
