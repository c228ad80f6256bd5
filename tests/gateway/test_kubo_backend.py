"""``serve --gateway`` on the Kubo backend: the gateway reads through the server's one Router
(the lifespan's), so it serves what the Kubo 0.43 node holds, every block verified here.

Wired as ``serve`` wires it: the gateway bound first, the lifespan's Router published in the
shared slot after. Content is added by Kubo's own CLI; our gateway serves a file and a folder
as a trustless gateway (a raw block, a CAR) and as a path gateway (a UnixFS path).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from ipfs_mcp.backends.core.car import read_car
from ipfs_mcp.backends.core.cids import cid_str, parse_cid, verify_block
from ipfs_mcp.server.config import ServerSettings
from ipfs_mcp.server.gateway.wiring import start_gateway
from ipfs_mcp.server.state import NodeSlot, lifespan_state
from tests.interop.kubo_daemon import KuboDaemon, kubo_daemon_binary

pytestmark = [pytest.mark.anyio, pytest.mark.interop]
TIMEOUT = 90


@pytest.fixture
def kubo(tmp_path: Path) -> Iterator[KuboDaemon]:
    """A Kubo 0.43 daemon on 127.0.0.1 (built from source once; see tests/interop)."""
    with KuboDaemon(tmp_path / "kubo", binary=kubo_daemon_binary()) as daemon:
        yield daemon


def _settings(tmp_path: Path, kubo: KuboDaemon) -> ServerSettings:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPFS_")}
    env |= {"HF_HOME": str(tmp_path / "home"), "IPFS_BACKEND": "kubo",
            "IPFS_API": kubo.api_url}
    return ServerSettings.load(env, gateway="127.0.0.1:0")


async def test_our_gateway_serves_a_file_and_a_folder_from_kubo(
        tmp_path: Path, kubo: KuboDaemon) -> None:
    data = os.urandom(600_000)  # three leaves under a root
    (tmp_path / "file.bin").write_bytes(data)
    (tmp_path / "folder" / "sub").mkdir(parents=True)
    (tmp_path / "folder" / "readme.txt").write_bytes(b"held by kubo\n")
    inner = os.urandom(300_000)
    (tmp_path / "folder" / "sub" / "weights.bin").write_bytes(inner)
    file_cid = kubo.add_path(tmp_path / "file.bin", "--cid-version=1")
    folder_cid = kubo.add_path(tmp_path / "folder")
    folder_blocks = {folder_cid, *kubo.cli("refs", "-r", "--unique", "--", folder_cid)
                     .decode().split()}
    settings = _settings(tmp_path, kubo)
    slot = NodeSlot()
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            urls = await start_gateway(tg, settings, slot)
            async with lifespan_state(settings, slot=slot) as state, \
                    httpx.AsyncClient(base_url=urls[0], timeout=TIMEOUT) as http:
                assert state.selection.backend == "kubo"
                raw = await http.get(f"/ipfs/{file_cid}", params={"format": "raw"})
                whole = await http.get(f"/ipfs/{file_cid}")
                car = await http.get(f"/ipfs/{folder_cid}",
                                     headers={"accept": "application/vnd.ipld.car"})
                path = await http.get(f"/ipfs/{folder_cid}/sub/weights.bin")
                listing = await http.get(f"/ipfs/{folder_cid}/")
            tg.cancel_scope.cancel()
    assert raw.status_code == 200
    assert raw.headers["content-type"].startswith("application/vnd.ipld.raw")
    verify_block(parse_cid(file_cid), raw.content)  # the root block itself, as Kubo holds it
    assert raw.content == kubo.cli("block", "get", "--", file_cid)
    assert whole.status_code == 200 and whole.content == data
    assert car.status_code == 200
    assert car.headers["content-type"].startswith("application/vnd.ipld.car")
    roots, blocks = read_car(io.BytesIO(car.content))  # every block verified as it is read
    assert [cid_str(r) for r in roots] == [folder_cid]
    assert {cid_str(c) for c, _ in blocks} == folder_blocks
    assert path.status_code == 200 and path.content == inner
    assert listing.status_code == 200
    assert "readme.txt" in listing.text and "sub" in listing.text
