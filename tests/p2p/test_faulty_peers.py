"""Lying, silent and vanishing peers cannot corrupt or stall a fetch.

Each faulty peer is a real libp2p peer speaking real bitswap: one of our own nodes with a
deliberately faulty block source passed in through its constructor, or (for silence) a
host that accepts bitswap streams and never writes back.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.custom_types import TProtocol
from multiaddr import Multiaddr

from ipfs_mcp.backends.core.cids import cid_of_block
from ipfs_mcp.backends.core.exporter import Exporter
from ipfs_mcp.p2p._net import FrameReader, frame
from ipfs_mcp.p2p.bitswap.message import (
    MAX_MESSAGE_SIZE,
    PROTOCOL_120,
    PROTOCOLS,
    Message,
    WantType,
    decode_message,
    encode_message,
)
from ipfs_mcp.p2p.host import build_host
from ipfs_mcp.p2p.reputation import NO_HISTORY_SCORE

from .nodes import (
    FAST,
    PATIENT,
    CorruptingStore,
    GatedStore,
    WantLog,
    add_bytes,
    node_at,
    repo_at,
    silent_peer,
)

pytestmark = pytest.mark.anyio

SIZE = 6 * 262144 + 99  # seven leaves and a root


def seed_good_record(node: object, peer_id: str) -> None:
    """Make ``peer_id`` the provider the fetcher prefers, so the fault is really met."""
    for _ in range(3):
        node.update_provider_stats(peer_id, True, 0.01, 1_000_000)  # type: ignore[attr-defined]


def assert_clean_store(path: Path, root: object, data: bytes, blocks: int) -> None:
    repo = repo_at(path)
    assert Exporter(repo.blocks.get).read(root) == data  # type: ignore[arg-type]
    report = repo.verify()
    assert report.ok, report.corrupt  # not one unverified byte was stored
    assert report.checked == blocks  # and nothing but the DAG's blocks


async def test_corrupt_peer_is_penalised_and_never_stores(tmp_path: Path) -> None:
    data = os.urandom(SIZE)
    root = add_bytes(repo_at(tmp_path / "honest"), data)
    add_bytes(repo_at(tmp_path / "liar"), data)
    liar_store = CorruptingStore(tmp_path / "liar", fsync=False)
    with trio.fail_after(30):
        async with node_at(tmp_path / "honest") as honest, \
                node_at(tmp_path / "liar", blockstore=liar_store) as liar, \
                node_at(tmp_path / "f") as fetcher:
            await fetcher.connect_peer(liar.addrs[0])
            await fetcher.connect_peer(honest.addrs[0])
            seed_good_record(fetcher, liar.peer_id)
            before = fetcher.reputation.score(liar.peer_id)

            report = await fetcher.retrieve_content(root)

            assert report.fetched == report.blocks == 8
            assert set(report.by_peer) == {honest.peer_id}
            after = fetcher.reputation.record(liar.peer_id)
            assert after.bad_blocks >= 1 and after.score < min(before, NO_HISTORY_SCORE)
            assert fetcher.reputation.in_backoff(liar.peer_id)
            stat = fetcher.peer_stats(liar.peer_id)[0]
            assert stat.bad_blocks >= 1 and stat.blocks_received == 0
            # The liar is last in line for the next fetch.
            ranked = fetcher.reputation.get_optimal_providers([liar.peer_id, honest.peer_id])
            assert ranked == [honest.peer_id, liar.peer_id]
    assert_clean_store(tmp_path / "f", root, data, 8)


async def test_silent_peer_loses_its_wants_to_an_honest_one(tmp_path: Path) -> None:
    data = os.urandom(SIZE)
    root = add_bytes(repo_at(tmp_path / "honest"), data)
    with trio.fail_after(30):
        async with silent_peer() as silent, node_at(tmp_path / "honest") as honest, \
                node_at(tmp_path / "f") as fetcher:
            silent_id = str(silent.get_id())  # type: ignore[attr-defined]
            await fetcher.connect_peer(str(silent.get_addrs()[0]))  # type: ignore[attr-defined]
            await fetcher.connect_peer(honest.addrs[0])
            seed_good_record(fetcher, silent_id)
            before = fetcher.reputation.score(silent_id)

            report = await fetcher.retrieve_content(root)

            assert silent.heard.is_set()  # type: ignore[attr-defined]
            assert set(report.by_peer) == {honest.peer_id}
            record = fetcher.reputation.record(silent_id)
            assert record.score < before
            # A silent peer costs one want timeout, not one per block: the wants in flight
            # to it time out together, each is lost once, and it is asked nothing after.
            log: WantLog = silent.wants  # type: ignore[attr-defined]
            asked = [bytes(w.cid) for w in log.entries if w.want_type == WantType.BLOCK
                     and not w.cancel]
            assert asked and len(asked) == len(set(asked))
            # Each lost want is withdrawn from it, too (the test's bound covers the wait).
            await log.until(lambda entries: set(asked) <= {
                bytes(w.cid) for w in entries if w.cancel})
            wants = log.entries
            assert record.failures == len(asked)
            first_loss = next(i for i, w in enumerate(wants)
                              if w.cancel and bytes(w.cid) in asked)
            assert not [w for w in wants[first_loss:] if not w.cancel]
    assert_clean_store(tmp_path / "f", root, data, 8)


async def test_peer_disconnecting_mid_transfer(tmp_path: Path) -> None:
    data = os.urandom(SIZE)
    root = add_bytes(repo_at(tmp_path / "honest"), data)
    add_bytes(repo_at(tmp_path / "quitter"), data)
    served = trio.Event()
    gated = GatedStore(tmp_path / "quitter", after=2, served=served)
    quitter_scope = trio.CancelScope()
    quitter_gone = trio.Event()

    async def run_quitter(*, task_status: trio.TaskStatus[object]) -> None:
        with quitter_scope:
            async with node_at(tmp_path / "quitter", blockstore=gated) as node:
                task_status.started(node)
                await trio.sleep_forever()
        quitter_gone.set()

    with trio.fail_after(30):
        async with node_at(tmp_path / "honest") as honest, \
                node_at(tmp_path / "f") as fetcher, trio.open_nursery() as nursery:
            quitter = await nursery.start(run_quitter)
            quitter_id = quitter.peer_id
            await fetcher.connect_peer(quitter.addrs[0])
            await fetcher.connect_peer(honest.addrs[0])
            seed_good_record(fetcher, quitter_id)
            before = fetcher.reputation.score(quitter_id)

            async def pull_the_plug() -> None:
                await served.wait()  # the quitter is serving us right now
                quitter_scope.cancel()
                gated.release.set()  # let its reader threads finish so it can shut down

            nursery.start_soon(pull_the_plug)
            report = await fetcher.retrieve_content(root)
            await quitter_gone.wait()

            assert report.fetched == report.blocks == 8
            assert report.by_peer.get(honest.peer_id, 0) >= 1
            assert sum(report.by_peer.values()) == 8
            record = fetcher.reputation.record(quitter_id)
            assert record.failures >= 1 and record.score < before
            assert quitter_id not in {str(p) for p in fetcher.connected_peers()}
    assert_clean_store(tmp_path / "f", root, data, 8)


async def test_a_peer_whose_block_message_breaks_off_is_asked_again(tmp_path: Path) -> None:
    """A deliberately faulty peer (a real host speaking bitswap) answers the first want for
    the block with a message cut off half-way through, its stream then reset, as a stream
    can break on the wire; asked again, it sends the block whole. The fetch, with that peer
    alone and wants that never time out, completes: the broken stream sends the wants again
    (before, they waited for a block the peer counted sent)."""
    data = os.urandom(200_000)
    cid = cid_of_block(data)
    host = build_host(create_new_key_pair(), FAST)
    wants: list[int] = []

    async def answer(stream: object) -> None:
        reader = FrameReader(stream, MAX_MESSAGE_SIZE)  # type: ignore[arg-type]
        try:
            while (body := await reader.next()) is not None:
                asked = [w for w in decode_message(body).wants
                         if not w.cancel and w.cid == cid and w.want_type == WantType.BLOCK]
                if not asked:
                    continue
                wants.append(1)
                peer = stream.muxed_conn.peer_id  # type: ignore[attr-defined]
                out = await host.new_stream(peer, [TProtocol(PROTOCOL_120)])
                whole = frame(encode_message(Message(blocks=[(cid, data)]), PROTOCOL_120))
                if len(wants) == 1:
                    await out.write(whole[:len(whole) // 2])
                    await out.reset()
                else:
                    await out.write(whole)
                    await out.close()
        except Exception:  # the fetcher's stream ends however it ends
            return

    for proto in PROTOCOLS:
        host.set_stream_handler(TProtocol(proto), answer)  # type: ignore[arg-type]
    with trio.fail_after(60):
        async with host.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]), \
                node_at(tmp_path / "f", PATIENT) as fetcher:
            await fetcher.connect_peer(f"{host.get_addrs()[0]}/p2p/{host.get_id()}")
            assert await fetcher.fetch_block(cid) == data
            with trio.CancelScope(shield=True):
                await host.close()
    assert len(wants) == 2
