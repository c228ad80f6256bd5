"""What people see on the gateway, over real HTTP: the landing page, error pages that name
no local path and quote no library (HTML for browsers, text for other clients), a listing
with sizes and short CIDs, and download names that survive the trip (RFC 6266)."""

from __future__ import annotations

import email.message
import re
from pathlib import Path
from urllib.parse import quote, unquote

import httpx
import pytest

from ipfs_mcp.backends.core.cids import cid_str, parse_cid
from ipfs_mcp.backends.errors import BackendUnavailable
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.server.gateway import BlockstoreSource, Gateway, GatewayLimits
from ipfs_mcp.server.gateway.disposition import content_disposition, requested_name

from .conftest import serving

pytestmark = pytest.mark.anyio

BROWSER = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
# A CID of bytes that no repo in these tests holds.
ABSENT = "bafkreie7ohywtosou76tasm7j63yigtzxe7d5zqus4zu3j6oltvgtibeom"
NAMES = ["my file (1).txt", "résumé.txt", 'quote " and \\ back.txt', "100% sure.txt",
         "日本語.txt", "plain.txt"]


def folder(backend: HFCacheBackend, tmp_path: Path, files: dict[str, bytes]) -> str:
    root = tmp_path / "site"
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return cid_str(backend.add_path(root).root)


def saved_name(header: str) -> str | None:
    """The file name a client following RFC 6266 reads from ``Content-Disposition``:
    ``filename*`` (RFC 8187: charset'language'percent-encoded bytes) wins over
    ``filename``, which the mail parser reads (it keeps whichever comes first, so it cannot
    be asked for both)."""
    extended = re.search(r"filename\*=([^;\s]+)", header)
    if extended:
        charset, _language, encoded = extended[1].split("'", 2)
        return unquote(encoded, encoding=charset, errors="strict")
    message = email.message.EmailMessage()
    message["content-disposition"] = header
    return message.get_filename()


async def test_the_landing_page_says_what_this_node_is(gateway: Gateway) -> None:
    async with serving(gateway) as http:
        page = await http.get("/", headers=BROWSER)
        text = await http.get("/")
        head = await http.head("/")
    assert page.status_code == text.status_code == head.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "ipfs-mcp gateway" in page.text and "/ipfs/&lt;cid&gt;" in page.text
    assert text.headers["content-type"] == "text/plain; charset=utf-8"
    assert text.text.startswith("ipfs-mcp gateway ")
    assert "only content already stored on this node" in text.text
    assert head.content == b"" and int(head.headers["content-length"]) == len(text.content)


async def test_a_missing_cid_is_not_found_on_this_node_without_a_path(
        gateway: Gateway, backend: HFCacheBackend) -> None:
    async with serving(gateway) as http:
        text = await http.get(f"/ipfs/{ABSENT}")
        page = await http.get(f"/ipfs/{ABSENT}", headers=BROWSER)
        raw = await http.get(f"/ipfs/{ABSENT}?format=raw")
    assert text.status_code == page.status_code == raw.status_code == 404
    assert text.headers["content-type"] == "text/plain; charset=utf-8"
    assert text.text == (f"{ABSENT} was not found on this node (this gateway serves only "
                         "content stored here).\n")
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "<h1>404 Not found</h1>" in page.text and "not found on this node" in page.text
    for answer in (text, page, raw):
        assert str(backend.repo.path) not in answer.text
        assert "blockstore" not in answer.text


async def test_an_invalid_cid_says_what_a_cid_looks_like(gateway: Gateway) -> None:
    async with serving(gateway) as http:
        text = await http.get("/ipfs/hello")
        mistyped = await http.get(f"/ipfs/{ABSENT[:-3]}xyz", headers=BROWSER)
    assert text.status_code == mistyped.status_code == 400
    assert text.text.startswith("'hello' is not a CID. A CID looks like bafy")
    assert "Qm" in text.text and len(text.text.splitlines()) == 1
    assert "not a CID" in mistyped.text and "<h1>400 Bad request</h1>" in mistyped.text
    for answer in (text, mistyped):
        # Neither the decoder's alphabet nor its rules reach the client.
        assert "alphabet" not in answer.text.lower() and "pad bits" not in answer.text.lower()


async def test_no_answer_names_the_repo_path(backend: HFCacheBackend, tmp_path: Path) -> None:
    """Every kind of answer, for browsers and other clients, including a block that is
    corrupt on disk (its error names where it was set aside), keeps the repo's path in."""
    root = folder(backend, tmp_path, {"a.txt": b"a" * 10, "sub/b.txt": b"b" * 20})
    damaged = backend.add_bytes(b"bytes that will rot on disk")
    block = backend.repo.blocks.path_of(bytes(parse_cid(damaged).digest))
    block.write_bytes(b"rotten")
    gateway = Gateway(BlockstoreSource(backend.repo.blocks))
    urls = ["/", "/favicon.ico", "/ipns/example.org", f"/ipfs/{root}/", f"/ipfs/{root}",
            f"/ipfs/{root}/nope", f"/ipfs/{root}/a.txt/deeper", f"/ipfs/{ABSENT}",
            f"/ipfs/{ABSENT}?format=car", f"/ipfs/{ABSENT}?format=raw", "/ipfs/hello",
            f"/ipfs/{root}?format=tar", f"/ipfs/{root}/..%2f..", f"/ipfs/{damaged}",
            f"/ipfs/{root}/sub/"]
    repo_path = str(backend.repo.path)
    seen = set()
    async with serving(gateway) as http:
        for url in urls:
            for headers in ({}, BROWSER):
                answer = await http.get(url, headers=headers)
                seen.add(answer.status_code)
                assert repo_path not in answer.text, url
                assert str(tmp_path) not in answer.text, url
                assert "Traceback" not in answer.text, url
    assert {200, 301, 400, 404, 500}.issubset(seen)


