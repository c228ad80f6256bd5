"""The gateway in a real headless Chromium (Debian's, driven by Playwright without its own
browsers): the listing, the landing page and the error pages as rendered, and downloads
saved under their exact names.

Screenshots are kept as test artefacts: in ``$IPFS_MCP_SCREENSHOTS`` when set, else in
``screenshots/`` under pytest's base temporary folder; the folder is printed. Without
Chromium these tests skip, saying why, unless ``IPFS_MCP_REQUIRE_INTEROP`` is set (CI),
where they must run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import anyio.to_thread
import pytest

from ipfs_mcp.backends.core.cids import cid_str, parse_cid
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.server.gateway import Gateway, serve_gateway

pytestmark = pytest.mark.anyio

CHROMIUM = "/usr/bin/chromium"
# What the browser may do here: nothing but load the pages it is sent to.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STEP_MS = 20_000  # Playwright's bound on each step (navigation, wait, download)
TIMEOUT = 120
ABSENT = "bafkreie7ohywtosou76tasm7j63yigtzxe7d5zqus4zu3j6oltvgtibeom"
NAMES = ("my file (1).txt", "résumé 2.txt")


def _playwright() -> Any:
    """Playwright's sync API, or a skip (a failure under CI) saying what is missing."""
    required = bool(os.environ.get("IPFS_MCP_REQUIRE_INTEROP"))
    missing = None
    if not Path(CHROMIUM).exists():
        missing = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    else:
        try:
            from playwright import sync_api
        except ImportError:
            missing = "Playwright's Python package is not installed (pip install -e '.[test]')"
        else:
            return sync_api
    if required:
        pytest.fail(f"browser tests must run under IPFS_MCP_REQUIRE_INTEROP: {missing}")
    pytest.skip(missing)


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("IPFS_MCP_SCREENSHOTS")
    folder = Path(given) if given else tmp_path_factory.getbasetemp() / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nbrowser screenshots: {folder}")
    return folder


@dataclass
class Seen:
    """What the browser saw of one page."""

    status: int
    text: str
    html: str
    facts: dict[str, Any]


def _browse(work: Path, steps: Callable[[Any, Path], None]) -> None:
    """Run ``steps(page, downloads)`` in a fresh Chromium profile (a new empty folder)."""
    sync_api = _playwright()
    profile = work / "profile"
    downloads = work / "downloads"
    profile.mkdir()
    downloads.mkdir()
    with sync_api.sync_playwright() as driver:
        context = driver.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=FLAGS,
            accept_downloads=True, downloads_path=str(downloads),
            viewport={"width": 1100, "height": 800})
        try:
            context.set_default_timeout(STEP_MS)
            page = context.new_page()
            steps(page, downloads)
        finally:
            context.close()


async def _with_browser(gateway: Gateway, work: Path,
                        steps: Callable[[str, Any, Path], None]) -> None:
    """The gateway on 127.0.0.1:0, and ``steps(base_url, page, downloads)`` in Chromium, in a
    worker thread (Playwright's sync API blocks), all bounded in time."""
    _playwright()  # skip before serving anything
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            urls = await tg.start(serve_gateway, gateway, "127.0.0.1", 0)
            base = urls[0].rstrip("/")
            await anyio.to_thread.run_sync(
                lambda: _browse(work, lambda page, dl: steps(base, page, dl)))
            tg.cancel_scope.cancel()


def _visit(page: Any, url: str, shot: Path, requests: list[str]) -> Seen:
    page.on("request", lambda request: requests.append(request.url))
    response = page.goto(url)
    assert response is not None
    page.screenshot(path=str(shot), full_page=True)
    return Seen(response.status, page.inner_text("body"), page.content(), {})


@pytest.fixture
def site(backend: HFCacheBackend, tmp_path: Path) -> tuple[str, dict[str, str]]:
    root = tmp_path / "site"
    files = {NAMES[0]: b"hello", NAMES[1]: b"CV", "big.bin": b"y" * (3 * 1024 * 1024 + 5),
             "docs/inner.txt": b"inner"}
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    cid = cid_str(backend.add_path(root).root)
    exporter = backend.exporter()
    cids = {name: cid_str(exporter.resolve(parse_cid(cid), name)) for name in (*NAMES, "big.bin")}
    return cid, cids


