"""A recursive gateway stores at most its bound in all, and nothing once the disk is down to
its reserve: anonymous clients cannot fill the disk a request at a time.

The gateway fetches from a tiny HTTP trustless gateway of the test's own on 127.0.0.1 (an
honest one, counting what it is asked for); ours runs for real under hypercorn.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from multiformats import CID

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.core.importer import Importer, ImportOptions
from ipfs_mcp.server.config import ServerSettings
from ipfs_mcp.server.gateway.wiring import gateway_from_settings
from ipfs_mcp.server.state import lifespan_state
from tests.conftest import fill_disk

from .conftest import serving

pytestmark = pytest.mark.anyio


class _Collect:
    def __init__(self) -> None:
        self.blocks: dict[str, bytes] = {}

    def put_block(self, cid: bytes, data: bytes) -> None:
        self.blocks[cid_str(CID.decode(cid))] = data


def make_files(count: int, size: int) -> tuple[list[tuple[str, bytes]], dict[str, bytes]]:
    sink = _Collect()
    importer = Importer(sink, ImportOptions(chunk_size=16 * 1024))
    files = []
    for _ in range(count):
        data = os.urandom(size)
        files.append((cid_str(importer.add_bytes(data).cid_obj), data))
    return files, sink.blocks


@pytest.fixture
def source_gateway(http_server_of_own):
    def start(blocks: dict[str, bytes]) -> tuple[str, list[str]]:
        asked: list[str] = []

        def respond(target: str) -> tuple[int, dict[str, str], bytes]:
            cid = target.partition("?")[0].removeprefix("/ipfs/")
            asked.append(cid)
            if cid not in blocks:
                return 404, {}, b"not here"
            return 200, {"Content-Type": "application/vnd.ipld.raw"}, blocks[cid]

        return http_server_of_own(respond), asked

    return start


def settings(home: Path, source: str, max_store: int | None = None) -> ServerSettings:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPFS_")}
    env["HF_HOME"] = str(home)
    return ServerSettings.load(env, p2p=False, gateway="127.0.0.1:0", gateway_recursive=True,
                               gateway_max_store=max_store, trustless_gateways=[source])


async def test_the_recursive_gateway_stops_fetching_at_its_total_bound(
        tmp_path: Path, source_gateway) -> None:
    files, blocks = make_files(3, 100_000)
    url, asked = source_gateway(blocks)
    config = settings(tmp_path / "home", url, max_store=150_000)
    async with lifespan_state(config) as state, \
            serving(gateway_from_settings(config, state.router)) as client:
        first = await client.get(f"/ipfs/{files[0][0]}")
        assert first.status_code == 200 and first.content == files[0][1]
        # The second starts under the bound and passes it mid-file: the body is cut there,
        # as a gateway cuts any stream it cannot finish, never padded or wrong.
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(f"/ipfs/{files[1][0]}")
        fetched = sum(len(blocks[c]) for c in asked if c in blocks)
        assert 150_000 <= fetched <= 150_000 + 16 * 1024 + 64  # at most one block over
        asked_before = len(asked)
        refused = await client.get(f"/ipfs/{files[2][0]}")
        assert refused.status_code == 507
        assert "its bound of 150000" in refused.text
        assert len(asked) == asked_before  # nothing more was asked of the source
        again = await client.get(f"/ipfs/{files[0][0]}")  # what is here is still served
        assert again.status_code == 200 and again.content == files[0][1]


async def test_the_recursive_gateway_stops_fetching_at_the_disk_reserve(
        small_disk: Path, source_gateway) -> None:
    files, blocks = make_files(2, 60_000)
    url, asked = source_gateway(blocks)
    config = settings(small_disk / "home", url)
    async with lifespan_state(config) as state, \
            serving(gateway_from_settings(config, state.router)) as client:
        first = await client.get(f"/ipfs/{files[0][0]}")
        assert first.status_code == 200 and first.content == files[0][1]
        filler = fill_disk(small_disk)  # another writer takes the rest of the disk
        asked_before = len(asked)
        refused = await client.get(f"/ipfs/{files[1][0]}")
        assert refused.status_code == 507
        assert "kept for the rest of the server" in refused.text
        assert len(asked) == asked_before
        filler.unlink()  # space again: fetching resumes
        second = await client.get(f"/ipfs/{files[1][0]}")
        assert second.status_code == 200 and second.content == files[1][1]
