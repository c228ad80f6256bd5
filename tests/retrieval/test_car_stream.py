"""Whole DAGs over HTTP as verified CAR streams, between two real repos.

The honest provider is our own gateway over a repo holding a folder with a 4 MiB file cut
in 16 KiB chunks, served on this test's trio loop; the app is wrapped only to keep each
request's query, so the test can say what the provider was asked. The liars are tiny HTTP
servers of the test's own that send our honest CAR altered (an injected block, a flipped
byte, the wrong root, a cut, a stall, a trickle); each is listed before the honest gateway,
is refused, and the fetch completes from the honest one, byte for byte.
"""

from __future__ import annotations

import io
import random
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anyio
import pytest
from multiformats import CID

from ipfs_mcp.backends.core import varint
from ipfs_mcp.backends.core.car import write_car
from ipfs_mcp.backends.core.cids import cid_of_block, cid_str
from ipfs_mcp.backends.core.dag import walk
from ipfs_mcp.backends.core.importer import ImportOptions
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.backends.retrieval.sources import NamedSource, RetrievalSources
from ipfs_mcp.backends.retrieval.trustless_gateway import GatewayStat, TrustlessGateways
from ipfs_mcp.server.gateway import BlockstoreSource, Gateway, serve_gateway
from ipfs_mcp.server.gateway.asgi import Receive, Scope, Send

pytestmark = pytest.mark.anyio
TIMEOUT = 60
STALL = 1.0  # seconds without a verified block before a provider loses its request
CAR_TYPE = "application/vnd.ipld.car; version=1; order=dfs; dups=n"


@dataclass(frozen=True)
class Tree:
    root: CID
    blocks: list[tuple[CID, bytes]]  # in CAR order
    car: bytes  # the honest CAR of the whole DAG
    provider: Repo


def make_tree(tmp_path: Path, cid_version: int) -> Tree:
    folder = tmp_path / "content"
    (folder / "notes").mkdir(parents=True)
    (folder / "big.bin").write_bytes(random.Random(20).randbytes(4 * 1024 * 1024))
    for i in range(5):
        (folder / "notes" / f"n{i}.txt").write_text(f"note {i}\n" * (i + 1))
    (folder / "readme.md").write_text("a folder beside a file of many blocks\n")
    backend = HFCacheBackend(Repo(tmp_path / "provider", fsync=False))
    result = backend.add_path(folder, options=ImportOptions(cid_version=cid_version,
                                                             chunk_size=16 * 1024))
    blocks = list(walk(result.root, backend.repo.blocks.get))
    out = io.BytesIO()
    write_car(out, [result.root], iter(blocks))
    return Tree(result.root, blocks, out.getvalue(), backend.repo)


class Counting:
    """Our gateway app, each request's path and query kept."""

    def __init__(self, app: Gateway) -> None:
        self.app = app
        self.asked: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.asked.append(f"{scope['path']}?{scope.get('query_string', b'').decode()}")
        await self.app(scope, receive, send)


@asynccontextmanager
async def honest_gateway(tree: Tree) -> AsyncIterator[tuple[str, Counting]]:
    app = Counting(Gateway(BlockstoreSource(tree.provider.blocks)))
    async with anyio.create_task_group() as tg:
        urls: list[str] = await tg.start(serve_gateway, app, "127.0.0.1", 0)
        yield urls[0], app
        tg.cancel_scope.cancel()


async def fetch(urls: list[str], into: Repo, root: CID) -> TrustlessGateways:
    """The whole DAG through the retrieval sources, as the Router asks on a miss."""
    gateways = TrustlessGateways(urls, into.blocks, timeout=10, stall=STALL)
    sources = RetrievalSources([NamedSource("trustless-gateway", gateways)])
    try:
        with anyio.fail_after(TIMEOUT):
            await anyio.to_thread.run_sync(sources.fetch_dag, root)
    finally:
        gateways.close()
    return gateways


