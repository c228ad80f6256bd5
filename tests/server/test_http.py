"""Streamable HTTP served by hypercorn on the test's trio loop: bearer token, body limit,
DNS-rebinding guard, and real MCP sessions in both protocol modes."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from ipfs_mcp.server.app import build_server
from ipfs_mcp.server.config import ServerSettings
from ipfs_mcp.server.http import serve_http
from ipfs_mcp.tools import models

TOKEN = "test-token-5d1b"
TIMEOUT = 30
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "raw", "version": "0"}}}
MCP_HEADERS = {"accept": "application/json, text/event-stream",
               "content-type": "application/json"}


def http_settings(work: Path, token: str | None, max_body: int | None = None
                  ) -> ServerSettings:
    env = {k: v for k, v in os.environ.items() if k != "IPFS_MCP_TOKEN"}
    if token:
        env["IPFS_MCP_TOKEN"] = token
    return ServerSettings.load(env, http="127.0.0.1:0", allow_roots=[str(work)], p2p=False,
                               max_body=max_body)


@asynccontextmanager
async def running(settings: ServerSettings) -> AsyncIterator[str]:
    async with anyio.create_task_group() as tg:
        binds = await tg.start(serve_http, build_server(settings), settings)
        yield f"{binds[0]}/mcp"
        tg.cancel_scope.cancel()


# The SDK's HTTP client (httpx2) drops its SSE response iterators without closing them
# when a legacy session ends; trio reports that as a ResourceWarning. Client-side only.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.anyio
async def test_token_required_and_accepted(work: Path, mode: str) -> None:
    with anyio.fail_after(TIMEOUT):
        async with running(http_settings(work, TOKEN)) as url:
            async with httpx.AsyncClient() as raw:
                missing = await raw.post(url, json=INIT, headers=MCP_HEADERS)
                assert missing.status_code == 401
                assert missing.headers["www-authenticate"].startswith("Bearer")
                wrong = await raw.post(url, json=INIT, headers={
                    **MCP_HEADERS, "authorization": "Bearer nope"})
                assert wrong.status_code == 401
            http = httpx2.AsyncClient(headers={"authorization": f"Bearer {TOKEN}"})
            async with http, Client(streamable_http_client(url, http_client=http),
                                    mode=mode) as client:
                added = await client.call_tool("add_content", {"text": "over http"})
                assert not added.is_error
                cid = models.AddResult.model_validate(added.structured_content).cid
                fetched = await client.call_tool("fetch_cid", {"cid": cid})
                assert models.FetchResult.model_validate(
                    fetched.structured_content).text == "over http"
                bad = await client.call_tool("fetch_cid", {"cid": "nope"})
                assert bad.is_error


@pytest.mark.anyio
async def test_body_limit_and_rebinding_guard(work: Path) -> None:
    auth = {**MCP_HEADERS, "authorization": f"Bearer {TOKEN}"}
    with anyio.fail_after(TIMEOUT):
        async with running(http_settings(work, TOKEN, max_body=64 * 1024)) as url:
            async with httpx.AsyncClient() as raw:
                ok = await raw.post(url, json=INIT, headers=auth)
                assert ok.status_code == 200
                big = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                       "params": {"name": "add_content", "arguments": {"text": "x" * 100_000}}}
                too_big = await raw.post(url, content=json.dumps(big), headers=auth)
                assert too_big.status_code == 413
                rebound = await raw.post(url, json=INIT,
                                         headers={**auth, "host": "evil.example:80"})
                assert rebound.status_code == 421
                cross = await raw.post(url, json=INIT,
                                       headers={**auth, "origin": "http://evil.example"})
                assert cross.status_code == 403
                still = await raw.post(url, json=INIT, headers=auth)
                assert still.status_code == 200


@pytest.mark.anyio
async def test_loopback_without_token(work: Path) -> None:
    with anyio.fail_after(TIMEOUT):
        async with running(http_settings(work, None)) as url:
            async with Client(url) as client:
                listed = await client.list_tools()
                assert len(listed.tools) == 14


def test_settings_refuse_public_bind_without_token(work: Path) -> None:
    from ipfs_mcp.backends.errors import InvalidInput

    env = {k: v for k, v in os.environ.items() if k != "IPFS_MCP_TOKEN"}
    with pytest.raises(InvalidInput, match="IPFS_MCP_TOKEN"):
        ServerSettings.load(env, http="0.0.0.0:8000")
    with_token = ServerSettings.load({**env, "IPFS_MCP_TOKEN": "t"}, http="0.0.0.0:8000")
    assert with_token.http == ("0.0.0.0", 8000)
