"""``ipfs-mcp serve`` as a real subprocess over stdio: initialize, list, call each tool, and
check that stdout carries nothing but JSON-RPC (logs go to stderr)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp import Client
from multiformats import CID

from ipfs_mcp.backends.core.exporter import Exporter
from ipfs_mcp.server.app import build_server
from ipfs_mcp.server.config import ServerSettings

SERVE = [sys.executable, "-m", "ipfs_mcp.server.cli", "serve"]
TIMEOUT = 60


class RawClient:
    """Line-delimited JSON-RPC over the child's pipes, keeping every stdout line."""

    def __init__(self, proc: Process) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        self.proc = proc
        self.stdin = proc.stdin
        self.stdout = BufferedByteReceiveStream(proc.stdout)
        self.lines: list[bytes] = []
        self.next_id = 0

    async def send(self, method: str, params: dict[str, Any] | None = None,
                   notify: bool = False) -> dict[str, Any] | None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        if notify:
            await self.stdin.send(json.dumps(message).encode() + b"\n")
            return None
        self.next_id += 1
        message["id"] = self.next_id
        await self.stdin.send(json.dumps(message).encode() + b"\n")
        while True:
            line = await self.stdout.receive_until(b"\n", 16 * 1024 * 1024)
            self.lines.append(line)
            reply = json.loads(line)
            if reply.get("id") == self.next_id:
                return reply

    async def send_line(self, line: bytes, reply_id: object) -> dict[str, Any]:
        """Write ``line`` as it is and wait for the reply whose id is ``reply_id``."""
        await self.stdin.send(line + b"\n")
        while True:
            got = await self.stdout.receive_until(b"\n", 16 * 1024 * 1024)
            self.lines.append(got)
            reply = json.loads(got)
            if "id" in reply and reply["id"] == reply_id:
                return reply

    async def tool(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        reply = await self.send("tools/call", {"name": name, "arguments": args})
        assert reply is not None and "result" in reply, reply
        return reply["result"]


@pytest.mark.anyio
async def test_stdio_end_to_end(work: Path, tmp_path: Path) -> None:
    (work / "m").mkdir()
    (work / "m" / "config.json").write_text('{"a": 1}\n')
    env = {**os.environ, "IPFS_MCP_ALLOW_ROOTS": str(work), "IPFS_MCP_LOG_LEVEL": "INFO"}
    stderr_path = tmp_path / "stderr.txt"
    with open(stderr_path, "wb") as stderr, anyio.fail_after(TIMEOUT):
        async with await anyio.open_process(SERVE, env=env, stderr=stderr) as proc:
            client = RawClient(proc)
            init = await client.send("initialize", {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "test", "version": "0"}})
            assert init is not None
            assert init["result"]["serverInfo"]["name"] == "ipfs-mcp"
            await client.send("notifications/initialized", notify=True)
            listed = await client.send("tools/list", {})
            assert listed is not None
            assert len(listed["result"]["tools"]) == 15

            added = await client.tool("add_content", {"text": "hello world"})
            cid = added["structuredContent"]["cid"]
            assert cid == "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD"
            stored = await client.tool("store_model", {"source": str(work / "m")})
            root = stored["structuredContent"]["root_cid"]
            got = await client.tool("fetch_cid", {"cid": f"{root}/config.json"})
            assert got["structuredContent"]["text"] == '{"a": 1}\n'
            assert (await client.tool("ls", {"cid": root}))["structuredContent"]["total"] == 1
            assert (await client.tool("pin", {"cid": cid}))["structuredContent"]["pinned"]
            pins = await client.tool("list_pins", {})
            assert pins["structuredContent"]["total"] == 2
            stats = (await client.tool("peer_stats", {}))["structuredContent"]
            assert stats["network_status"] == "running"  # the default node: 127.0.0.1 only
            assert stats["network"]["listen_addrs"][0].startswith("/ip4/127.0.0.1/tcp/")
            announced = await client.tool("announce", {"cid": root})
            assert announced["structuredContent"]["announced"]
            assert "own provider store only" in announced["structuredContent"]["scope"]
            providers = await client.tool("find_providers", {"cid": root})
            assert providers["structuredContent"]["count"] == 0  # nobody else has it
            refused = await client.tool("connect_peer", {
                "multiaddr": "/ip4/127.0.0.1/tcp/9/p2p/"
                             "12D3KooWLeX3U6LJNU2Yw5dEPzQPLUBHyyf3p65S8GwxUmw8mDbE"})
            assert refused["isError"] and "could not connect" in refused["content"][0]["text"]
            assert (await client.tool("unpin", {"cid": cid}))["structuredContent"]["removed"]
            gc = await client.tool("repo_gc", {})
            assert gc["structuredContent"]["removed_blocks"] == 1
            bad = await client.tool("fetch_cid", {"cid": "not-a-cid"})
            assert bad["isError"] and "invalid CID" in bad["content"][0]["text"]
            health = await client.send("resources/read", {"uri": "ipfs-mcp://health"})
            assert health is not None and "hf_cache" in health["result"]["contents"][0]["text"]
            await client.stdin.aclose()  # end of input: the server exits cleanly
            assert await proc.wait() == 0
            client.lines.extend(line for line in (await _rest(client)).split(b"\n") if line)
    for line in client.lines:
        message = json.loads(line)  # every stdout line is protocol ...
        assert message["jsonrpc"] == "2.0"
    logs = stderr_path.read_bytes()
    assert b"backend hf_cache" in logs  # ... and the logs went to stderr


