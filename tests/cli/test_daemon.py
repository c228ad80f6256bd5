"""``ipfs-mcp daemon`` and ``ipfs-mcp id``, as real subprocesses on 127.0.0.1.

The daemon runs with stdin closed (as under ``&`` or a service manager); every wait is on
its own output or its exit, under a deadline.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import httpx
import pytest
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream

from tests.cli.test_cli_network_get import command_env

pytestmark = pytest.mark.anyio

DEADLINE = 90  # seconds for the daemon to start or stop, on a loaded 2-core box
COMMAND = [sys.executable, "-m", "ipfs_mcp.server.cli"]


async def ipfs_mcp(home: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    with anyio.fail_after(DEADLINE):
        return await anyio.run_process([*COMMAND, *args], env=command_env(home), check=False)


async def start_daemon(home: Path, env: dict[str, str] | None = None
                       ) -> tuple[Process, list[str]]:
    """A daemon on ``home``'s repo, with stdin closed; its card's lines once it is ready."""
    proc = await anyio.open_process([*COMMAND, "daemon"], env=command_env(home, env),
                                    stdin=subprocess.DEVNULL)
    lines: list[str] = []
    assert proc.stdout is not None
    with anyio.fail_after(DEADLINE):
        buffered = ""
        async for text in TextReceiveStream(proc.stdout):
            buffered += text
            *done, buffered = buffered.split("\n")
            lines += done
            if any(line.startswith("daemon ready") for line in lines):
                return proc, lines
    raise AssertionError(f"the daemon exited before it was ready: {lines}")


async def stop(proc: Process, how: signal.Signals) -> int:
    proc.send_signal(how)
    with anyio.fail_after(DEADLINE):
        return await proc.wait()


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT])
async def test_daemon_says_where_it_is_and_stops_cleanly(tmp_path: Path,
                                                         how: signal.Signals) -> None:
    proc, printed = await start_daemon(tmp_path)
    try:
        card = json.loads((await ipfs_mcp(tmp_path, "id", "--json")).stdout)
        assert card["running"] is True and card["peer_id"].startswith("12D3KooW")
        assert f"peer id:  {card['peer_id']}" in printed
        assert any(a.endswith(f"/p2p/{card['peer_id']}") for a in card["addresses"])
        assert f"MCP:      {card['mcp']}" in printed
        # The URLs are real: the gateway answers, and MCP refuses a bare GET as the SDK does.
        async with httpx.AsyncClient(timeout=DEADLINE) as client:
            landing = await client.get(f"{card['gateway']}/ipfs/bafkqaaa")
            assert landing.status_code == 200
            assert (await client.get(card["mcp"])).status_code in (400, 405, 406)
            scrape = await client.get(card["metrics"])
            assert scrape.status_code == 200 and "ipfs_mcp_node_up 1.0" in scrape.text
            # A web page whose name was rebound to 127.0.0.1 cannot read them.
            rebound = await client.get(card["metrics"], headers={"Host": "evil.example"})
            assert rebound.status_code == 421
        # A second daemon on the same repo is refused in one line naming the first.
        second = await ipfs_mcp(tmp_path, "daemon")
        err = second.stderr.decode().strip()
        assert second.returncode == 1 and len(err.splitlines()) == 1, err
        assert "already running" in err and f"pid {proc.pid}" in err
    finally:
        code = await stop(proc, how)
    assert code == 0
    assert not (tmp_path / "ipfs" / "daemon.json").exists()
    # Stopped: `id` still knows the peer id (from the identity), and says it is not running.
    after = json.loads((await ipfs_mcp(tmp_path, "id", "--json")).stdout)
    assert after["peer_id"] == card["peer_id"] and after["running"] is False
    assert after["mcp"] is None and after["addresses"]


async def test_a_daemon_without_its_p2p_node_says_so(tmp_path: Path) -> None:
    proc, printed = await start_daemon(tmp_path, {"IPFS_MCP_P2P": "0"})
    try:
        card = json.loads((await ipfs_mcp(tmp_path, "id", "--json")).stdout)
        assert card["running"] is True and card["addresses"] == []
        assert card["p2p"].startswith("disabled")
        text = (await ipfs_mcp(tmp_path, "id")).stdout.decode()
        role = next(line for line in text.splitlines() if line.startswith("role:"))
        assert "daemon running; P2P node disabled" in role, role
        assert any(line.startswith("role:") and "P2P node disabled" in line
                   for line in printed)
    finally:
        assert await stop(proc, signal.SIGTERM) == 0


async def test_a_card_left_by_a_killed_daemon_is_not_believed(tmp_path: Path) -> None:
    proc, _ = await start_daemon(tmp_path)
    code = await stop(proc, signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert (tmp_path / "ipfs" / "daemon.json").exists()  # nobody removed it
    card = json.loads((await ipfs_mcp(tmp_path, "id", "--json")).stdout)
    assert card["running"] is False and card["mcp"] is None
    proc, _ = await start_daemon(tmp_path)  # and it does not stop a new daemon
    assert await stop(proc, signal.SIGTERM) == 0


async def test_metrics_are_behind_the_token_and_the_card_never_holds_it(tmp_path: Path
                                                                        ) -> None:
    token = "a-token-only-the-test-knows"
    proc, printed = await start_daemon(tmp_path, {"IPFS_MCP_TOKEN": token})
    try:
        card_file = (tmp_path / "ipfs" / "daemon.json").read_text()
        card = json.loads(card_file)
        assert token not in card_file and not any(token in line for line in printed)
        async with httpx.AsyncClient(timeout=DEADLINE) as client:
            assert (await client.get(card["metrics"])).status_code == 401
            scrape = await client.get(card["metrics"],
                                      headers={"Authorization": f"Bearer {token}"})
            assert scrape.status_code == 200 and "ipfs_mcp_node_up" in scrape.text
    finally:
        assert await stop(proc, signal.SIGTERM) == 0
