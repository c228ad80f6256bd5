"""DNSLink resolved through dnspython against a real DNS server on 127.0.0.1."""

from __future__ import annotations

import anyio
import pytest

from ipfs_mcp.backends.errors import InvalidInput, NameNotFound, Timeout
from ipfs_mcp.backends.retrieval.dnslink import (
    MAX_RECORDS,
    DnsLinkResolver,
    DnsTxtLookup,
    dnslink_value,
    parse_resolvers,
)
from tests.retrieval.dns_server import DnsZone, dns_server

pytestmark = pytest.mark.anyio

CID = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
OTHER = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"


class Clock:
    """A clock the test moves by hand, so TTLs are tested without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _resolver(address: str, clock: Clock | None = None) -> DnsLinkResolver:
    lookup = DnsTxtLookup({".": address}, timeout=5)
    return DnsLinkResolver(lookup, clock=clock or Clock())


async def test_dnslink_subdomain_is_read_first() -> None:
    zone = DnsZone()
    zone.link("_dnslink.example.org", f"dnslink=/ipfs/{CID}/docs")
    zone.link("example.org", f"dnslink=/ipfs/{OTHER}")
    with dns_server(zone) as address:
        with anyio.fail_after(20):
            link = await _resolver(address).resolve("Example.ORG.")
    assert link.value == f"/ipfs/{CID}/docs"
    assert link.record_name == "_dnslink.example.org"
    assert zone.asked["example.org"] == 0


async def test_the_domain_itself_when_its_dnslink_subdomain_has_none() -> None:
    zone = DnsZone()
    zone.link("_dnslink.example.org", "v=spf1 -all")  # a TXT record, not a DNSLink
    zone.link("example.org", "google-site-verification=x", f"dnslink=/ipns/{CID}")
    with dns_server(zone) as address:
        with anyio.fail_after(20):
            link = await _resolver(address).resolve("example.org")
    assert link.value == f"/ipns/{CID}"
    assert link.record_name == "example.org"


async def test_of_several_records_the_lexicographically_first_valid_one() -> None:
    zone = DnsZone()
    zone.link("_dnslink.example.org", f"dnslink=/ipfs/{OTHER}", "dnslink=/foo/bar",
              f"dnslink=/ipfs/{CID}", "dnslink=")
    with dns_server(zone) as address:
        with anyio.fail_after(20):
            link = await _resolver(address).resolve("example.org")
    assert link.value == f"/ipfs/{min(CID, OTHER)}"


async def test_no_dnslink_anywhere_is_name_not_found() -> None:
    zone = DnsZone()
    zone.link("example.org", "v=spf1 -all")
    with dns_server(zone) as address:
        with anyio.fail_after(20), pytest.raises(NameNotFound, match="example.org"):
            await _resolver(address).resolve("example.org")


async def test_answers_are_cached_for_their_ttl_and_asked_again_after() -> None:
    zone = DnsZone(ttl=60)
    zone.link("_dnslink.example.org", f"dnslink=/ipfs/{CID}")
    clock = Clock()
    with dns_server(zone) as address:
        resolver = _resolver(address, clock)
        with anyio.fail_after(20):
            first = await resolver.resolve("example.org")
            zone.link("_dnslink.example.org", f"dnslink=/ipfs/{OTHER}")
            clock.now += 59
            cached = await resolver.resolve("example.org")
            assert zone.asked["_dnslink.example.org"] == 1
            clock.now += 2
            fresh = await resolver.resolve("example.org")
    assert first.ttl_seconds == 60
    assert (first.value, cached.value, fresh.value) == (f"/ipfs/{CID}", f"/ipfs/{CID}",
                                                        f"/ipfs/{OTHER}")
    assert zone.asked["_dnslink.example.org"] == 2


async def test_the_cache_is_bounded_in_entries() -> None:
    zone = DnsZone()
    for n in range(5):
        zone.link(f"_dnslink.d{n}.example.org", f"dnslink=/ipfs/{CID}")
    with dns_server(zone) as address:
        resolver = DnsLinkResolver(DnsTxtLookup({".": address}, timeout=5), clock=Clock(),
                                   cache_entries=3)
        with anyio.fail_after(20):
            for n in range(5):
                await resolver.resolve(f"d{n}.example.org")
            await resolver.resolve("d0.example.org")  # evicted: asked again
            await resolver.resolve("d4.example.org")  # still cached
    assert zone.asked["_dnslink.d0.example.org"] == 2
    assert zone.asked["_dnslink.d4.example.org"] == 1


async def test_a_hostile_zone_with_many_large_records_is_read_only_within_bounds() -> None:
    zone = DnsZone()
    # Many records, one of them long: only MAX_RECORDS are read and the long one dropped.
    records = [f"filler-{n:03d}" for n in range(MAX_RECORDS * 4)]
    zone.txt["_dnslink.example.org"] = [["x" * 250] * 12] + [[r] for r in records]
    with dns_server(zone) as address:
        lookup = DnsTxtLookup({".": address}, timeout=5)
        with anyio.fail_after(20):
            answer = await lookup.txt("_dnslink.example.org")
    assert len(answer.records) <= MAX_RECORDS
    assert all(len(record) <= 2048 for record in answer.records)


async def test_a_silent_resolver_is_a_timeout_not_a_miss() -> None:
    zone = DnsZone(silent=True)
    with dns_server(zone) as address:
        resolver = DnsLinkResolver(DnsTxtLookup({".": address}, timeout=0.5), clock=Clock())
        with anyio.fail_after(20), pytest.raises(Timeout):
            await resolver.resolve("example.org")
    assert zone.asked["_dnslink.example.org"] >= 1


async def test_a_configured_suffix_resolver_wins_over_the_default() -> None:
    near, far = DnsZone(), DnsZone()
    near.link("_dnslink.app.eth", f"dnslink=/ipfs/{CID}")
    with dns_server(near) as near_address, dns_server(far) as far_address:
        lookup = DnsTxtLookup({"eth.": near_address, ".": far_address}, timeout=5)
        with anyio.fail_after(20):
            link = await DnsLinkResolver(lookup, clock=Clock()).resolve("app.eth")
    assert link.value == f"/ipfs/{CID}"
    assert sum(far.asked.values()) == 0


@pytest.mark.parametrize("domain", ["", "example", "a/b.org", "ex ample.org", "x" * 300 + ".org"])
async def test_what_is_not_a_domain_is_refused_before_any_lookup(domain: str) -> None:
    zone = DnsZone()
    with dns_server(zone) as address, pytest.raises(InvalidInput):
        await _resolver(address).resolve(domain)
    assert sum(zone.asked.values()) == 0


def test_dnslink_value_ignores_other_records_and_namespaces() -> None:
    assert dnslink_value(("hello", "dnslink=/ipfs/", "dnslink=/x/y")) is None
    assert dnslink_value((f"dnslink= /ipfs/{CID} ",)) == f"/ipfs/{CID}"


def test_resolvers_are_written_as_kubo_maps_them() -> None:
    assert parse_resolvers("eth.=https://r.example/dns-query, .=127.0.0.1:5353") == {
        "eth.": "https://r.example/dns-query", ".": "127.0.0.1:5353"}
    assert parse_resolvers("") == {}
    for bad in ("127.0.0.1", ".=http://r.example/dns-query", "eth.="):
        with pytest.raises(InvalidInput):
            parse_resolvers(bad)
