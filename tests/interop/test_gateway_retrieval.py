"""Trustless HTTP retrieval through MCP, with no P2P node: from Kubo 0.43's gateway, and
from our own gateway served by another ipfs-mcp process."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client

from ipfs_mcp.server.app import build_server
from ipfs_mcp.server.config import ServerSettings
from ipfs_mcp.tools import models

from .kubo_daemon import KuboDaemon

pytestmark = [pytest.mark.anyio, pytest.mark.interop]
TIMEOUT = 60


def settings(home: Path, root: Path, gateways: list[str]) -> ServerSettings:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPFS_")}
    env["HF_HOME"] = str(home)
    return ServerSettings.load(env, allow_roots=[str(root)], p2p=False,
                               trustless_gateways=gateways)


async def fetch_all(client: Client, cid: str, out: Path) -> models.FetchResult:
    result = await client.call_tool("fetch_cid", {"cid": cid, "output_path": str(out)})
    assert not result.is_error, result.content
    return models.FetchResult.model_validate(result.structured_content)


async def test_fetch_from_kubo_gateway_without_p2p(tmp_path: Path, kubo043: KuboDaemon) -> None:
    data = os.urandom(1_200_000)  # five chunks and a root
    (tmp_path / "big.bin").write_bytes(data)
    cid = kubo043.add_path(tmp_path / "big.bin")
    root = tmp_path / "work"
    root.mkdir()
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(settings(tmp_path / "home", root,
                                                [kubo043.gateway_url])), mode="auto") as c:
            got = await fetch_all(c, cid, root / "big.bin")
            assert got.size == len(data) and (root / "big.bin").read_bytes() == data
            page = await c.call_tool("fetch_cid", {"cid": cid, "offset": 1_000_000,
                                                   "length": 100})
            assert base64.b64decode(page.structured_content["base64"]) == \
                data[1_000_000:1_000_100]
            health = json.loads((await c.read_resource("ipfs-mcp://health"))
                                .contents[0].text)  # type: ignore[union-attr]
            assert health["retrieval_sources"] == ["trustless-gateway"]
            (gw,) = health["gateways"]
            assert gw["url"] == kubo043.gateway_url and gw["successes"] >= 6
            assert gw["bad_blocks"] == 0 and not gw["dropped"]


async def test_fetch_from_our_gateway_in_another_process(tmp_path: Path) -> None:
    serving_home = tmp_path / "serving"
    data = os.urandom(700_000)
    (tmp_path / "model.bin").write_bytes(data)
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPFS_")}
    env["HF_HOME"] = str(serving_home)
    added = subprocess.run([sys.executable, "-m", "ipfs_mcp.server.cli", "add", "-Q",
                            str(tmp_path / "model.bin")], env=env, capture_output=True,
                           check=True, timeout=60)
    cid = added.stdout.decode().strip()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ipfs_mcp.server.cli", "serve", "--no-p2p",
         "--http", "127.0.0.1:0", "--gateway", "127.0.0.1:0"],
        env={**env, "IPFS_MCP_LOG_LEVEL": "WARNING"}, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert proc.stderr is not None
        url = None
        with anyio.fail_after(TIMEOUT):
            while url is None:  # its first lines say where it listens; bounded by the deadline
                line = (await anyio.to_thread.run_sync(proc.stderr.readline)).decode()
                assert line, "the serving process exited before it served the gateway"
                found = re.search(r"serving gateway at (http://\S+)/ipfs/", line)
                url = found.group(1) if found else None
        root = tmp_path / "work"
        root.mkdir()
        with anyio.fail_after(TIMEOUT):
            async with Client(build_server(settings(tmp_path / "home", root, [url])),
                              mode="auto") as c:
                got = await fetch_all(c, cid, root / "model.bin")
                assert got.resolved_cid == cid and (root / "model.bin").read_bytes() == data
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()
