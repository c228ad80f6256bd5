"""The subdomain gateway over real HTTP: ``localhost`` paths redirected to one origin per
CID (CIDv1 base32, 63-character labels, the scheme behind a proxy), ``{cid}.ipfs.localhost``
served from its root with links that stay there, other hosts left a path gateway."""

from __future__ import annotations

from pathlib import Path

import pytest
from multiformats import CID, multihash

from ipfs_mcp.backends.core.cids import cid_str, parse_cid
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.server.gateway import Gateway

from .conftest import serving

pytestmark = pytest.mark.anyio

PEER = "12D3KooWLQzUv2FHWGVPXTXSZpdHs7oHbXub2G5WC8Tx4NQhyd2d"
PEER_LABEL = "k51qzi5uqu5dk3v4rmjber23h16xnr23bsggmqqil9z2gduiis5se8dht36dam"


def _port(http: object) -> str:
    return str(http.base_url.port)  # type: ignore[attr-defined]


async def test_localhost_paths_redirect_to_one_origin_per_cid(
        gateway: Gateway, backend: HFCacheBackend) -> None:
    v0 = backend.add_bytes(b"hello")  # a CIDv0 (Qm...)
    v1 = parse_cid(v0)
    v1_label = CID("base32", 1, "dag-pb", v1.digest).encode("base32")
    too_long = CID("base32", 1, "raw", multihash.digest(b"x", "sha2-512")).encode("base32")
    async with serving(gateway) as http:
        host = f"localhost:{_port(http)}"
        moved = await http.get(f"/ipfs/{v0}/a%20b?x=1", headers={"host": host})
        tls = await http.get(f"/ipfs/{v0}", headers={"host": "proxy.example",
                                                      "x-forwarded-host": host,
                                                      "x-forwarded-proto": "https"})
        bad = await http.get("/ipfs/QmInvalidCID", headers={"host": host})
        long = await http.get(f"/ipfs/{too_long}/", headers={"host": host})
        key = await http.get(f"/ipns/{PEER}/", headers={"host": host})
        dnslink = await http.get("/ipns/my-site.example.org/wiki/", headers={"host": host})
        handler = await http.get(f"/ipfs/?uri=ipfs%3A%2F%2F{v0}%2Fa", headers={"host": host})
        elsewhere = await http.get(f"/ipfs/{v0}", headers={"host": "other.example"})
    assert moved.status_code == 301
    assert moved.headers["location"] == f"http://{v1_label}.ipfs.{host}/a%20b?x=1"
    assert tls.headers["location"] == f"https://{v1_label}.ipfs.{host}/"
    assert bad.status_code == 400 and 'invalid path "/ipfs/QmInvalidCID"' in bad.text
    assert long.status_code == 400 and "DNS label length limit of 63" in long.text
    assert key.headers["location"] == f"http://{PEER_LABEL}.ipns.{host}/"
    assert dnslink.headers["location"] == f"http://my--site-example-org.ipns.{host}/wiki/"
    assert handler.status_code == 301 and handler.headers["location"] == f"/ipfs/{v0}/a"
    assert elsewhere.status_code == 200 and elsewhere.content == b"hello"


async def test_a_cid_subdomain_is_served_from_its_root(
        gateway: Gateway, backend: HFCacheBackend, tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "ą").mkdir(parents=True)
    (site / "ą" / "file.txt").write_bytes(b"inside")
    (site / "ipfs").mkdir()
    (site / "ipfs" / "x.txt").write_bytes(b"a folder named ipfs")
    root = backend.add_path(site).root
    label = CID("base32", 1, "dag-pb", root.digest).encode("base32")
    base36 = CID("base36", 1, "dag-pb", root.digest).encode("base36")
    async with serving(gateway) as http:
        gw = f"localhost:{_port(http)}"
        host = {"host": f"{label}.ipfs.{gw}"}
        file = await http.get("/%C4%85/file.txt", headers=host)
        named_ipfs = await http.get("/ipfs/x.txt", headers=host)
        no_slash = await http.get("/%C4%85", headers=host)
        listing = await http.get("/%C4%85/", headers=host)
        top = await http.get("/", headers=host)
        other_base = await http.get("/%C4%85/", headers={"host": f"{base36}.ipfs.{gw}"})
        not_a_cid = await http.get("/", headers={"host": f"nope.ipfs.{gw}"})
    assert file.status_code == 200 and file.content == b"inside"
    assert named_ipfs.content == b"a folder named ipfs"
    assert no_slash.status_code == 301 and no_slash.headers["location"] == "/%C4%85/"
    page = listing.text
    assert '<a href="/%C4%85/file.txt">file.txt</a>' in page
    assert '<a href="/%C4%85/..">..</a>' in page
    assert f'<a href="//{gw}/ipfs/{label}">{label}</a>' in page
    file_cid = cid_str(backend.exporter().resolve(root, "ą/file.txt"))
    assert f'href="//{gw}/ipfs/{file_cid}?filename=file.txt"' in page
    assert top.status_code == 200 and '<a href="/">..</a>' not in top.text
    assert other_base.status_code == 301
    assert other_base.headers["location"] == f"http://{label}.ipfs.{gw}/%C4%85/"
    assert not_a_cid.status_code == 400
