"""/ipns/ on our gateway: DNSLink names from a DNS server on 127.0.0.1 and keys through a
recorded NameSystem, served as the /ipfs/ path they point at."""

from __future__ import annotations

from pathlib import Path

import pytest

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.retrieval.dnslink import DnsLinkResolver, DnsTxtLookup
from ipfs_mcp.server.gateway import BlockstoreSource, Gateway
from ipfs_mcp.server.gateway.ipns_paths import IPNS_RECORD
from ipfs_mcp.tools.names import NameResolver
from tests.gateway.conftest import serving
from tests.retrieval import dns_server
from tests.retrieval.dns_server import DnsZone
from tests.tools.recorded_names import RecordedRecords

pytestmark = pytest.mark.anyio
dns_zone = dns_server.dns_zone  # the fixture, used by name


def _site(backend: HFCacheBackend, tmp_path: Path) -> str:
    site = tmp_path / "site"
    (site / "v2").mkdir(parents=True)
    (site / "v2" / "model.txt").write_text("weights v2\n")
    return cid_str(backend.add_path(site).root)


def _gateway(backend: HFCacheBackend, address: str, names: RecordedRecords | None) -> Gateway:
    resolver = NameResolver(names, DnsLinkResolver(DnsTxtLookup({".": address}, timeout=5)))
    return Gateway(BlockstoreSource(backend.repo.blocks), names=resolver)


async def test_a_dnslink_name_serves_the_content_it_points_at(
        backend: HFCacheBackend, tmp_path: Path, dns_zone: tuple[DnsZone, str]) -> None:
    served, address = dns_zone
    root = _site(backend, tmp_path)
    served.link("_dnslink.models.example.org", f"dnslink=/ipfs/{root}/v2")
    async with serving(_gateway(backend, address, None)) as http:
        page = await http.get("/ipns/models.example.org/model.txt")
        missing = await http.get("/ipns/nothing.example.org/model.txt")
        key = await http.get("/ipns/k51qzi5uqu5dlvj2baxnqndepeb86cbk3ng7n3i46uzyxzyqj2xjonzllnv0v8")
    assert page.status_code == 200 and page.text == "weights v2\n"
    assert missing.status_code == 404
    assert key.status_code == 501  # no NameSystem here: said, not guessed
    assert address not in missing.text and "dns" not in missing.text.lower()


async def test_a_key_serves_its_latest_record_with_a_recorded_name_system(
        backend: HFCacheBackend, tmp_path: Path, dns_zone: tuple[DnsZone, str]) -> None:
    _, address = dns_zone
    root = _site(backend, tmp_path)
    names = RecordedRecords()
    key = names.key_names["self"]
    async with serving(_gateway(backend, address, names)) as http:
        before = await http.get(f"{key}/v2/model.txt")
        await names.publish(f"/ipfs/{root}")
        after = await http.get(f"{key}/v2/model.txt")
        record = await http.get(key, params={"format": "ipns-record"})
        by_accept = await http.get(key, headers={"accept": IPNS_RECORD})
        with_path = await http.get(f"{key}/v2", params={"format": "ipns-record"})
    assert before.status_code == 404
    assert after.status_code == 200 and after.text == "weights v2\n"
    assert record.status_code == 200 and record.headers["content-type"] == IPNS_RECORD
    assert record.content == by_accept.content == f"/ipfs/{root}@0".encode()
    assert with_path.status_code == 400


async def test_a_dnslink_loop_is_a_bad_request_not_a_hang(
        backend: HFCacheBackend, dns_zone: tuple[DnsZone, str]) -> None:
    served, address = dns_zone
    served.link("_dnslink.a.example.org", "dnslink=/ipns/b.example.org")
    served.link("_dnslink.b.example.org", "dnslink=/ipns/a.example.org")
    async with serving(_gateway(backend, address, None)) as http:
        looped = await http.get("/ipns/a.example.org/")
    assert looped.status_code == 400


class _Holding:
    """A node slot holding one running node, as the server's slot does once it started."""

    def __init__(self, node: object) -> None:
        self.node = node

    async def wait(self, timeout: float = 0) -> object:
        return self.node


async def test_our_node_publishes_and_another_nodes_gateway_serves_the_name_and_its_record(
        backend: HFCacheBackend, tmp_path: Path, dns_zone: tuple[DnsZone, str]) -> None:
    """End to end with our node's NameSystem: A publishes through the DHT; the gateway of B
    resolves the name to the content and hands out A's signed record, which validates."""
    from ipfs_mcp.backends.core import ipns
    from ipfs_mcp.p2p.names import NodeNames
    from ipfs_mcp.server.node_names import SlotNames
    from tests.p2p.nodes import node_at

    _, address = dns_zone
    root = _site(backend, tmp_path)
    async with node_at(tmp_path / "a") as a, node_at(tmp_path / "b") as b:
        await b.connect_peer(a.addrs[0])
        await a.wait_for_peer(b.peer_id)
        names_a = NodeNames.for_host(a.host, a.routing.dht, tmp_path / "a")  # type: ignore[attr-defined]
        published = await names_a.publish(f"/ipfs/{root}/v2")
        names_b = SlotNames(_Holding(b), tmp_path / "b")  # type: ignore[arg-type]
        resolver = NameResolver(names_b, DnsLinkResolver(DnsTxtLookup({".": address})))
        gateway = Gateway(BlockstoreSource(backend.repo.blocks), names=resolver)
        async with serving(gateway) as http:
            page = await http.get(f"{published.name}/model.txt")
            record = await http.get(published.name, params={"format": "ipns-record"})
    assert page.status_code == 200 and page.text == "weights v2\n"
    assert record.status_code == 200
    assert ipns.validate_record(published.name, record.content).value == f"/ipfs/{root}/v2"
