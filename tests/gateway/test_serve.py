"""``ipfs-mcp serve --gateway``: settings, and the real server process serving the repo the
CLI added to, beside stdio or HTTP."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from ipfs_mcp.backends.errors import InvalidInput
from ipfs_mcp.server.config import ServerSettings
from ipfs_mcp.server.gateway.wiring import gateway_from_settings
from ipfs_mcp.server.state import NodeSlot, lifespan_state
from tests.interop._process import DaemonProcess

from .conftest import serving

CLI = [sys.executable, "-m", "ipfs_mcp.server.cli"]
START_TIMEOUT = 60.0
_URL = re.compile(r"serving gateway at (http://127\.0\.0\.1:\d+)/ipfs/")
MISSING = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


def test_gateway_settings() -> None:
    assert ServerSettings.load({}).gateway is None
    on = ServerSettings.load({"IPFS_MCP_GATEWAY": "127.0.0.1:8080"})
    assert on.gateway == ("127.0.0.1", 8080) and not on.gateway_recursive
    assert ServerSettings.load({}, gateway=":0").gateway == ("127.0.0.1", 0)
    assert ServerSettings.load({"IPFS_MCP_GATEWAY_RECURSIVE": "1"},
                               gateway="127.0.0.1:0").gateway_recursive
    with pytest.raises(InvalidInput, match="--gateway-public"):
        ServerSettings.load({}, gateway="0.0.0.0:8080")
    public = ServerSettings.load({"IPFS_MCP_GATEWAY_PUBLIC": "1"}, gateway="0.0.0.0:8080")
    assert public.gateway == ("0.0.0.0", 8080)
    with pytest.raises(InvalidInput, match="--gateway"):
        ServerSettings.load({}, gateway="no-port")


def _add(home: Path, path: Path) -> str:
    out = subprocess.run([*CLI, "add", "-Q", str(path)], check=True, capture_output=True,
                         text=True, timeout=120, env={**os.environ, "HF_HOME": str(home)})
    return out.stdout.strip()


def test_serve_with_http_and_gateway(tmp_path: Path) -> None:
    home = tmp_path / "hf"
    (tmp_path / "hello.txt").write_bytes(b"hello world\n")
    cid = _add(home, tmp_path / "hello.txt")
    assert cid == "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
    server = DaemonProcess([*CLI, "serve", "--no-p2p", "--http", "127.0.0.1:0", "--gateway",
                            "127.0.0.1:0"], name="ipfs-mcp serve", cwd=tmp_path,
                           log_path=tmp_path / "serve.log", ready_marker="serving gateway at",
                           env={"HF_HOME": str(home)})
    try:
        server.wait_ready(START_TIMEOUT)
        match = _URL.search(server.log_tail())
        assert match, server.log_tail()
        with httpx.Client(base_url=match.group(1), timeout=30) as http:
            assert http.get(f"/ipfs/{cid}").content == b"hello world\n"
            assert http.get(f"/ipfs/{cid}?format=raw").status_code == 200
            assert http.get("/ipfs/bafkqaaa?format=raw").status_code == 200
            absent = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
            assert http.get(f"/ipfs/{absent}").status_code == 404
    finally:
        server.close()


def test_gateway_stops_with_the_stdio_server(tmp_path: Path) -> None:
    """Beside stdio, the gateway serves until stdin closes, then the process exits."""
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf")}
    proc = subprocess.Popen([*CLI, "serve", "--no-p2p", "--gateway", "127.0.0.1:0"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    try:
        assert proc.stderr is not None and proc.stdin is not None
        line = b""
        for _ in range(50):  # bounded: the ready line comes among the first few
            line = proc.stderr.readline()
            if b"serving gateway at" in line or not line:
                break
        match = _URL.search(line.decode())
        assert match, line
        with httpx.Client(timeout=30) as http:
            probe = http.get(f"{match.group(1)}/ipfs/bafkqaaa?format=raw")
        assert probe.status_code == 200
        proc.stdin.close()
        assert proc.wait(timeout=START_TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.anyio
async def test_the_gateway_says_503_and_why_once_the_servers_router_is_gone(
        tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPFS_")}
    env["HF_HOME"] = str(tmp_path / "home")
    settings = ServerSettings.load(env, p2p=False, gateway="127.0.0.1:0")
    slot = NodeSlot()
    async with lifespan_state(settings, slot=slot):
        pass  # the lifespan came and went: its Router is closed and no longer published
    async with serving(gateway_from_settings(settings, slot)) as http:
        gone = await http.get(f"/ipfs/{MISSING}")
    assert gone.status_code == 503 and "stopped" in gone.text
