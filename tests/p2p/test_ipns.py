"""IPNS between our nodes, through the DHT: a name one node publishes is held by its peer
(the inbound PUT_VALUE validated) and resolves there after the publisher left; a lying
peer's forged, stale or expired records are refused both when it puts them and when it
answers a lookup; named keys are kept 0600 and never overwritten; republishing re-signs
with the next sequence."""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from libp2p.custom_types import TProtocol
from libp2p.kad_dht.pb.kademlia_pb2 import Record
from libp2p.peer.id import ID

from ipfs_mcp.backends.core import ipns
from ipfs_mcp.backends.errors import InvalidInput, NameNotFound, NotFound
from ipfs_mcp.p2p import P2PNode
from ipfs_mcp.p2p.identity import load_or_create_identity
from ipfs_mcp.p2p.keys import signing_key
from ipfs_mcp.p2p.names import NodeNames
from ipfs_mcp.p2p.routing import KAD_PROTOCOLS

from .nodes import node_at

pytestmark = pytest.mark.anyio

CID_A = "/ipfs/bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
CID_B = "/ipfs/bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def names_of(node: P2PNode, repo: Path) -> NodeNames:
    return NodeNames.for_host(node.host, node.routing.dht, repo,  # type: ignore[attr-defined]
                              )


@asynccontextmanager
async def pair(tmp_path: Path) -> AsyncIterator[tuple[P2PNode, NodeNames, P2PNode, NodeNames]]:
    """Two of our nodes, each in the other's routing table."""
    async with node_at(tmp_path / "a") as a, node_at(tmp_path / "b") as b:
        names_a, names_b = names_of(a, tmp_path / "a"), names_of(b, tmp_path / "b")
        await b.connect_peer(a.addrs[0])
        await a.wait_for_peer(b.peer_id)
        yield a, names_a, b, names_b


async def put_as_liar(liar: P2PNode, victim: P2PNode, name: str, raw: bytes) -> bool:
    """A PUT_VALUE of ``raw`` straight to ``victim``, as a lying peer would send it."""
    key = ipns.dht_key(name)
    return bool(await liar.routing.dht.value_store._store_at_peer(  # type: ignore[attr-defined]
        ID.from_base58(victim.peer_id), key, raw, record=Record(key=key, value=raw)))


