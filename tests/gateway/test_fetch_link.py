"""With the gateway on, ``fetch_cid`` of content too large to inline names a download URL on
this node's own gateway, and that URL serves exactly the bytes."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import httpx
import pytest
import trio
from mcp import Client

from ipfs_mcp.server.app import build_server
from ipfs_mcp.server.config import ServerSettings
from ipfs_mcp.server.gateway.serve import serve_gateway
from ipfs_mcp.server.gateway.wiring import gateway_from_settings
from ipfs_mcp.server.state import NodeSlot
from ipfs_mcp.tools import models

pytestmark = pytest.mark.anyio


async def test_large_fetch_names_a_gateway_download(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPFS_")}
    env["HF_HOME"] = str(tmp_path / "home")
    (tmp_path / "work").mkdir()
    data = os.urandom(300_000)
    (tmp_path / "work" / "big.bin").write_bytes(data)
    settings = ServerSettings.load(env, allow_roots=[str(tmp_path / "work")], p2p=False,
                                   gateway="127.0.0.1:0")
    slot = NodeSlot()  # the gateway reads through the server's Router, published here
    with anyio.fail_after(60):
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(lambda task_status: serve_gateway(
                gateway_from_settings(settings, slot), "127.0.0.1", 0, log_level="WARNING",
                task_status=task_status))
            async with Client(build_server(settings, gateway_url=urls[0], slot=slot),
                              mode="auto") as client:
                added = await client.call_tool("add_content",
                                               {"path": str(tmp_path / "work" / "big.bin")})
                cid = added.structured_content["cid"]
                got = await client.call_tool("fetch_cid", {"cid": cid})
                result = models.FetchResult.model_validate(got.structured_content)
                assert result.delivery == "resource_link"
                assert result.gateway_url == f"{urls[0]}/ipfs/{cid}"
                async with httpx.AsyncClient() as http:
                    download = await http.get(result.gateway_url)
                assert download.status_code == 200 and download.content == data
                small = await client.call_tool("add_content", {"text": "tiny"})
                inline = models.FetchResult.model_validate((await client.call_tool(
                    "fetch_cid", {"cid": small.structured_content["cid"]})).structured_content)
                assert inline.text == "tiny" and inline.gateway_url is None
            nursery.cancel_scope.cancel()