async def _rest(client: RawClient) -> bytes:
    rest = bytearray(client.stdout.buffer)
    try:
        while True:
            rest += await client.stdout.receive()
    except (anyio.EndOfStream, anyio.ClosedResourceError):
        pass
    return bytes(rest)


def test_serve_refuses_public_bind_without_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "IPFS_MCP_TOKEN"}
    done = subprocess.run([*SERVE, "--http", "0.0.0.0:0"], env=env, capture_output=True,
                          timeout=TIMEOUT, check=False)
    assert done.returncode == 2
    assert b"IPFS_MCP_TOKEN" in done.stderr and done.stdout == b""


def test_serve_help_lists_the_options() -> None:
    done = subprocess.run([*SERVE, "--help"], capture_output=True, timeout=TIMEOUT, check=False)
    assert done.returncode == 0
    for option in (b"--http", b"--role", b"--listen", b"--bootstrap", b"--allow-root"):
        assert option in done.stdout


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_sdk_client_over_stdio(work: Path, mode: str) -> None:
    from mcp import Client, StdioServerParameters

    env = {**os.environ, "IPFS_MCP_ALLOW_ROOTS": str(work)}
    params = StdioServerParameters(command=SERVE[0], args=[*SERVE[1:], "--no-p2p"], env=env)
    with anyio.fail_after(TIMEOUT):
        async with Client(params, mode=mode) as client:
            assert len((await client.list_tools()).tools) == 14
            added = await client.call_tool("add_content", {"text": "via the SDK"})
            cid = added.structured_content["cid"]
            got = await client.call_tool("fetch_cid", {"cid": cid})
            assert got.structured_content["text"] == "via the SDK"
            stats = await client.call_tool("peer_stats", {})
            assert stats.structured_content["network_status"].startswith(
                "not running: disabled")


@pytest.mark.anyio
async def test_every_request_line_gets_a_reply(work: Path) -> None:
    """A lone-surrogate escape is valid JSON to Python but not valid Unicode, so the SDK's
    transport could not read the line and the client waited for ever; a line that is not
    JSON had the same fate. Each now gets a JSON-RPC error, and the server goes on."""
    env = {**os.environ, "IPFS_MCP_ALLOW_ROOTS": str(work)}
    with anyio.fail_after(TIMEOUT):
        async with await anyio.open_process([*SERVE, "--no-p2p"], env=env) as proc:
            client = RawClient(proc)
            await client.send("initialize", {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "test", "version": "0"}})
            await client.send("notifications/initialized", notify=True)
            lone = (b'{"jsonrpc":"2.0","id":41,"method":"tools/call","params":{"name":'
                    b'"add_content","arguments":{"text":"\\ud800"}}}')
            reply = await client.send_line(lone, 41)
            assert reply["error"]["code"] == -32700
            assert "lone surrogate" in reply["error"]["message"]
            broken = await client.send_line(b'{"jsonrpc":"2.0","id":42,"method":', None)
            assert broken["error"]["code"] == -32700
            listed = await client.send("tools/list", {})  # still serving
            assert listed is not None and listed["result"]["tools"]
            pins = await client.tool("list_pins", {})
            assert pins["structuredContent"]["total"] == 0  # the lone-surrogate add did nothing
            await client.stdin.aclose()
            assert await proc.wait() == 0


@pytest.mark.anyio
async def test_a_kubo_api_that_is_not_a_url_is_one_clear_line(work: Path) -> None:
    """``http://[zz`` made urlsplit raise a ValueError the server did not expect: the CLI
    printed "unexpected ExceptionGroup" as a bug. It is a setting's mistake, said as one."""
    env = {**os.environ, "IPFS_MCP_ALLOW_ROOTS": str(work), "IPFS_BACKEND": "kubo",
           "IPFS_API": "http://[zz"}
    with anyio.fail_after(TIMEOUT):
        done = await anyio.run_process([*SERVE, "--no-p2p"], env=env, check=False,
                                       input=b"")
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert err.count("\n") == 1 and "IPFS_API 'http://[zz' is not a URL" in err, err
    assert "Traceback" not in err and "ExceptionGroup" not in err, err


@pytest.mark.anyio
async def test_a_tool_crashed_by_a_deliberate_bug_tells_the_agent_what_happened(
        settings: ServerSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in the reader (made here on purpose: ``ls`` raises a ValueError no tool expects)
    reached the agent as the bare "Error executing tool ls". It now reads what failed, and
    the server keeps serving."""
    def broken_listing(self: Exporter, cid: CID, **_: Any) -> NoReturn:
        raise ValueError("a deliberate bug")

    (settings.allow_roots[0] / "d").mkdir()
    (settings.allow_roots[0] / "d" / "f").write_text("hello")
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(settings), mode="auto") as client:
            added = await client.call_tool(
                "store_model", {"source": str(settings.allow_roots[0] / "d")})
            cid = added.structured_content["root_cid"]
            # Broken after the store, whose answer lists the stored files the same way.
            monkeypatch.setattr(Exporter, "listing", broken_listing)
            crashed = await client.call_tool("ls", {"cid": cid})
            text = " ".join(getattr(c, "text", "") for c in crashed.content)
            assert crashed.is_error
            assert "internal error in ls: ValueError: a deliberate bug" in text, text
            again = await client.call_tool("fetch_cid", {"cid": cid + "/f"})  # still serving
            assert not again.is_error
