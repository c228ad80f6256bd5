"""UnixFS path gateway over real HTTP: files with their Content-Type, Range, folders
(redirect, listing, index.html), filename/download, CORS, methods, bounds."""

from __future__ import annotations

import random
from pathlib import Path

import anyio
import pytest

from ipfs_mcp.backends.core.cids import cid_str, parse_cid
from ipfs_mcp.backends.core.importer import ImportOptions
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.server.gateway import BlockstoreSource, Gateway, GatewayLimits

from .conftest import cut_short, serving

pytestmark = pytest.mark.anyio

PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)
TEXT = b"The quick brown fox jumps over the lazy dog.\n"


def folder(backend: HFCacheBackend, tmp_path: Path, files: dict[str, bytes],
           options: ImportOptions | None = None) -> str:
    root = tmp_path / "site"
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return cid_str(backend.add_path(root, options=options).root)


async def test_files_get_a_content_type_by_name_then_by_sniffing(
        gateway: Gateway, backend: HFCacheBackend, tmp_path: Path) -> None:
    root = folder(backend, tmp_path, {"notes.txt": TEXT, "picture": PNG, "page.html": b"<p>",
                                      "blob": bytes(range(32)) * 8, "style.css": b"p{}"})
    async with serving(gateway) as http:
        types = {name: (await http.get(f"/ipfs/{root}/{name}")).headers["content-type"]
                 for name in ("notes.txt", "picture", "page.html", "blob", "style.css")}
        bare = await http.get(f"/ipfs/{backend.add_bytes(PNG)}")
        text = await http.get(f"/ipfs/{root}/notes.txt")
    assert types == {"notes.txt": "text/plain; charset=utf-8", "picture": "image/png",
                     "page.html": "text/html; charset=utf-8",
                     "blob": "application/octet-stream", "style.css": "text/css; charset=utf-8"}
    assert bare.headers["content-type"] == "image/png" and bare.content == PNG
    assert text.content == TEXT
    h = text.headers
    assert h["content-length"] == str(len(TEXT))
    assert h["accept-ranges"] == "bytes"
    assert h["cache-control"] == "public, max-age=29030400, immutable"
    assert h["etag"] == f'"{cid_str(backend.exporter().resolve(parse_cid(root), "notes.txt"))}"'
    assert h["x-ipfs-path"] == f"/ipfs/{root}/notes.txt"
    assert h["x-ipfs-roots"].split(",")[0] == root


async def test_range_requests(gateway: Gateway, backend: HFCacheBackend) -> None:
    data = random.Random(3).randbytes(300_000)  # two chunks of the default size
    cid = backend.add_bytes(data)
    async with serving(gateway) as http:
        single = await http.get(f"/ipfs/{cid}", headers={"range": "bytes=262140-262150"})
        suffix = await http.get(f"/ipfs/{cid}", headers={"range": "bytes=-10"})
        open_end = await http.get(f"/ipfs/{cid}", headers={"range": "bytes=299990-"})
        multi = await http.get(f"/ipfs/{cid}", headers={"range": "bytes=5-9,100-200"})
        beyond = await http.get(f"/ipfs/{cid}", headers={"range": "bytes=400000-"})
        head = await http.head(f"/ipfs/{cid}", headers={"range": "bytes=0-99"})
        too_many = await http.get(f"/ipfs/{cid}",
                                  headers={"range": "bytes=" + ",".join(["0-1"] * 17)})
        whole = await http.get(f"/ipfs/{cid}")
    assert single.status_code == 206
    assert single.content == data[262140:262151]
    assert single.headers["content-range"] == "bytes 262140-262150/300000"
    assert single.headers["content-length"] == "11"
    assert suffix.content == data[-10:]
    assert suffix.headers["content-range"] == "bytes 299990-299999/300000"
    assert open_end.content == data[299990:]
    assert multi.status_code == 206 and multi.content == data[5:10]  # the first range only
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == "bytes */300000"
    assert head.status_code == 206 and head.content == b""
    assert head.headers["content-length"] == "100"
    assert too_many.status_code == 400
    assert whole.status_code == 200 and whole.content == data


