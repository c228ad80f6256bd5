"""IPNS with Kubo 0.43.1 on loopback, through the DHT (Kubo's LAN DHT), both directions:
our record resolves in Kubo (``ipfs name resolve``), Kubo's (``ipfs name publish``)
resolves in ours, and a deliberately lying peer's stale or badly signed records are refused
by both (each PUT_VALUE answered with a reset, the real record still resolved). Kubo's
validator (``ipfs name put``) takes the records we make and refuses the ones ours refuses;
names through Kubo's RPC (``KuboNames``): keys, publish with the next sequence, resolve,
each record reported only after it validated here."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from libp2p.kad_dht.pb.kademlia_pb2 import Record
from libp2p.peer.id import ID
from p2p.nodes import node_at

from ipfs_mcp.backends.core import ipns, protobuf
from ipfs_mcp.backends.errors import InvalidInput, InvalidRecord, NameNotFound, NotFound
from ipfs_mcp.backends.remote.kubo.http_transport import HTTPTransport
from ipfs_mcp.backends.remote.kubo.names import KuboNames
from ipfs_mcp.p2p import P2PNode
from ipfs_mcp.p2p.identity import load_or_create_identity
from ipfs_mcp.p2p.keys import signing_key
from ipfs_mcp.p2p.names import NodeNames

from .kubo_daemon import InteropError, KuboDaemon

pytestmark = pytest.mark.anyio

SERVER = {"Routing.Type": "dhtserver"}
CID_1 = "/ipfs/bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
CID_2 = "/ipfs/bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


async def run(fn: Callable[[], object]) -> object:
    return await anyio.to_thread.run_sync(fn)


def kubo_resolve(kubo: KuboDaemon, name: str) -> str:
    out = kubo.cli("name", "resolve", "--nocache", "--dhtrc=1", "--dht-timeout=20s", name,
                   timeout=60)
    return out.decode().strip()


async def joined(kubo: KuboDaemon, node: P2PNode) -> None:
    """Connected, and each in the other's DHT routing table (Kubo's LAN one)."""
    await node.connect_peer(kubo.dial_addr)
    await run(lambda: kubo.wait_for_dht_peer(node.peer_id, table="lan"))


@asynccontextmanager
async def beside_kubo(kubo043_factory: Callable[..., KuboDaemon], tmp_path: Path
                      ) -> AsyncIterator[tuple[KuboDaemon, P2PNode, NodeNames, P2PNode]]:
    """A Kubo DHT server, our node with its names in Kubo's LAN table, and a liar node."""
    kubo: KuboDaemon = await run(lambda: kubo043_factory(config=SERVER))  # type: ignore[assignment]
    async with node_at(tmp_path / "n") as node, node_at(tmp_path / "liar") as liar:
        names = NodeNames.for_host(node.host, node.routing.dht, tmp_path / "n")  # type: ignore[attr-defined]
        await joined(kubo, node)
        yield kubo, node, names, liar


async def lying_put(liar: P2PNode, victim: str, name: str, raw: bytes) -> bool:
    """A PUT_VALUE of ``raw`` straight to ``victim``: whether it was taken."""
    key = ipns.dht_key(name)
    return bool(await liar.routing.dht.value_store._store_at_peer(  # type: ignore[attr-defined]
        ID.from_base58(victim), key, raw, record=Record(key=key, value=raw)))


async def test_our_record_resolves_in_kubo_and_kubo_refuses_a_liars_stale_and_forged_ones(
        kubo043_factory: Callable[..., KuboDaemon], tmp_path: Path) -> None:
    with trio.fail_after(180):
        async with beside_kubo(kubo043_factory, tmp_path) as (kubo, node, names, liar):
            await names.publish(CID_1)
            record = await names.publish(CID_2)
            assert record.sequence == 1
            assert await run(lambda: kubo_resolve(kubo, record.name)) == CID_2
            own = signing_key(load_or_create_identity(tmp_path / "n"))
            # Kubo takes our next record when it is put to it (it echoes the record back).
            third = ipns.make_record(own, CID_1, sequence=2, lifetime_seconds=3600,
                                     ttl_seconds=0)
            assert await names.dht.put(third) == 1
            # The liar holds our old record (sequence 0, validly signed) and a forgery.
            await joined(kubo, liar)
            stale = ipns.make_record(own, CID_2, sequence=0, lifetime_seconds=3600,
                                     ttl_seconds=0)
            forged = ipns.make_record(Ed25519PrivateKey.generate(), CID_2, sequence=7,
                                      lifetime_seconds=3600, ttl_seconds=0)
            for raw in (stale.raw, forged.raw):
                assert not await lying_put(liar, kubo.peer_id, record.name, raw)
            assert await run(lambda: kubo_resolve(kubo, record.name)) == CID_1


