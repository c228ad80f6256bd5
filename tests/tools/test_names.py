"""The name tools' resolving and publishing, over DNSLink from a DNS server on 127.0.0.1 and
a recorded NameSystem (the node's own is tested with the node)."""

from __future__ import annotations

import anyio
import pytest

from ipfs_mcp.backends.errors import InvalidInput, NameNotFound, Unsupported
from ipfs_mcp.backends.names import NameSystem
from ipfs_mcp.backends.retrieval.dnslink import DnsLinkResolver, DnsTxtLookup
from ipfs_mcp.tools.names import MAX_DEPTH, NameResolver, Replacing, publish, publish_value
from tests.retrieval.dns_server import DnsZone, dns_server
from tests.tools.recorded_names import RecordedNameSystem

pytestmark = pytest.mark.anyio

CID = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
OTHER = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"


def _resolver(address: str, names: RecordedNameSystem | None) -> NameResolver:
    return NameResolver(names, DnsLinkResolver(DnsTxtLookup({".": address}, timeout=5)))


def test_the_recorded_name_system_is_a_name_system() -> None:
    assert isinstance(RecordedNameSystem(), NameSystem)


async def test_dnslink_to_ipns_to_ipfs_keeps_each_path_with_a_recorded_name_system() -> None:
    names = RecordedNameSystem()
    key = names.key_names["self"]
    await names.publish(f"/ipfs/{CID}/models")
    zone = DnsZone(ttl=120)
    zone.link("_dnslink.example.org", f"dnslink={key}/bert")
    with dns_server(zone) as address:
        with anyio.fail_after(20):
            resolved = await _resolver(address, names).resolve_path("/ipns/example.org/v1/a.bin")
            one = await _resolver(address, names).resolve_path("example.org/v1", recursive=False)
    assert resolved.path == f"/ipfs/{CID}/models/bert/v1/a.bin"
    assert resolved.steps == ("/ipns/example.org", key)
    assert resolved.ttl_seconds == 120 and resolved.source == "local"
    assert one.path == f"{key}/bert/v1"


async def test_a_dnslink_loop_is_refused() -> None:
    zone = DnsZone()
    zone.link("_dnslink.a.example.org", "dnslink=/ipns/b.example.org")
    zone.link("_dnslink.b.example.org", "dnslink=/ipns/A.example.org/x")
    with dns_server(zone) as address:
        with anyio.fail_after(20), pytest.raises(InvalidInput, match="loops"):
            await _resolver(address, None).resolve_path("a.example.org")
    assert zone.asked["_dnslink.a.example.org"] == 1


async def test_a_chain_deeper_than_kubo_allows_is_refused_after_max_depth_lookups() -> None:
    zone = DnsZone()
    for n in range(MAX_DEPTH + 5):
        zone.link(f"_dnslink.d{n}.example.org", f"dnslink=/ipns/d{n + 1}.example.org")
    with dns_server(zone) as address:
        with anyio.fail_after(30), pytest.raises(InvalidInput, match="deep"):
            await _resolver(address, None).resolve_path("/ipns/d0.example.org")
    assert sum(1 for n in zone.asked if n.startswith("_dnslink.")) == MAX_DEPTH


async def test_an_ipns_key_without_a_node_says_why_and_dnslink_still_resolves() -> None:
    zone = DnsZone()
    zone.link("_dnslink.example.org", f"dnslink=/ipfs/{CID}")
    with dns_server(zone) as address:
        resolver = NameResolver(None, DnsLinkResolver(DnsTxtLookup({".": address})),
                                why="the node is off (--offline)")
        with anyio.fail_after(20):
            assert (await resolver.resolve_path("example.org")).path == f"/ipfs/{CID}"
            with pytest.raises(Unsupported, match="offline"):
                await resolver.resolve_path("/ipns/k51qzi5uqu5dlvj2baxnqndepeb86cbk3ng7n3i46uzyxzyqj2xjonzllnv0v8")


async def test_an_unknown_key_name_is_name_not_found_with_a_recorded_name_system() -> None:
    with dns_server(DnsZone()) as address, anyio.fail_after(20), pytest.raises(NameNotFound):
        await _resolver(address, RecordedNameSystem()).resolve_path(
            "/ipns/k51qzi5uqu5dlvj2baxnqndepeb86cbk3ng7n3i46uzyxzyqj2xjonzllnv0v8")


@pytest.mark.parametrize("bad", ["", "/ipns/", "/ipns/a.org/../x", "/ipfs/notacid",
                                 "/ipns/a.org//x", "x" * 5000])
def test_malformed_values_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        publish_value(bad)


def test_a_bare_cid_is_published_as_an_ipfs_path() -> None:
    assert publish_value(CID) == f"/ipfs/{CID}"
    assert publish_value(f"ipfs://{CID}/a") == f"/ipfs/{CID}/a"


async def test_publish_after_our_own_publish_needs_no_confirmation_with_a_recorded_name_system(
) -> None:
    names = RecordedNameSystem()
    asked: list[Replacing] = []

    async def confirm(replacing: Replacing) -> bool:
        asked.append(replacing)
        return False

    first = await publish(names, CID, confirm=confirm)
    second = await publish(names, OTHER, confirm=confirm)
    assert asked == []
    assert first.record is not None and second.record is not None
    assert (first.record.sequence, second.record.sequence) == (0, 1)


async def test_a_newer_network_record_asks_and_a_no_changes_nothing_with_a_recorded_name_system(
) -> None:
    names = RecordedNameSystem()
    await publish(names, CID)
    key = names.key_names["self"]
    names.plant(key, f"/ipfs/{OTHER}", sequence=7)  # the key used on another machine
    answers = iter([False, True])
    asked: list[Replacing] = []

    async def confirm(replacing: Replacing) -> bool:
        asked.append(replacing)
        return next(answers)

    declined = await publish(names, CID, confirm=confirm)
    assert declined.record is None
    assert (await names.resolve(key)).value == f"/ipfs/{OTHER}"
    assert names.publishes == 1
    accepted = await publish(names, CID, confirm=confirm)
    assert accepted.record is not None and accepted.record.sequence == 8
    assert [a.network_sequence for a in asked] == [7, 7]
    assert asked[0].last_published_sequence == 0


async def test_publish_refuses_unknown_keys_and_odd_lifetimes_before_publishing() -> None:
    names = RecordedNameSystem()
    with pytest.raises(InvalidInput, match="no key named"):
        await publish(names, CID, key="nope")
    with pytest.raises(InvalidInput, match="lifetime"):
        await publish(names, CID, lifetime_seconds=1)
    with pytest.raises(InvalidInput, match="ttl"):
        await publish(names, CID, ttl_seconds=-1)
    assert names.publishes == 0
