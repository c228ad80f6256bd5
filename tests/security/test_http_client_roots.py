"""Attack 5: over HTTP without a token, the roots a client declared became write roots, so any
local process that reached the loopback port could declare ``file:///`` and write (and
read) anywhere but the hub cache and the repo.

Now a client's roots count over HTTP only for a client that gave the token, and then only
inside ``--allow-root``. Each test talks to the real server over streamable HTTP on
127.0.0.1, as such a process would, with the SDK's client declaring its roots.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import ListRootsResult, Root

from ipfs_mcp.server.app import build_server
from ipfs_mcp.server.config import ServerSettings
from ipfs_mcp.server.http import serve_http

from .mcp_calls import call, call_error
from .scene import Scene

TIMEOUT = 60
TOKEN = "roots-test-token-7f3a"

pytestmark = [pytest.mark.anyio,
              # The SDK's HTTP client drops its SSE response iterators without closing them
              # when a legacy session ends; trio reports that as a ResourceWarning.
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _settings(scene: Scene, token: str | None) -> ServerSettings:
    env = {k: v for k, v in scene.env([scene.work]).items() if k != "IPFS_MCP_TOKEN"}
    if token:
        env["IPFS_MCP_TOKEN"] = token
    return ServerSettings.load(env, http="127.0.0.1:0", p2p=False)


@asynccontextmanager
async def _client(scene: Scene, mode: str, declared: list[Path], *, token: str | None
                  ) -> AsyncIterator[Client]:
    """The server over HTTP, and a client that declares ``declared`` as its roots."""

    async def list_roots(context: Any) -> ListRootsResult:
        return ListRootsResult(roots=[Root(uri=p.as_uri(), name=p.name or "/")
                                      for p in declared])

    settings = _settings(scene, token)
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with anyio.create_task_group() as tg:
        binds = await tg.start(serve_http, build_server(settings), settings)
        http = httpx2.AsyncClient(headers=headers)
        async with http, Client(streamable_http_client(f"{binds[0]}/mcp", http_client=http),
                                mode=mode, list_roots_callback=list_roots) as client:
            yield client
        tg.cancel_scope.cancel()


async def test_roots_declared_without_a_token_count_for_nothing(scene: Scene,
                                                                mode: str) -> None:
    outside = scene.home / "elsewhere"
    outside.mkdir()
    secret = outside / "secret.txt"
    secret.write_text("not for the agent\n")
    with anyio.fail_after(TIMEOUT):
        async with _client(scene, mode, [Path("/"), outside], token=None) as client:
            cid = (await call(client, "add_content", {"text": "attacker bytes"}))["cid"]
            for target in (outside / "planted.txt", scene.home / "planted.txt"):
                text = await call_error(client, "fetch_cid", {"cid": cid,
                                                              "output_path": str(target)})
                assert "outside the writable roots" in text, text
                assert "do not count over HTTP without a token" in text, text
                assert not target.exists()
            read = await call_error(client, "store_model", {"source": str(secret)})
            assert "outside the allowed roots" in read, read
            # The configured root still works.
            await call(client, "fetch_cid", {"cid": cid, "output_path": str(scene.work / "ok")})
            assert (scene.work / "ok").read_text() == "attacker bytes"


async def test_roots_declared_with_the_token_count_only_inside_allow_root(scene: Scene,
                                                                          mode: str) -> None:
    outside = scene.home / "elsewhere"
    outside.mkdir()
    inside = scene.work / "project"
    inside.mkdir()
    with anyio.fail_after(TIMEOUT):
        async with _client(scene, mode, [inside, outside, Path("/")], token=TOKEN) as client:
            cid = (await call(client, "add_content", {"text": "with the token"}))["cid"]
            text = await call_error(client, "fetch_cid", {
                "cid": cid, "output_path": str(outside / "planted.txt")})
            assert "outside the writable roots" in text, text
            assert "outside the configured roots" in text, text
            assert not (outside / "planted.txt").exists()
            # A declared root inside --allow-root is a root: a relative path stays relative
            # to the first configured one, and the declared one is writable.
            await call(client, "fetch_cid", {"cid": cid,
                                             "output_path": str(inside / "ok.txt")})
            assert (inside / "ok.txt").read_text() == "with the token"


def test_settings_say_how_far_client_roots_count(work: Path) -> None:
    from ipfs_mcp.tools.roots import ClientRoots

    env = {k: v for k, v in os.environ.items() if k != "IPFS_MCP_TOKEN"}
    assert ServerSettings.load(env).client_roots is ClientRoots.TRUSTED
    assert ServerSettings.load(env, http="127.0.0.1:0").client_roots is ClientRoots.IGNORED
    assert ServerSettings.load({**env, "IPFS_MCP_TOKEN": "t"},
                               http="127.0.0.1:0").client_roots is ClientRoots.CONFINED
