"""Serving honours bitswap priorities, with fairness across peers, as seen on the wire.

A raw bitswap writer (a real libp2p host whose only bitswap logic is this test's) sends one
wantlist with mixed priorities; the blocks arrive highest priority first, equal priorities
in the order asked. A second peer asking for one block while the first is being served a
long list gets it before the first peer's list is done: turns go round-robin.
"""

from __future__ import annotations

import random
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import pytest
import trio
from multiformats import CID

from ipfs_mcp.backends.core.cids import cid_of_block
from ipfs_mcp.p2p.bitswap.engine import ServeTurns
from ipfs_mcp.p2p.bitswap.message import Message, WantEntry, block_cid
from ipfs_mcp.p2p.host import peer_info_from_addr

from .nodes import FAST, config, node_at, repo_at
from .test_wire import RawPeer, raw_peer

pytestmark = pytest.mark.anyio

BLOCK = 300_000  # about four to a served batch (target_message_size is 1 MiB)


def stored_blocks(path: Path, count: int, seed: int) -> list[CID]:
    blocks = repo_at(path).blocks
    rnd = random.Random(seed)
    cids = []
    for _ in range(count):
        data = rnd.randbytes(BLOCK)
        cid = cid_of_block(data)
        blocks.put(cid, data)
        cids.append(cid)
    return cids


async def received(peer: RawPeer, count: int) -> list[CID]:
    """The CIDs of the next ``count`` blocks, in the order they arrived."""
    order: list[CID] = []
    while len(order) < count:
        order += [block_cid(p) for p in (await peer.next()).payloads]
    return order


async def test_a_peers_higher_priority_wants_are_sent_first(tmp_path: Path) -> None:
    cids = stored_blocks(tmp_path / "n", 12, seed=1)
    # Mixed priorities, neither the order asked nor its reverse; two pairs are equal.
    priorities = [5, 90, 20, 70, 20, 3, 100, 45, 70, 1, 60, 8]
    wants = [WantEntry(cid, priority=p) for cid, p in zip(cids, priorities, strict=True)]
    expected = [w.cid for w in sorted(wants, key=lambda w: -w.priority)]
    assert expected != cids and expected != cids[::-1]
    with trio.fail_after(60):
        async with node_at(tmp_path / "n") as node, raw_peer() as peer:
            target = peer_info_from_addr(node.addrs[0])
            await peer.host.connect(target)
            await peer.send(target.peer_id, Message(wants=wants))
            assert await received(peer, len(cids)) == expected


async def test_a_second_peer_is_served_while_the_first_is_being_served(tmp_path: Path) -> None:
    many = stored_blocks(tmp_path / "n", 40, seed=2)  # ten batches
    (one,) = stored_blocks(tmp_path / "n", 1, seed=3)
    with trio.fail_after(60):
        # One turn at a time across all peers: the rotation alone decides who is next.
        async with node_at(tmp_path / "n", config(bitswap=replace(FAST.bitswap, serve_slots=1))
                           ) as node, raw_peer() as first, raw_peer() as second:
            target = peer_info_from_addr(node.addrs[0])
            await first.host.connect(target)
            await second.host.connect(target)
            await first.send(target.peer_id, Message(wants=[WantEntry(c) for c in many]))
            got_first = await received(first, 1)
            await second.send(target.peer_id, Message(wants=[WantEntry(one)]))
            assert await received(second, 1) == [one]
            # The first peer's list was not over when the second peer's block came.
            assert len(node.bitswap.peer_wantlist(first.host.get_id())) > 0
            got_first += await received(first, len(many) - len(got_first))
            assert sorted(map(bytes, got_first)) == sorted(map(bytes, many))


async def test_turns_rotate_between_waiting_peers() -> None:
    turns = ServeTurns(1)
    order: list[str] = []

    async def serve(name: str, batches: int) -> None:
        for _ in range(batches):
            async with turns.turn():
                order.append(name)
                await trio.sleep(0)  # the other peer asks for its turn meanwhile

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve, "a", 4)
            nursery.start_soon(serve, "b", 4)
    # Whoever went first, no peer had two turns in a row while the other waited.
    assert sorted(order) == ["a"] * 4 + ["b"] * 4
    assert all(x != y for x, y in pairwise(order))
