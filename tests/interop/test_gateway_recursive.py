"""A recursive gateway (``--gateway-recursive``) fetches what is not here from the configured
trustless gateways (here: Kubo 0.43's), verifies it, and serves it; a non-recursive one
answers 404 and asks nobody."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from ipfs_mcp.server.config import ServerSettings
from ipfs_mcp.server.gateway.wiring import gateway_from_settings
from ipfs_mcp.server.state import NodeSlot, lifespan_state

from .kubo_daemon import KuboDaemon

pytestmark = [pytest.mark.anyio, pytest.mark.interop]


def settings(home: Path, gateways: list[str], *, recursive: bool) -> ServerSettings:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPFS_")}
    env["HF_HOME"] = str(home)
    return ServerSettings.load(env, p2p=False, gateway="127.0.0.1:0",
                               gateway_recursive=recursive, trustless_gateways=gateways)


async def test_recursive_gateway_fetches_through_trustless_gateways(
        tmp_path: Path, kubo043: KuboDaemon) -> None:
    data = os.urandom(400_000)
    (tmp_path / "f.bin").write_bytes(data)
    cid = kubo043.add_path(tmp_path / "f.bin")
    config = settings(tmp_path / "a", [kubo043.gateway_url], recursive=False)
    async with lifespan_state(config) as state:
        plain = gateway_from_settings(config, state.router)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=plain),
                                     base_url="http://127.0.0.1") as client:
            assert (await client.get(f"/ipfs/{cid}")).status_code == 404
    config = settings(tmp_path / "b", [kubo043.gateway_url], recursive=True)
    async with lifespan_state(config) as state, httpx.AsyncClient(
            transport=httpx.ASGITransport(app=gateway_from_settings(config, state.router)),
            base_url="http://127.0.0.1") as client:
        got = await client.get(f"/ipfs/{cid}")
        assert got.status_code == 200 and got.content == data
        raw = await client.get(f"/ipfs/{cid}?format=raw")
        assert raw.status_code == 200 and raw.headers["content-type"].startswith(
            "application/vnd.ipld.raw")


def test_recursive_gateway_needs_something_to_fetch_from(tmp_path: Path) -> None:
    from ipfs_mcp.backends.errors import Unsupported

    with pytest.raises(Unsupported, match="--trustless-gateway or --delegated-router"):
        gateway_from_settings(settings(tmp_path / "c", [], recursive=True), NodeSlot())
