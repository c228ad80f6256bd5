"""Kubo's dual DHT, from our side: the provider records we send fit the half that takes them.

A peer on loopback is asked on the LAN id and gets all our addresses (loopback included: on
the WAN id they would have been stripped, so finding them there shows the id). A peer that
speaks only the Amino id (``/ipfs/kad/1.0.0``: py-libp2p's Kademlia as the library ships
it, as a WAN peer speaks) gets only our public addresses, and no signed peer record listing
the others. Our one public address here is an advertised ``/http`` address in a range that
exists only inside the NAT lab's namespaces; nothing dials it. Everything runs on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from libp2p import new_host
from libp2p.abc import IHost
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
from libp2p.kad_dht.pb.kademlia_pb2 import Message
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.tools.anyio_service import background_trio_service
from multiaddr import Multiaddr

from ipfs_mcp.p2p._net import FrameReader, close_quietly, frame
from ipfs_mcp.p2p.dual_routing import KAD_PROTOCOL, LAN_KAD_PROTOCOL, addrs_for, fit_for_wan
from tests.p2p.nodes import add_bytes, config, node_at, repo_at

pytestmark = pytest.mark.anyio

PUBLIC_HTTP = "/ip4/11.77.0.9/tcp/8080/http"
RELAY = "p2p/12D3KooWKnDdG3iXw9eTFijk3EWSunZcFi54Zka4wmtqtt6rPxc8/p2p-circuit"


@pytest.mark.parametrize(("addr", "fit"), [
    ("/ip4/127.0.0.1/tcp/4001", False),
    ("/ip4/192.168.1.20/tcp/4001", False),
    ("/ip4/10.0.0.7/udp/4001/quic-v1", False),
    ("/ip4/100.64.1.2/tcp/4001", False),  # carrier-grade NAT
    ("/ip6/::1/tcp/4001", False),
    ("/ip6/fd00::7/tcp/4001", False),
    ("/ip6/fe80::1/tcp/4001", False),
    ("/ip4/0.0.0.0/tcp/4001", False),
    ("/ip4/11.77.0.5/tcp/4001", True),
    ("/ip4/8.8.8.8/udp/4001/quic-v1", True),
    ("/ip6/2001:4860::8888/tcp/4001", True),
    (f"/ip4/11.77.0.5/tcp/4001/{RELAY}", True),  # relayed: counts by its relay
    (f"/ip4/192.168.1.1/tcp/4001/{RELAY}", False),
    ("/dns4/example.org/tcp/4001", True),
    ("/dns4/localhost/tcp/4001", False),
    ("/dnsaddr/bootstrap.libp2p.io", False),
])
def test_only_public_addresses_fit_the_wan(addr: str, fit: bool) -> None:
    assert fit_for_wan(addr) is fit
    assert addrs_for(KAD_PROTOCOL, [Multiaddr(addr)]) == ([Multiaddr(addr)] if fit else [])
    assert addrs_for(LAN_KAD_PROTOCOL, [Multiaddr(addr)]) == [Multiaddr(addr)]


@asynccontextmanager
async def amino_only_peer() -> AsyncIterator[tuple[IHost, KadDHT]]:
    """A DHT server that speaks the Amino id alone, as a peer of the public DHT does:
    py-libp2p's host and Kademlia as the library ships them (noise, yamux)."""
    key_pair = create_new_key_pair()
    noise = NoiseTransport(key_pair, noise_privkey=create_x25519_key_pair().private_key)
    host = new_host(key_pair=key_pair, sec_opt={TProtocol(NOISE_PROTOCOL_ID): noise})
    dht = KadDHT(host, DHTMode.SERVER)
    async with host.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]), background_trio_service(dht):
        yield host, dht


def record_arrival(dht: KadDHT, key: bytes) -> trio.Event:
    """An event set when ``dht`` stores a provider record for ``key``."""
    arrived = trio.Event()
    store = dht.provider_store
    add = store.add_provider

    def add_and_tell(got: bytes, provider: PeerInfo) -> None:
        add(got, provider)
        if got == key:
            arrived.set()

    store.add_provider = add_and_tell  # type: ignore[method-assign,assignment]
    return arrived


def addrs_of(dht: KadDHT, key: bytes, peer_id: str) -> list[str]:
    """The addresses ``dht`` holds in ``peer_id``'s record for ``key``, without /p2p/."""
    return [str(a).removesuffix(f"/p2p/{peer_id}")
            for info in dht.provider_store.get_providers(key)
            if str(info.peer_id) == peer_id for a in info.addrs]


