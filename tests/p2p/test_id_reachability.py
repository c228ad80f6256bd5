"""``ipfs-mcp id`` says the running node's reachability (AutoNAT's answer): on loopback, with
no peer able to dial it back, ``unknown``; a stopped node's card says nothing of it."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.cli.test_daemon import ipfs_mcp, start_daemon, stop

pytestmark = pytest.mark.anyio


async def test_id_shows_reachability_while_the_daemon_runs(tmp_path: Path) -> None:
    proc, printed = await start_daemon(tmp_path)
    try:
        card = json.loads((await ipfs_mcp(tmp_path, "id", "--json")).stdout)
        plain = (await ipfs_mcp(tmp_path, "id")).stdout.decode().splitlines()
    finally:
        assert await stop(proc, signal.SIGTERM) == 0
    assert card["reachability"] == "unknown"
    assert any(line.startswith("reach:    unknown") for line in plain), plain
    assert any(line.startswith("reach:    unknown") for line in printed), printed
    after = json.loads((await ipfs_mcp(tmp_path, "id", "--json")).stdout)
    assert after["running"] is False and after["reachability"] is None