async def test_folders_redirect_list_and_serve_index_html(
        gateway: Gateway, backend: HFCacheBackend, tmp_path: Path) -> None:
    root = folder(backend, tmp_path, {"docs/a <b>.txt": b"a", "docs/ą.txt": b"b",
                                      "site/index.html": b"<h1>home</h1>",
                                      "site/other.txt": b"o"})
    async with serving(gateway) as http:
        redirect = await http.get(f"/ipfs/{root}/docs")
        listing = await http.get(f"/ipfs/{root}/docs/")
        index = await http.get(f"/ipfs/{root}/site/")
        cached = await http.get(f"/ipfs/{root}/docs/",
                                headers={"if-none-match": listing.headers["etag"]})
    assert redirect.status_code == 301
    assert redirect.headers["location"] == f"/ipfs/{root}/docs/"
    assert listing.status_code == 200
    assert listing.headers["content-type"] == "text/html; charset=utf-8"
    assert listing.headers["etag"].startswith('"DirIndex-')
    page = listing.text
    assert "Index of" in page
    assert f'<a href="/ipfs/{root}/docs/a%20%3Cb%3E.txt">a &lt;b&gt;.txt</a>' in page
    assert "<b>" not in page  # names are escaped, never markup
    assert f'<a href="/ipfs/{root}/docs/%C4%85.txt">ą.txt</a>' in page
    assert f'<a href="/ipfs/{root}/docs/..">..</a>' in page
    assert index.status_code == 200 and index.content == b"<h1>home</h1>"
    assert index.headers["content-type"] == "text/html; charset=utf-8"
    site = backend.exporter().resolve(parse_cid(root), "site")
    assert index.headers["etag"] == f'"{cid_str(site)}"'
    assert cached.status_code == 304


async def test_filename_and_download(gateway: Gateway, backend: HFCacheBackend) -> None:
    cid = backend.add_bytes(TEXT)
    async with serving(gateway) as http:
        inline = await http.get(f"/ipfs/{cid}?filename=report.txt")
        download = await http.get(f"/ipfs/{cid}?filename=résumé.txt&download=true")
        plain = await http.get(f"/ipfs/{cid}")
    assert inline.headers["content-disposition"] == 'inline; filename="report.txt"'
    assert inline.headers["content-type"] == "text/plain; charset=utf-8"
    assert download.headers["content-disposition"] == (
        "attachment; filename=\"r_sum_.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9.txt")
    assert "content-disposition" not in plain.headers


async def test_paths_through_a_hamt_sharded_folder(gateway: Gateway, backend: HFCacheBackend,
                                                   tmp_path: Path) -> None:
    files = {f"entry-{n:04d}.txt": f"entry {n}\n".encode() for n in range(700)}
    root = folder(backend, tmp_path, files, ImportOptions(cid_version=1, shard_threshold=2048))
    async with serving(gateway) as http:
        found = [await http.get(f"/ipfs/{root}/entry-{n:04d}.txt") for n in (0, 351, 699)]
        missing = await http.get(f"/ipfs/{root}/entry-9999.txt")
        listing = await http.get(f"/ipfs/{root}/")
    assert [r.content for r in found] == [b"entry 0\n", b"entry 351\n", b"entry 699\n"]
    assert missing.status_code == 404
    assert listing.status_code == 200
    assert listing.text.count('class="ipfs-hash"') == 700