async def test_kubos_record_resolves_in_ours_and_ours_refuses_a_liars_forgery(
        kubo043_factory: Callable[..., KuboDaemon], tmp_path: Path) -> None:
    with trio.fail_after(180):
        async with beside_kubo(kubo043_factory, tmp_path) as (kubo, node, names, liar):
            # Kubo resolves what it publishes first, so it holds the content.
            added = await run(lambda: kubo.add_bytes(b"hello world\n", "--cid-version=1"))
            assert f"/ipfs/{added}" == CID_1
            out = await run(lambda: kubo.cli("name", "publish", "--quieter", CID_1,
                                             timeout=60))
            name = "/ipns/" + out.decode().strip()  # type: ignore[attr-defined]
            assert ipns.name_multihash(name) == ID.from_base58(kubo.peer_id).to_bytes()
            resolved = await names.resolve(name)
            assert (resolved.value, resolved.source) == (CID_1, "dht")
            # A forgery of Kubo's name with a higher sequence, put to our node by a liar.
            await liar.connect_peer(node.addrs[0])
            await node.wait_for_peer(liar.peer_id)
            forged = ipns.make_record(Ed25519PrivateKey.generate(), CID_2,
                                      sequence=resolved.sequence + 5,
                                      lifetime_seconds=3600, ttl_seconds=0)
            assert not await lying_put(liar, node.peer_id, name, forged.raw)
            again = await names.resolve(name)
            assert (again.value, again.sequence) == (CID_1, resolved.sequence)


def kubo_put(kubo: KuboDaemon, name: str, raw: bytes, tmp: Path, *flags: str) -> None:
    """``ipfs name put`` of a record file, held locally (Kubo's own validation unless
    ``--force``)."""
    path = tmp / f"record-{len(list(tmp.glob('record-*')))}.ipns"
    path.write_bytes(raw)
    kubo.cli("name", "put", "--allow-offline", *flags, name, str(path))


async def test_kubo_validates_our_records_as_we_do(
        kubo043_factory: Callable[..., KuboDaemon], tmp_path: Path) -> None:
    """Kubo's validator takes what ours makes and refuses what ours refuses."""
    kubo: KuboDaemon = await run(kubo043_factory)  # type: ignore[assignment]
    key = Ed25519PrivateKey.generate()
    made = ipns.make_record(key, CID_1, sequence=3, lifetime_seconds=3600, ttl_seconds=30)
    await run(lambda: kubo_put(kubo, made.name, made.raw, tmp_path))
    assert await run(lambda: kubo.rpc("name/get", arg=made.name)) == made.raw
    refused = {
        "stale": ipns.make_record(key, CID_2, sequence=2, lifetime_seconds=3600,
                                  ttl_seconds=0).raw,
        "expired": ipns.make_record(key, CID_2, sequence=4, lifetime_seconds=60, ttl_seconds=0,
                                    now=datetime.now(UTC) - timedelta(hours=1)).raw,
        "forged": ipns.make_record(Ed25519PrivateKey.generate(), CID_2, sequence=5,
                                   lifetime_seconds=3600, ttl_seconds=0).raw,
        "oversized": made.raw + protobuf.bytes_field(15, b"\0" * ipns.MAX_RECORD_SIZE),
        "V1 forged": made.raw + protobuf.bytes_field(1, CID_2.encode()),
    }
    for what, raw in refused.items():
        with pytest.raises(InteropError):
            await run(lambda raw=raw: kubo_put(kubo, made.name, raw, tmp_path))  # type: ignore[misc]
        if what != "stale":  # a stale one is valid in itself; ours refuses it against the held
            with pytest.raises(InvalidRecord):
                ipns.validate_record(made.name, raw)


async def test_names_through_kubos_rpc(
        kubo043_factory: Callable[..., KuboDaemon], tmp_path: Path) -> None:
    kubo: KuboDaemon = await run(kubo043_factory)  # type: ignore[assignment]
    names = KuboNames(HTTPTransport(kubo.api_url, timeout=30))
    keys = await names.keys()
    assert [k.name for k in keys] == ["self"]
    assert ipns.name_multihash(keys[0].ipns_name) == ID.from_base58(kubo.peer_id).to_bytes()
    made = await names.generate_key("model")
    for taken in ("model", "self"):
        with pytest.raises(InvalidInput):
            await names.generate_key(taken)
    assert await names.last_published("model") is None
    first = await names.publish(CID_1, key="model", lifetime_seconds=3600, ttl_seconds=60)
    second = await names.publish(CID_2, key="model")
    assert (first.name, first.sequence, first.ttl_seconds) == (made.ipns_name, 0, 60)
    assert (second.sequence, second.value, second.source) == (1, CID_2, "kubo")
    assert (await names.resolve(made.ipns_name)).value == CID_2
    assert await names.last_published("model") == second
    with pytest.raises(NotFound):
        await names.publish(CID_1, key="missing")
    stranger = ipns.ipns_name(ipns.key_multihash(Ed25519PrivateKey.generate().public_key()))
    with pytest.raises(NameNotFound):
        await names.resolve(stranger)
