"""Names on our gateway as Kubo serves them: a host whose DNSLink resolves is served as
that website (a directory redirected below the site, not the /ipfs/ path), a host without
one as the path gateway; a key written as a base58 peer id is redirected to its k51… form;
a key's record is an attachment cached for its own TTL. Records come from the repo's
record store (``routing put``), with no node."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from multiformats import multibase

from ipfs_mcp.backends.core import ipns
from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.core.ipns_store import RecordStore
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.server.gateway import BlockstoreSource, Gateway
from ipfs_mcp.tools.names import name_resolver
from tests.gateway.conftest import serving
from tests.retrieval import dns_server
from tests.retrieval.dns_server import DnsZone

pytestmark = pytest.mark.anyio
dns_zone = dns_server.dns_zone  # the fixture, used by name


async def test_a_dnslink_host_is_served_as_its_website_and_keys_are_canonical(
        backend: HFCacheBackend, tmp_path: Path, dns_zone: tuple[DnsZone, str]) -> None:
    _, address = dns_zone  # an empty zone: a host without DNSLink is asked there, and has none
    site = tmp_path / "site"
    (site / "docs").mkdir(parents=True)
    (site / "docs" / "a.txt").write_text("page a\n")
    root = cid_str(backend.add_path(site).root)
    key = Ed25519PrivateKey.generate()
    record = ipns.make_record(key, f"/ipfs/{root}", sequence=0, lifetime_seconds=3600,
                              ttl_seconds=1800)
    RecordStore(tmp_path / "repo").put(record.name, record.raw)
    peer_id = multibase.encode(ipns.key_multihash(key.public_key()), "base58btc")[1:]
    names = name_resolver(None, [(".", address)], repo_path=tmp_path / "repo",
                          ns_map=[("site.example.org", f"/ipfs/{root}")])
    gateway = Gateway(BlockstoreSource(backend.repo.blocks), names=names)
    async with serving(gateway) as http:
        page = await http.get("/docs/a.txt", headers={"host": "site.example.org"})
        below = await http.get("/docs", headers={"host": "site.example.org"})
        plain = await http.get(f"/ipfs/{root}/docs/a.txt", headers={"host": "no.example.org"})
        by_key = await http.get(f"{record.name}/docs/a.txt")
        b58 = await http.get(f"/ipns/{peer_id}/docs/")
        signed = await http.get(record.name, params={"format": "ipns-record"})
    assert page.status_code == 200 and page.text == "page a\n"
    assert below.status_code == 301 and below.headers["location"] == "/docs/"
    assert plain.status_code == 200 and plain.text == "page a\n"
    assert by_key.status_code == 200 and by_key.text == "page a\n"
    assert b58.status_code == 302 and b58.headers["location"] == f"{record.name}/docs/"
    assert signed.content == record.raw
    assert signed.headers["cache-control"] == "public, max-age=1800"
    assert signed.headers["content-disposition"] == (
        f'attachment; filename="{record.name.removeprefix("/ipns/")}.ipns-record"')
