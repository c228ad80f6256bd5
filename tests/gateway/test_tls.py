"""``--gateway-tls CERT KEY``: the gateway over TLS, HTTP/2 by ALPN (HTTP/1.1 beside it), and
its ``/routing/v1`` naming our ``/tls/http`` address; bad TLS settings are clear errors."""

from __future__ import annotations

import argparse
import os
import ssl
from pathlib import Path

import anyio
import httpx
import pytest

from ipfs_mcp.backends.core.importer import Importer, ImportOptions
from ipfs_mcp.backends.errors import InvalidInput
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.server.config import ServerSettings
from ipfs_mcp.server.gateway.node_routing import GATEWAY_HTTP, repo_peer_id
from ipfs_mcp.server.gateway.wiring import start_gateway
from ipfs_mcp.server.serve import add_arguments, settings_from_args
from ipfs_mcp.server.state import NodeSlot, lifespan_state

from .tls import self_signed

pytestmark = pytest.mark.anyio
TIMEOUT = 60


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPFS_")}
    env["HF_HOME"] = str(tmp_path / "home")
    return env


def test_tls_settings(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path / "tls")
    env = _env(tmp_path)
    on = ServerSettings.load(env, gateway="127.0.0.1:0", gateway_tls=[str(cert), str(key)])
    assert on.gateway_tls == (cert, key)
    by_env = ServerSettings.load({**env, "IPFS_MCP_GATEWAY": "127.0.0.1:0",
                                  "IPFS_MCP_GATEWAY_TLS_CERT": str(cert),
                                  "IPFS_MCP_GATEWAY_TLS_KEY": str(key)})
    assert by_env.gateway_tls == (cert, key)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--gateway", "127.0.0.1:0", "--gateway-tls", str(cert), str(key)])
    assert settings_from_args(args).gateway_tls == (cert, key)
    assert ServerSettings.load(env, gateway="127.0.0.1:0").gateway_tls is None
    with pytest.raises(InvalidInput, match="set both or neither"):
        ServerSettings.load({**env, "IPFS_MCP_GATEWAY": "127.0.0.1:0",
                             "IPFS_MCP_GATEWAY_TLS_CERT": str(cert)})
    with pytest.raises(InvalidInput, match="is not a file"):
        ServerSettings.load(env, gateway="127.0.0.1:0",
                            gateway_tls=[str(cert), str(tmp_path / "missing.pem")])
    other_cert, _ = self_signed(tmp_path / "other")
    with pytest.raises(InvalidInput, match="not a PEM certificate chain and its private key"):
        ServerSettings.load(env, gateway="127.0.0.1:0", gateway_tls=[str(other_cert), str(key)])
    with pytest.raises(InvalidInput, match="needs --gateway"):
        ServerSettings.load(env, gateway_tls=[str(cert), str(key)])


async def test_tls_gateway_speaks_http2_and_routes_to_its_tls_address(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path / "tls")
    settings = ServerSettings.load(_env(tmp_path), p2p=False, gateway="127.0.0.1:0",
                                   gateway_tls=[str(cert), str(key)])
    data = os.urandom(5000)
    # CIDv1: one raw leaf, so the raw block is the data itself.
    cid = Importer(sink=Repo(settings.backend.repo_path).blocks,
                   options=ImportOptions(cid_version=1)).add_bytes(data).cid_obj
    slot = NodeSlot()
    trust = ssl.create_default_context(cafile=str(cert))
    with anyio.fail_after(TIMEOUT):
        async with lifespan_state(settings, slot=slot), anyio.create_task_group() as tg:
            urls = await start_gateway(tg, settings, slot)
            assert len(urls) == 1 and urls[0].startswith("https://127.0.0.1:")
            port = urls[0].rsplit(":", 1)[1]
            async with httpx.AsyncClient(base_url=urls[0], http2=True, verify=trust) as h2:
                block = await h2.get(f"/ipfs/{cid}", params={"format": "raw"})
                providers = await h2.get(f"/routing/v1/providers/{cid}")
                missing = await h2.get("/routing/v1/providers/"
                                       "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")
            async with httpx.AsyncClient(base_url=urls[0], verify=trust) as h1:
                old = await h1.get("/ipfs/bafkqaaa", params={"format": "raw"})
            tg.cancel_scope.cancel()
    assert block.http_version == "HTTP/2"
    assert block.status_code == 200 and block.content == data
    assert old.http_version == "HTTP/1.1" and old.status_code == 200
    assert providers.http_version == "HTTP/2"
    assert providers.json() == {"Providers": [{
        "Schema": "peer", "ID": repo_peer_id(settings.backend.repo_path),
        "Addrs": [f"/ip4/127.0.0.1/tcp/{port}/tls/http"], "Protocols": [GATEWAY_HTTP]}]}
    # Not held here and no node to ask: an empty answer, still 200.
    assert missing.status_code == 200 and missing.json() == {"Providers": []}
