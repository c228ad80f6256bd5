"""``ipfs-mcp pubsub`` as a person runs it, against a real node on 127.0.0.1: ``sub`` prints
the message the node publishes, ``pub`` reaches the node's subscription, ``peers`` and ``ls``
name the node and its topic, all with ``--json``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
import trio
from libp2p.peer.id import ID

from ipfs_mcp.p2p import open_node
from ipfs_mcp.p2p.identity import load_or_create_identity
from ipfs_mcp.p2p.pubsub import PubSubLimits

from .nodes import FAST, repo_at
from .test_pubsub import until_message

pytestmark = pytest.mark.anyio
TOPIC = "ipfs-mcp/cli"
CLI = [sys.executable, "-m", "ipfs_mcp.server.cli", "pubsub"]


def cli_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_CACHE", "IPFS_MCP_P2P")}
    env["HF_HOME"] = str(home)
    return env


async def run_cli(home: Path, *argv: str) -> subprocess.CompletedProcess[bytes]:
    done = await anyio.run_process([*CLI, *argv], env=cli_env(home), check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return done


async def test_cli_sub_pub_peers_and_ls_against_a_node(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "ipfs").mkdir(parents=True)
    # The CLI's node identity, made first so the test knows which peer to wait for.
    cli_peer = str(ID.from_pubkey(load_or_create_identity(home / "ipfs").public_key))
    with trio.fail_after(180):
        async with open_node(repo_at(tmp_path / "n"), FAST, pubsub=PubSubLimits()) as node:
            assert node.pubsub is not None
            await node.pubsub.subscribe(TOPIC)
            addr = node.addrs[0]
            got: list[subprocess.CompletedProcess[bytes]] = []

            async def sub() -> None:
                got.append(await run_cli(home, "sub", TOPIC, "--peer", addr, "--json",
                                         "--wait", "60"))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(sub)
                await node.pubsub.wait_for_topic_peer(TOPIC, cli_peer, timeout=90)
                await node.pubsub.publish(TOPIC, b"to the cli")
            line = json.loads(got[0].stdout.decode().strip().splitlines()[0])
            assert line["from"] == node.peer_id and line["topic"] == TOPIC
            assert line["data"] == "dG8gdGhlIGNsaQ=="  # base64 of b"to the cli"

            sent = await run_cli(home, "pub", TOPIC, "from the cli", "--peer", addr,
                                 "--json")
            assert json.loads(sent.stdout)["peers"] == 1
            msg = await until_message(node.pubsub, TOPIC, b"from the cli")
            assert msg.author == cli_peer

            peers = await run_cli(home, "peers", TOPIC, "--peer", addr, "--json")
            assert json.loads(peers.stdout) == {"peers": [node.peer_id]}
            topics = await run_cli(home, "ls", "--peer", addr, "--json")
            assert TOPIC in json.loads(topics.stdout)["topics"]