async def test_cors_methods_and_unsafe_paths(gateway: Gateway, backend: HFCacheBackend) -> None:
    cid = backend.add_bytes(TEXT)
    async with serving(gateway) as http:
        options = await http.options(f"/ipfs/{cid}")
        post = await http.post(f"/ipfs/{cid}", content=b"x")
        dotdot = await http.get(f"/ipfs/{cid}/%2E%2E/etc")
        ipns = await http.get("/ipns/example.com")
        elsewhere = await http.get("/api/v0/cat")
    assert options.status_code == 200
    h = options.headers
    assert h["access-control-allow-origin"] == "*"
    assert set(h["access-control-allow-methods"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
    for name in ("Content-Type", "Range", "User-Agent", "X-Requested-With"):
        assert name in h["access-control-allow-headers"]
    for name in ("Content-Range", "Content-Length", "X-Ipfs-Path", "X-Ipfs-Roots",
                 "X-Chunked-Output", "X-Stream-Output"):
        assert name in h["access-control-expose-headers"]
    assert post.status_code == 405 and post.headers["allow"] == "GET, HEAD, OPTIONS"
    assert dotdot.status_code == 400
    assert ipns.status_code == 501
    assert elsewhere.status_code == 404


async def test_non_recursive_by_default_and_recursive_fetches_are_bounded(
        backend: HFCacheBackend, tmp_path: Path) -> None:
    """Content only another repo holds is a 404 unless a remote source is handed in; then
    it is served, within the per-request byte bound."""
    elsewhere = HFCacheBackend(Repo(tmp_path / "elsewhere", fsync=False))
    data = random.Random(5).randbytes(600_000)
    cid = elsewhere.add_bytes(data)
    local_only = Gateway(BlockstoreSource(backend.repo.blocks))
    recursive = Gateway(BlockstoreSource(backend.repo.blocks),
                        remote=BlockstoreSource(elsewhere.repo.blocks))
    bounded = Gateway(BlockstoreSource(backend.repo.blocks),
                      remote=BlockstoreSource(elsewhere.repo.blocks),
                      limits=GatewayLimits(max_fetch_bytes=300_000))
    async with serving(local_only) as http:
        assert (await http.get(f"/ipfs/{cid}")).status_code == 404
        assert (await http.get(f"/ipfs/{cid}?format=car")).status_code == 404
    async with serving(recursive) as http:
        fetched = await http.get(f"/ipfs/{cid}")
    assert fetched.status_code == 200 and fetched.content == data
    async with serving(bounded) as http:
        # A name, so no sniffing: the first leaf (262144 bytes) fits the bound, the second
        # would not, so the download stops after the first.
        received = await cut_short(http, f"/ipfs/{cid}?filename=data.bin")
    assert received == data[:262144]


async def test_requests_in_flight_are_bounded(backend: HFCacheBackend) -> None:
    """With one slot, a second request while a large download is unread gets 429."""
    data = random.Random(7).randbytes(48 * 1024 * 1024)
    cid = backend.add_bytes(data)
    gateway = Gateway(BlockstoreSource(backend.repo.blocks),
                      limits=GatewayLimits(max_in_flight=1))
    async with serving(gateway) as http:
        async with http.stream("GET", f"/ipfs/{cid}") as slow:
            assert slow.status_code == 200  # headers sent: the handler holds the slot
            second = await http.get(f"/ipfs/{cid}?format=raw")
            assert second.status_code == 429
            assert second.headers["retry-after"] == "1"
        with anyio.fail_after(30):
            while (third := await http.get(f"/ipfs/{cid}?format=raw")).status_code == 429:
                await anyio.sleep(0.05)  # the aborted download releases its slot shortly
        assert third.status_code == 200


async def test_no_header_injection_through_the_path(gateway: Gateway,
                                                    backend: HFCacheBackend) -> None:
    cid = backend.add_bytes(TEXT)
    async with serving(gateway) as http:
        response = await http.get(f"/ipfs/{cid}/a%0D%0AX-Injected:%20yes")
    assert response.status_code == 404
    assert "x-injected" not in response.headers
    assert response.headers["x-ipfs-path"] == f"/ipfs/{cid}/a%0D%0AX-Injected: yes"


async def test_folder_listings_are_bounded(backend: HFCacheBackend, tmp_path: Path) -> None:
    root = folder(backend, tmp_path, {f"f{n}.txt": b"x%d" % n for n in range(8)})
    gateway = Gateway(BlockstoreSource(backend.repo.blocks),
                      limits=GatewayLimits(max_listing_entries=5))
    async with serving(gateway) as http:
        page = (await http.get(f"/ipfs/{root}/")).text
    assert page.count('class="ipfs-hash"') == 5
    assert "only the first 5 entries are listed" in page