def assert_same(tree: Tree, repo: Repo) -> None:
    """Every block there, byte for byte, in the same walk."""
    assert list(walk(tree.root, repo.blocks.get)) == tree.blocks


def stat_of(gateways: TrustlessGateways, url: str) -> GatewayStat:
    return next(s for s in gateways.stats() if s.url == url)


@pytest.mark.parametrize("cid_version", [0, 1])
async def test_a_dag_arrives_as_one_car_every_block_verified(
        tmp_path: Path, cid_version: int) -> None:
    tree = make_tree(tmp_path, cid_version)
    into = Repo(tmp_path / "fetcher", fsync=False)
    async with honest_gateway(tree) as (url, app):
        gateways = await fetch([url], into, tree.root)
    assert_same(tree, into)
    assert app.asked == [f"/ipfs/{cid_str(tree.root)}?format=car&dag-scope=all&car-dups=n"]
    assert stat_of(gateways, url).successes == len(tree.blocks)  # each block verified
    content = HFCacheBackend(into).cat(f"{cid_str(tree.root)}/big.bin")
    assert content == (tmp_path / "content" / "big.bin").read_bytes()


async def test_a_dag_whose_root_is_here_still_comes_as_one_car(tmp_path: Path) -> None:
    """A reader often fetches the root alone first (to learn what it is): the rest is then
    one CAR of the root, not a CAR per child."""
    tree = make_tree(tmp_path, 0)
    into = Repo(tmp_path / "fetcher", fsync=False)
    into.blocks.put(*tree.blocks[0])
    async with honest_gateway(tree) as (url, app):
        await fetch([url], into, tree.root)
    assert_same(tree, into)
    assert app.asked == [f"/ipfs/{cid_str(tree.root)}?format=car&dag-scope=all&car-dups=n"]


async def test_nothing_is_asked_when_the_dag_is_here(tmp_path: Path) -> None:
    tree = make_tree(tmp_path, 1)
    async with honest_gateway(tree) as (url, app):
        await fetch([url], tree.provider, tree.root)
    assert app.asked == []


# -- liars, each listed before the honest gateway -----------------------------------------
def sections(car: bytes) -> tuple[bytes, list[bytes]]:
    """A CAR's header (with its length) and its sections (each with its length)."""
    size, pos = varint.decode(car, 0)
    header, pos = car[:pos + size], pos + size
    out = []
    while pos < len(car):
        size, start = varint.decode(car, pos)
        out.append(car[pos:start + size])
        pos = start + size
    return header, out


def section_of(cid: CID, block: bytes) -> bytes:
    body = bytes(cid) + block
    return varint.encode(len(body)) + body


def with_injected_block(car: bytes) -> bytes:
    """A valid block nobody linked to, slipped in after the fourth."""
    header, parts = sections(car)
    extra = b"an unrequested but perfectly valid block"
    parts.insert(4, section_of(cid_of_block(extra), extra))
    return header + b"".join(parts)


def with_flipped_byte(car: bytes) -> bytes:
    """The last byte of the tenth block flipped."""
    header, parts = sections(car)
    parts[9] = parts[9][:-1] + bytes([parts[9][-1] ^ 1])
    return header + b"".join(parts)


def with_wrong_root(car: bytes) -> bytes:
    """The same blocks under a header naming another root."""
    _, parts = sections(car)
    out = io.BytesIO()
    write_car(out, [cid_of_block(b"another root")], iter(()))
    return out.getvalue() + b"".join(parts)