async def test_records_carry_what_fits_the_dht_half_the_peer_speaks(tmp_path: Path) -> None:
    repo = repo_at(tmp_path / "a")
    cid = add_bytes(repo, b"shared with a friend on another network\n")
    key = bytes(cid.digest)
    with trio.fail_after(60):
        async with node_at(tmp_path / "b") as lan, amino_only_peer() as (wan_host, wan), \
                node_at(tmp_path / "a", config(http_addrs=(PUBLIC_HTTP,)),
                        blockstore=repo.blocks) as a:
            await a.connect_peer(f"{lan.addrs[0]}")
            await a.connect_peer(f"{wan_host.get_addrs()[0]}/p2p/{wan_host.get_id()}")
            assert a.routing.routing_table_size() == 2
            # Both are reached on loopback: the LAN table holds them, the WAN table neither.
            lan_table, wan_table = a.routing.dht, a.routing.other  # type: ignore[attr-defined]
            assert set(map(str, lan_table.routing_table.get_peer_ids())) == {
                lan.peer_id, str(wan_host.get_id())}
            assert wan_table.routing_table.size() == 0
            at_lan = record_arrival(lan.routing.dht, key)  # type: ignore[attr-defined]
            at_wan = record_arrival(wan, key)
            assert await a.announce_content(cid) == 1
            await at_lan.wait()
            await at_wan.wait()
            on_lan = addrs_of(lan.routing.dht, key, a.peer_id)  # type: ignore[attr-defined]
            on_wan = addrs_of(wan, key, a.peer_id)
    # The loopback peer was asked on the LAN id: it holds our loopback addresses.
    assert any(addr.startswith("/ip4/127.0.0.1/") for addr in on_lan), on_lan
    assert PUBLIC_HTTP in on_lan
    # The Amino-only peer holds our public address and nothing private.
    assert on_wan == [PUBLIC_HTTP]


async def ask_providers(host: IHost, peer: str, protocol: str, key: bytes) -> Message:
    """One GET_PROVIDERS to ``peer`` on ``protocol``; its answer."""
    stream = await host.new_stream(ID.from_base58(peer), [TProtocol(protocol)])
    try:
        message = Message(type=Message.MessageType.GET_PROVIDERS, key=key)
        await stream.write(frame(message.SerializeToString()))
        body = await FrameReader(stream, 1 << 20).next()
    finally:
        await close_quietly(stream)
    assert body is not None, f"{peer} did not answer on {protocol}"
    answer = Message()
    answer.ParseFromString(body)
    return answer


def peers_in(peers: object) -> dict[str, list[str]]:
    """Peer id -> addresses, of a message's closerPeers or providerPeers."""
    return {str(ID(p.id)): [str(Multiaddr(a)) for a in p.addrs] for p in peers}  # type: ignore[attr-defined]


async def test_answers_on_the_wan_id_name_only_public_peers_and_addresses(
        tmp_path: Path) -> None:
    """What our node answers a peer asking on the Amino id names no loopback or private
    peer nor address (as Kubo's WAN table holds none); asked on the LAN id, it names all."""
    repo = repo_at(tmp_path / "a")
    cid = add_bytes(repo, b"a record and a table, seen from two sides\n")
    key = bytes(cid.digest)
    with trio.fail_after(60):
        async with node_at(tmp_path / "b") as lan, amino_only_peer() as (wan_host, _), \
                node_at(tmp_path / "a", config(http_addrs=(PUBLIC_HTTP,)),
                        blockstore=repo.blocks) as a:
            await lan.connect_peer(a.addrs[0])
            await a.connect_peer(f"{wan_host.get_addrs()[0]}/p2p/{wan_host.get_id()}")
            await a.announce_content(cid)
            on_wan = await ask_providers(wan_host, a.peer_id, KAD_PROTOCOL, key)
            on_lan = await ask_providers(lan.host, a.peer_id, LAN_KAD_PROTOCOL, key)
    # The LAN id: our record with every address, and the peers we know (lan, wan).
    lan_providers = peers_in(on_lan.providerPeers)
    assert any("/ip4/127.0.0.1/" in addr for addr in lan_providers[a.peer_id])
    assert str(wan_host.get_id()) in peers_in(on_lan.closerPeers)
    # The WAN id: our record with the public address alone; the loopback peers not at all.
    wan_providers = peers_in(on_wan.providerPeers)
    assert [addr.removesuffix(f"/p2p/{a.peer_id}") for addr in wan_providers[a.peer_id]
            ] == [PUBLIC_HTTP]
    assert peers_in(on_wan.closerPeers) == {}
    assert not on_wan.HasField("senderRecord")
