"""Delegated routing (``/routing/v1``) on the gateway port: JSON and NDJSON, 200 when empty,
400 for bad keys, 501 without a lookup."""

from __future__ import annotations

import json

import pytest
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID
from multiformats import CID

from ipfs_mcp.backends.core.cids import parse_cid
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.server.gateway import (
    BlockstoreSource,
    Gateway,
    InMemoryProviders,
    PeerRecord,
    ProviderRecord,
)

from .conftest import serving

pytestmark = pytest.mark.anyio


def peer_id() -> str:
    return ID.from_pubkey(create_new_key_pair().public_key).to_base58()


async def test_providers_and_peers_in_json_and_ndjson(backend: HFCacheBackend) -> None:
    cid = backend.add_bytes(b"provided content\n")
    us, other = peer_id(), peer_id()
    lookup = InMemoryProviders()
    lookup.add_provider(parse_cid(cid), ProviderRecord(
        us, ("/ip4/127.0.0.1/tcp/8080/http",), ("transport-ipfs-gateway-http",)))
    lookup.add_provider(parse_cid(cid), ProviderRecord(
        other, ("/ip4/127.0.0.1/tcp/4001",), ("transport-bitswap",)))
    lookup.add_peer(PeerRecord(us, ("/ip4/127.0.0.1/tcp/4001",)))
    gateway = Gateway(BlockstoreSource(backend.repo.blocks), providers=lookup)
    as_cid = CID("base36", 1, "libp2p-key", ID.from_base58(us).to_bytes()).encode()
    async with serving(gateway) as http:
        as_json = await http.get(f"/routing/v1/providers/{cid}")
        as_ndjson = await http.get(f"/routing/v1/providers/{cid}",
                                   headers={"accept": "application/x-ndjson"})
        peer = await http.get(f"/routing/v1/peers/{us}")
        peer_by_cid = await http.get(f"/routing/v1/peers/{as_cid}")
    assert as_json.status_code == 200
    assert as_json.headers["content-type"] == "application/json"
    assert as_json.json() == {"Providers": [
        {"Schema": "peer", "ID": us, "Addrs": ["/ip4/127.0.0.1/tcp/8080/http"],
         "Protocols": ["transport-ipfs-gateway-http"]},
        {"Schema": "peer", "ID": other, "Addrs": ["/ip4/127.0.0.1/tcp/4001"],
         "Protocols": ["transport-bitswap"]}]}
    assert as_ndjson.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in as_ndjson.text.splitlines()]
    assert [line["ID"] for line in lines] == [us, other]
    assert peer.json() == {"Peers": [{"Schema": "peer", "ID": us,
                                      "Addrs": ["/ip4/127.0.0.1/tcp/4001"]}]}
    assert peer_by_cid.json() == peer.json()


async def test_empty_answers_are_200_and_bad_keys_400(backend: HFCacheBackend) -> None:
    gateway = Gateway(BlockstoreSource(backend.repo.blocks), providers=InMemoryProviders())
    cid = backend.add_bytes(b"nobody provides this\n")
    async with serving(gateway) as http:
        empty = await http.get(f"/routing/v1/providers/{cid}")
        empty_nd = await http.get(f"/routing/v1/providers/{cid}",
                                  headers={"accept": "application/x-ndjson"})
        no_peer = await http.get(f"/routing/v1/peers/{peer_id()}")
        bad_cid = await http.get("/routing/v1/providers/not-a-cid")
        # A CIDv1, but of dag-pb, not of a libp2p-key.
        bad_peer = await http.get(f"/routing/v1/peers/{parse_cid(cid).set(version=1)}")
        bad_name = await http.get("/routing/v1/ipns/whatever")  # not an IPNS name
        unknown = await http.get("/routing/v1/nothing-here/whatever")
    assert empty.status_code == 200 and empty.json() == {"Providers": []}
    assert empty.headers["cache-control"] == "public, max-age=15"
    assert empty_nd.status_code == 200 and empty_nd.content == b""
    assert no_peer.status_code == 200 and no_peer.json() == {"Peers": []}
    assert bad_cid.status_code == 400
    assert bad_peer.status_code == 400
    assert bad_name.status_code == 400
    assert unknown.status_code == 404


async def test_without_a_lookup_the_endpoints_answer_501(gateway: Gateway,
                                                         backend: HFCacheBackend) -> None:
    cid = backend.add_bytes(b"x")
    async with serving(gateway) as http:
        response = await http.get(f"/routing/v1/providers/{cid}")
    assert response.status_code == 501