def cut_inside_a_section(car: bytes) -> bytes:
    return car[:len(car) // 2]


def cut_between_sections(car: bytes) -> bytes:
    header, parts = sections(car)
    return header + b"".join(parts[:len(parts) // 2])


LIES: dict[str, Callable[[bytes], bytes]] = {
    "injects_an_unrequested_block": with_injected_block,
    "flips_a_byte": with_flipped_byte,
    "names_the_wrong_root": with_wrong_root,
}
CUTS: dict[str, Callable[[bytes], bytes]] = {
    "stops_inside_a_section": cut_inside_a_section,
    "stops_between_sections": cut_between_sections,
}


def lying_provider(http_server_of_own: Callable[..., str], car: bytes) -> str:
    """Answers every CAR request with ``car`` whatever was asked, and no single block."""
    def answer(target: str) -> tuple[int, dict[str, str], bytes]:
        if "format=car" not in target:
            return 404, {}, b"no blocks here"
        return 200, {"Content-Type": CAR_TYPE}, car

    return http_server_of_own(answer)


async def fetch_after(provider: str, tree: Tree, tmp_path: Path
                      ) -> tuple[GatewayStat, GatewayStat, list[str]]:
    """The DAG fetched with ``provider`` listed before our honest gateway and checked byte
    for byte: the two providers' records and what the honest one was asked."""
    into = Repo(tmp_path / "fetcher", fsync=False)
    async with honest_gateway(tree) as (url, app):
        gateways = await fetch([provider, url], into, tree.root)
    assert_same(tree, into)
    return stat_of(gateways, provider), stat_of(gateways, url), app.asked


def redone(tree: Tree, asked: list[str]) -> bool:
    """Whether the honest gateway was asked for the whole DAG again (not what was left)."""
    return any(a.startswith(f"/ipfs/{cid_str(tree.root)}?") for a in asked)


@pytest.mark.parametrize("wrong", sorted(LIES | CUTS))
async def test_a_provider_that_lies_or_stops_mid_car_is_refused_and_the_fetch_resumes(
        tmp_path: Path, http_server_of_own: Callable[..., str], wrong: str) -> None:
    tree = make_tree(tmp_path, 1 if wrong in LIES else 0)  # raw leaves, then dag-pb ones
    first, honest, asked = await fetch_after(
        lying_provider(http_server_of_own, (LIES | CUTS)[wrong](tree.car)), tree, tmp_path)
    assert not honest.dropped
    if wrong in LIES:
        assert first.dropped and first.bad_blocks == 1  # never asked again
    else:
        assert first.failures >= 1 and not first.dropped  # a cut is a failure, not a lie
        assert all("format=car" in a for a in asked)  # dag-pb leaves: CARs of one block
    if wrong != "names_the_wrong_root":
        # Refused mid-stream: what arrived stays, and only what is missing is asked again.
        assert asked and not redone(tree, asked)


@contextmanager
def stalling_provider(car: bytes, *, trickle: bool) -> Iterator[str]:
    """A deliberately stalling provider: sends the first half of ``car``, then nothing
    (or, with ``trickle``, a byte every 0.2 s) until the test ends, bounded by TIMEOUT."""
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            wanted = "format=car" in self.path
            self.send_response(200 if wanted else 404)
            self.send_header("Content-Type", CAR_TYPE)
            self.send_header("Content-Length", str(len(car) if wanted else 0))
            self.end_headers()
            if not wanted:
                return
            half = len(car) // 2
            try:
                self.wfile.write(car[:half])
                self.wfile.flush()
                for steps, byte in enumerate(car[half:]):
                    if release.wait(0.2 if trickle else TIMEOUT) or steps * 0.2 > TIMEOUT:
                        return
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
            except OSError:
                return  # the fetcher hung up on us: that was the point

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        release.set()
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("trickle", [False, True], ids=["stalls", "trickles"])
async def test_a_stalling_provider_loses_the_request(tmp_path: Path, trickle: bool) -> None:
    tree = make_tree(tmp_path, 0)
    with stalling_provider(tree.car, trickle=trickle) as staller:
        slow, _, asked = await fetch_after(staller, tree, tmp_path)
    assert slow.failures >= 1 and not slow.dropped and not redone(tree, asked)