async def test_a_listing_shows_sizes_short_cids_and_breadcrumbs(
        gateway: Gateway, backend: HFCacheBackend, tmp_path: Path) -> None:
    root = folder(backend, tmp_path, {"docs/small.txt": b"x" * 1000,
                                      "docs/big.bin": b"y" * (3 * 1024 * 1024 + 5),
                                      "docs/inner/z.txt": b"z"})
    async with serving(gateway) as http:
        page = (await http.get(f"/ipfs/{root}/docs/")).text
    small = cid_str(backend.exporter().resolve(parse_cid(root), "docs/small.txt"))
    assert '<td class="size">1000 B</td>' in page
    assert '<td class="size">3.0 MiB</td>' in page
    assert f'<td class="cid" title="{small}">' in page  # full on hover
    assert f"{small[:6]}\u2026{small[-6:]}</a>" in page  # short in the column
    assert f'<code class="full">{small}</code>' in page  # and selectable in full
    assert f'/ipfs/<a href="/ipfs/{root}">{root}</a>/<a href="/ipfs/{root}/docs">docs</a>' in page
    assert '<a href="/ipfs/' + root + '/docs/inner">inner</a>/' in page  # a folder says so
    assert "3 entries" in page
    assert "https://" not in page and "http://" not in page  # nothing fetched from elsewhere


async def test_listing_sizes_are_bounded_per_page(backend: HFCacheBackend,
                                                  tmp_path: Path) -> None:
    root = folder(backend, tmp_path, {f"f{n}.txt": b"x" * (n + 1) for n in range(6)})
    gateway = Gateway(BlockstoreSource(backend.repo.blocks),
                      limits=GatewayLimits(max_listing_entries=5, max_listing_sizes=2))
    async with serving(gateway) as http:
        page = (await http.get(f"/ipfs/{root}/")).text
    assert page.count('<td class="size">') == 5
    assert page.count(' B</td>') == 2
    assert "only the first 5 entries are listed" in page
    assert "sizes are shown for the first 2 entries" in page
    assert "5+ entries" in page


@pytest.mark.parametrize("name", NAMES)
def test_content_disposition_parses_back_to_the_exact_name(name: str) -> None:
    header = content_disposition("attachment", name).decode("ascii")
    assert saved_name(header) == name
    fallback = header.split('filename="', 1)[1].split('"', 1)[0]
    assert fallback.isascii() and "%" not in fallback and "\\" not in fallback


def test_a_twice_encoded_filename_is_decoded_once_more() -> None:
    assert requested_name("my%20file%20%281%29.txt") == "my file (1).txt"
    assert requested_name("my file (1).txt") == "my file (1).txt"
    assert requested_name("100% sure.txt") == "100% sure.txt"  # not an escape
    assert requested_name("%FF.txt") == "%FF.txt"  # not UTF-8: kept as given
    assert requested_name("a%2Fb.txt") == "a%2Fb.txt"  # never brings a separator in


async def test_filename_survives_the_query_and_the_listing_link(
        gateway: Gateway, backend: HFCacheBackend, tmp_path: Path) -> None:
    """``?filename=`` as a person types it, and as the listing's CID link carries it (twice
    encoded, as Kubo's), both come back as the exact name."""
    name = "my file (1).txt"
    root = folder(backend, tmp_path, {name: b"hello"})
    async with serving(gateway) as http:
        typed = await http.get(f"/ipfs/{root}/{quote(name)}?filename={quote(name)}"
                               "&download=true")
        page = (await http.get(f"/ipfs/{root}/")).text
        link = page.split('class="ipfs-hash" translate="no" href="', 1)[1].split('"', 1)[0]
        linked = await http.get(link.replace("&amp;", "&"))
    assert typed.status_code == linked.status_code == 200
    assert typed.headers["content-disposition"] == (
        "attachment; filename=\"my file (1).txt\"; filename*=UTF-8''my%20file%20%281%29.txt")
    assert saved_name(typed.headers["content-disposition"]) == name
    assert saved_name(linked.headers["content-disposition"]) == name
    assert isinstance(linked, httpx.Response) and linked.content == b"hello"


class DaemonGoneSource:
    """A block source whose backend's daemon is gone, failing as the Kubo CLI backend does:
    with a text that names the binary's local path and the library's message."""

    def __init__(self, where: Path) -> None:
        self.where = where

    def get_block(self, cid: object) -> bytes:
        raise BackendUnavailable(f"Kubo CLI '{self.where / 'ipfs'}' is gone: [Errno 2] "
                                 "No such file or directory")


async def test_an_unavailable_backend_is_503_without_its_text(tmp_path: Path) -> None:
    gateway = Gateway(DaemonGoneSource(tmp_path / "bin"))
    async with serving(gateway) as http:
        text = await http.get(f"/ipfs/{ABSENT}")
        page = await http.get(f"/ipfs/{ABSENT}/", headers=BROWSER)
    assert text.status_code == page.status_code == 503
    assert text.text.startswith("The storage behind this gateway is not available")
    for answer in (text, page):
        assert str(tmp_path) not in answer.text and "Errno" not in answer.text