async def test_the_listing_as_rendered(gateway: Gateway, site: tuple[str, dict[str, str]],
                                       tmp_path: Path, screenshots: Path) -> None:
    root, cids = site
    seen: dict[str, Any] = {}
    requests: list[str] = []

    def steps(base: str, page: Any, _downloads: Path) -> None:
        listing = _visit(page, f"{base}/ipfs/{root}/", screenshots / "listing.png", requests)
        row = page.locator("tr", has_text="big.bin")
        seen["listing"] = listing
        seen["row"] = row.inner_text()
        seen["title"] = row.locator("td.cid").get_attribute("title")
        seen["full_hidden"] = row.locator("code.full").is_visible()
        row.hover()
        seen["full_on_hover"] = row.locator("code.full").is_visible()
        page.screenshot(path=str(screenshots / "listing-hover.png"))
        seen["crumbs"] = page.locator(".crumbs a").all_inner_texts()
        # One line each: "Index of" and the brand never wrap.
        seen["lines"] = page.evaluate("""() => [".index-of", "header .brand"].map(s => {
            const e = document.querySelector(s);
            return e.getBoundingClientRect().height / parseFloat(getComputedStyle(e).lineHeight);
        })""")
        docs = _visit(page, f"{base}/ipfs/{root}/docs/", screenshots / "listing-docs.png",
                      requests)
        seen["docs_crumbs"] = page.locator(".crumbs a").all_inner_texts()
        seen["docs"] = docs

    await _with_browser(gateway, tmp_path, steps)
    listing: Seen = seen["listing"]
    big = cids["big.bin"]
    assert listing.status == 200
    for name in (*NAMES, "big.bin", "docs"):
        assert name in listing.text
    assert "3.0 MiB" in seen["row"] and "5 B" in listing.text
    assert f"{big[:6]}\u2026{big[-6:]}" in seen["row"]
    assert seen["title"] == big
    assert seen["full_hidden"] is False and seen["full_on_hover"] is True
    assert seen["crumbs"] == [root]
    assert seen["docs_crumbs"] == [root, "docs"] and "inner.txt" in seen["docs"].text
    assert all(lines < 1.5 for lines in seen["lines"]), seen["lines"]
    # Rendered offline: the page asked for nothing but itself.
    assert {url.split("/ipfs/")[0] for url in requests} == {requests[0].split("/ipfs/")[0]}
    assert all(url.startswith("http://127.0.0.1:") for url in requests)


async def test_the_landing_and_error_pages_as_rendered(
        gateway: Gateway, backend: HFCacheBackend, tmp_path: Path, screenshots: Path) -> None:
    seen: dict[str, Seen] = {}
    requests: list[str] = []

    def steps(base: str, page: Any, _downloads: Path) -> None:
        seen["landing"] = _visit(page, f"{base}/", screenshots / "landing.png", requests)
        seen["missing"] = _visit(page, f"{base}/ipfs/{ABSENT}", screenshots / "404.png",
                                 requests)
        seen["invalid"] = _visit(page, f"{base}/ipfs/hello", screenshots / "400.png", requests)

    await _with_browser(gateway, tmp_path, steps)
    landing, missing, invalid = seen["landing"], seen["missing"], seen["invalid"]
    assert landing.status == 200
    assert "ipfs-mcp gateway" in landing.text and "/ipfs/<cid>" in landing.text
    assert missing.status == 404
    assert "404 Not found" in missing.text and "not found on this node" in missing.text
    assert invalid.status == 400
    assert "'hello' is not a CID" in invalid.text and "A CID looks like" in invalid.text
    for page in (landing, missing, invalid):
        assert str(backend.repo.path) not in page.html
        assert "alphabet" not in page.html.lower()


def _download(page: Any, url: str) -> tuple[str, bytes]:
    """Click a link to ``url`` and wait for the download; its name and bytes."""
    page.set_content(f'<a id="go" href="{url}">download</a>')
    with page.expect_download() as info:
        page.click("#go")
    download = info.value
    saved = download.path()
    return download.suggested_filename, Path(saved).read_bytes()


async def test_downloads_keep_their_exact_names(gateway: Gateway,
                                                site: tuple[str, dict[str, str]],
                                                tmp_path: Path, screenshots: Path) -> None:
    """``?filename=`` as typed, and the listing's own CID link (twice encoded, as Kubo's),
    both save under the entry's exact name."""
    root, cids = site
    saved: dict[str, tuple[str, bytes]] = {}

    def steps(base: str, page: Any, _downloads: Path) -> None:
        for name in NAMES:
            typed = f"{base}/ipfs/{cids[name]}?filename={quote(name)}&download=true"
            saved[f"typed {name}"] = _download(page, typed)
        page.goto(f"{base}/ipfs/{root}/")
        links = {name: page.locator("tr", has_text=name).locator("a.ipfs-hash")
                 .get_attribute("href") for name in NAMES}
        for name, href in links.items():
            saved[f"linked {name}"] = _download(page, f"{base}{href}&download=true")

    await _with_browser(gateway, tmp_path, steps)
    contents = {NAMES[0]: b"hello", NAMES[1]: b"CV"}
    for name in NAMES:
        assert saved[f"typed {name}"] == (name, contents[name])
        assert saved[f"linked {name}"] == (name, contents[name])

