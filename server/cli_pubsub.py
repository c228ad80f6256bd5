"""``ipfs-mcp pubsub pub/sub/ls/peers``: gossipsub from the command line, as Kubo's
``ipfs pubsub``, wire-compatible with it.

Each command starts a node of its own for the run (the server's lifespan, as a network
``get`` does), dials the ``--peer`` and ``--bootstrap`` peers, and waits, bounded by
``--wait``, for what it needs: ``pub`` for a peer subscribed to the topic (so the message
has somewhere to go), ``sub`` for ``--count`` messages, ``ls`` and ``peers`` for the peers'
pubsub greetings. ``ls`` lists the topics the connected peers subscribe to (this run's node
subscribes to none); ``peers`` the peers that speak pubsub with us.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from ipfs_mcp.backends.errors import InvalidInput, NodeNotRunning, Timeout
from ipfs_mcp.tools import pubsub as pubsub_tools

if TYPE_CHECKING:
    from ipfs_mcp.p2p.pubsub import PubSub

    from .config import ServerSettings


def add_commands(commands: Any) -> None:
    """The ``pubsub`` group, on the CLI's command table."""
    group = commands.group("pubsub", "publish and subscribe to topics (gossipsub, as "
                           "Kubo's `ipfs pubsub`)", cmd_pubsub, "pubsub_cmd")
    q = group.add("pub", "send one message on a topic (signed by this node)")
    q.add_argument("topic", help="the topic, as plain text (as Kubo's)")
    q.add_argument("data", nargs="?", help="the message text (or use --file)")
    q.add_argument("--file", type=Path, help="send this file's bytes (at most 1 MiB)")
    _add_common(q)
    q = group.add("sub", "print a topic's messages, one a line, until --count or --wait")
    q.add_argument("topic", help="the topic, as plain text (as Kubo's)")
    q.add_argument("--count", type=int, default=1, help="stop after this many (default 1)")
    _add_common(q)
    _add_common(group.add("ls", "the topics the connected peers subscribe to"))
    q = group.add("peers", "the peers that speak pubsub with this node")
    q.add_argument("topic", nargs="?", help="only those subscribed to it")
    _add_common(q)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--peer", action="append", metavar="MULTIADDR", default=None,
                        help="dial this peer first (repeatable)")
    parser.add_argument("--bootstrap", action="append", metavar="MULTIADDR", default=None,
                        help="join the network through this peer (repeatable)")
    parser.add_argument("--wait", type=float, default=30.0, metavar="SECONDS",
                        help="the longest the command waits (default 30)")


def cmd_pubsub(args: argparse.Namespace) -> int:
    """Raises: the project's errors, as one line (see ``cli.main``)."""
    lines: list[str] = anyio.run(_run, args, backend="trio")
    for line in lines:
        print(line)
    return 0


def _settings(args: argparse.Namespace) -> ServerSettings:
    from .config import ServerSettings

    settings = ServerSettings.load(bootstrap=args.bootstrap, p2p=True)
    return replace(settings, named_peers=tuple(args.peer or ()), http_retrieval=False)


def _payload(args: argparse.Namespace) -> bytes:
    """Raises: InvalidInput: neither or both of DATA and --file."""
    if (args.data is None) == (args.file is None):
        raise InvalidInput("give the message as DATA or --file FILE (one of them)")
    if args.file is not None:
        return bytes(args.file.read_bytes())
    return str(args.data).encode()


async def _run(args: argparse.Namespace) -> list[str]:
    from .cli_fetch import _connect
    from .state import lifespan_state

    data = _payload(args) if args.pubsub_cmd == "pub" else b""
    with anyio.fail_after(args.wait + 60):  # the node's start and the dials, then --wait
        async with lifespan_state(_settings(args)) as state:
            node = await state.slot.wait()
            if node is None:
                raise NodeNotRunning(f"pubsub needs the P2P node, which is "
                                     f"{state.slot.status}")
            # Served before any peer is dialled: a peer opens pubsub with us as soon as it
            # is connected, and a protocol not yet served is refused ("na") for good.
            pubsub = await node.start_pubsub()
            await _connect(state, args.peer or [], args.bootstrap or [])
            return await _command(args, pubsub, data)


async def _command(args: argparse.Namespace, pubsub: PubSub, data: bytes) -> list[str]:
    if args.pubsub_cmd == "pub":
        await _until_subscribed(pubsub, args.topic, args.wait)
        sent = await pubsub_tools.publish(pubsub, args.topic, data_base64=base64
                                          .b64encode(data).decode())
        if not await pubsub.flush():
            print("the message may not have left: the peers did not take it in time",
                  file=sys.stderr)
        text = f"sent {sent.size:,} bytes on {sent.topic!r} to {sent.peers} peer(s)"
        return [json.dumps(sent.model_dump()) if args.json else text]
    if args.pubsub_cmd == "sub":
        return await _messages(args, pubsub)
    await _greeted(pubsub, args.wait)
    if args.pubsub_cmd == "ls":
        topics = pubsub.neighbour_topics()
        return [json.dumps({"topics": topics})] if args.json else topics
    peers = pubsub.peers(args.topic)
    return [json.dumps({"peers": peers})] if args.json else peers


async def _messages(args: argparse.Namespace, pubsub: PubSub) -> list[str]:
    if args.count < 1:
        raise InvalidInput("--count is at least 1")
    await pubsub.subscribe(args.topic)
    lines: list[str] = []
    after = 0
    with anyio.move_on_after(args.wait):
        while len(lines) < args.count:  # each round takes at least one message
            for msg in await pubsub.wait_for_message(args.topic, after, timeout=args.wait):
                after = msg.index
                if len(lines) < args.count:
                    lines.append(_line(msg, args.json))
    if not lines:
        raise Timeout(f"no message on {args.topic!r} within {args.wait:g} s")
    return lines


def _line(msg: Any, as_json: bool) -> str:
    if as_json:
        return json.dumps({"from": msg.author, "seqno": msg.seqno, "topic": msg.topic,
                           "data": base64.b64encode(msg.data).decode()})
    return str(msg.data.decode(errors="replace"))


async def _until_subscribed(pubsub: PubSub, topic: str, wait: float) -> None:
    """Until some peer subscribes to ``topic``: a message sent before goes nowhere."""
    with anyio.move_on_after(wait):
        while not pubsub.peers(topic):
            await _next_greeting(pubsub)
        return
    print(f"no peer subscribes to {topic!r} yet; sending anyway", file=sys.stderr)


async def _greeted(pubsub: PubSub, wait: float) -> None:
    """Until every connected peer has opened pubsub with us and its hello (the topics it
    subscribes to) has been read (or ``wait`` passes)."""
    with anyio.move_on_after(wait):
        while {str(p) for p in pubsub.host.get_connected_peers()} - pubsub.heard_from:
            await pubsub.heard()


async def _next_greeting(pubsub: PubSub) -> None:
    # py-libp2p signals new pubsub peers and subscriptions per (peer, topic) only; a short
    # checkpoint between looks at its tables is the bounded wait here.
    await anyio.sleep(0.05)