async def test_a_name_published_by_one_node_resolves_in_another_after_it_left(
        tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with node_at(tmp_path / "b") as b:
            names_b = names_of(b, tmp_path / "b")
            async with node_at(tmp_path / "a") as a:
                names_a = names_of(a, tmp_path / "a")
                await a.connect_peer(b.addrs[0])
                await b.wait_for_peer(a.peer_id)
                first = await names_a.publish(CID_A, ttl_seconds=60)
                assert first.sequence == 0 and first.name.startswith("/ipns/k51")
                second = await names_a.publish(CID_B)
                assert (second.sequence, second.value) == (1, CID_B)
                assert await names_a.last_published() == second.__class__(
                    **{**second.__dict__, "source": "local"})
            # The publisher is gone; its peer validated and kept the newer record.
            resolved = await names_b.resolve(second.name)
    assert (resolved.value, resolved.sequence, resolved.source) == (CID_B, 1, "dht")
    assert resolved.ttl_seconds == 300


async def test_a_lying_peers_forged_stale_and_expired_records_are_refused(
        tmp_path: Path) -> None:
    with trio.fail_after(90):
        async with pair(tmp_path) as (a, names_a, b, names_b), \
                node_at(tmp_path / "liar") as liar:
            await liar.connect_peer(b.addrs[0])
            await b.wait_for_peer(liar.peer_id)
            published = await names_a.publish(CID_A)
            await names_a.publish(CID_A)  # sequence 1, held by b
            name = published.name
            own_key = signing_key(load_or_create_identity(tmp_path / "a"))
            stale = ipns.make_record(own_key, CID_B, sequence=0, lifetime_seconds=3600,
                                     ttl_seconds=0)
            expired = ipns.make_record(own_key, CID_B, sequence=9, lifetime_seconds=60,
                                       ttl_seconds=0,
                                       now=datetime.now(UTC) - timedelta(hours=1))
            forged = ipns.make_record(Ed25519PrivateKey.generate(), CID_B, sequence=99,
                                      lifetime_seconds=3600, ttl_seconds=0)
            for raw in (stale.raw, expired.raw, forged.raw, os.urandom(200)):
                assert not await put_as_liar(liar, b, name, raw)
            assert (await names_b.resolve(name)).sequence == 1
            # Lying in answers instead: the liar (the library's DHT handler alone, without
            # our guard) holds a forged record and serves it to a node that first knows only
            # the liar.
            for protocol in KAD_PROTOCOLS:
                liar.host.set_stream_handler(TProtocol(protocol),
                                             liar.routing.dht.handle_stream)  # type: ignore[attr-defined]
            key = ipns.dht_key(name)
            liar.routing.dht.value_store.put_record(  # type: ignore[attr-defined]
                key, Record(key=key, value=forged.raw))
            async with node_at(tmp_path / "c") as c:
                names_c = names_of(c, tmp_path / "c")
                await c.connect_peer(liar.addrs[0])
                records, refused = await names_c.dht.get(name)
                assert liar.peer_id in refused and "signature" in refused[liar.peer_id]
                assert all(r.sequence != 99 for r in records)
                # The forged sequence 99 loses to the real sequence 1 found beside it.
                assert (await names_c.resolve(name)).sequence == 1


async def test_a_name_nobody_published_is_not_found(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with pair(tmp_path) as (_a, _names_a, _b, names_b):
            nobody = ipns.ipns_name(ipns.key_multihash(Ed25519PrivateKey.generate().public_key()))
            with pytest.raises(NameNotFound):
                await names_b.resolve(nobody)
            with pytest.raises(InvalidInput):
                await names_b.resolve("/ipns/example.com")


async def test_named_keys_are_private_files_taken_once_and_sign_their_own_names(
        tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with pair(tmp_path) as (_a, names_a, _b, names_b):
            made = await names_a.generate_key("model-v1")
            key_file = tmp_path / "a" / "keys" / "model-v1.key"
            assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
            before = key_file.read_bytes()
            for taken in ("model-v1", "self", "../escape", ".hidden", ""):
                with pytest.raises(InvalidInput):
                    await names_a.generate_key(taken)
            assert key_file.read_bytes() == before
            assert [k.name for k in await names_a.keys()] == ["self", "model-v1"]
            with pytest.raises(NotFound):
                await names_a.publish(CID_A, key="missing")
            record = await names_a.publish(CID_A, key="model-v1")
            assert record.name == made.ipns_name != (await names_a.keys())[0].ipns_name
            assert (await names_b.resolve(made.ipns_name)).value == CID_A


async def test_republishing_re_signs_what_is_about_to_expire_with_the_next_sequence(
        tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with pair(tmp_path) as (_a, names_a, _b, names_b):
            short = await names_a.publish(CID_A, lifetime_seconds=120)
            assert await names_a.republish_due(margin=60) == 0  # not yet due
            assert await names_a.republish_due(margin=3600) == 1
            again = await names_b.resolve(short.name)
            assert (again.sequence, again.value) == (1, CID_A)
            assert again.validity is not None and again.validity > (short.validity or "")


async def test_the_servers_node_network_carries_the_nodes_name_system(tmp_path: Path) -> None:
    from ipfs_mcp.backends.names import NameSystem
    from ipfs_mcp.server.node_network import NodeNetwork
    from ipfs_mcp.server.state import NodeSlot

    slot = NodeSlot()
    network = NodeNetwork(slot, repo_path=tmp_path / "a")
    assert isinstance(network.names, NameSystem)
    assert NodeNetwork(NodeSlot()).names is None  # no repo: no keys to sign with
    with trio.fail_after(60):
        async with pair(tmp_path) as (a, _names_a, _b, names_b):
            slot.settle(a, "running")
            published = await network.names.publish(CID_A)
            assert published.name == (await network.names.keys())[0].ipns_name
            assert (await names_b.resolve(published.name)).value == CID_A


async def test_a_node_running_again_republishes_a_record_about_to_expire_unasked(
        tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with node_at(tmp_path / "b") as b:
            names_b = names_of(b, tmp_path / "b")
            async with node_at(tmp_path / "a") as a:
                await a.connect_peer(b.addrs[0])
                await b.wait_for_peer(a.peer_id)
                short = await names_of(a, tmp_path / "a").publish(CID_A, lifetime_seconds=120)
            before = await names_b.resolve(short.name)
            # The same repo runs again: its node re-signs the record, with no call to names,
            # once it has a DHT peer to put it to.
            async with node_at(tmp_path / "a") as a:
                await a.connect_peer(b.addrs[0])
                while (now := await names_b.resolve(short.name)).sequence <= before.sequence:
                    await trio.sleep(0.1)
    assert now.value == CID_A
    assert now.validity is not None and now.validity > (before.validity or "")
