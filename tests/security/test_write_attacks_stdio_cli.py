"""The same write attacks against ``ipfs-mcp serve`` over stdio (the SDK's client spawning
the real process), and against the ``ipfs-mcp`` command line where they apply."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from .scene import ATTACKER_TEXT, NOTES, Scene, tree_digest
from .test_write_attacks import run_attacks

CLI = [sys.executable, "-m", "ipfs_mcp.server.cli"]
TIMEOUT = 90


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_write_attacks_over_stdio(scene: Scene, mode: str) -> None:
    """The user allowed their home folder, which holds the HuggingFace home."""
    params = StdioServerParameters(command=CLI[0], args=[*CLI[1:], "serve", "--no-p2p"],
                                   env=scene.env([scene.home]))
    with anyio.fail_after(TIMEOUT):
        async with Client(params, mode=mode) as client:
            await run_attacks(client, scene, scene.home, parent_allowed=True)


def cli(scene: Scene, *args: str, ok: bool = True,
        cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run([*CLI, *args], capture_output=True, timeout=TIMEOUT,
                          env=scene.env([]), cwd=cwd, check=False)
    if ok:
        assert proc.returncode == 0, proc.stderr.decode()
    return proc


def test_cli_get_refuses_the_hub_cache_and_the_repo(scene: Scene) -> None:
    cid = cli(scene, "add", "-Q", str(scene.notes)).stdout.decode().strip()
    before = tree_digest(scene.hub)
    targets = [str(scene.victim_blob), str(scene.victim / "blobs" / ("0" * 64)),
               str(scene.work / "models-link" / "blobs" / ("1" * 64)),
               str(scene.work / "dangling"), str(scene.repo / "planted"),
               str(scene.hf_home)]  # replacing it would delete the hub cache
    for target in targets:
        proc = cli(scene, "get", cid, "-o", target, ok=False)
        err = proc.stderr.decode()
        assert proc.returncode == 1 and "which only ipfs-mcp writes" in err, (target, err)
        assert err.startswith("Error: ") and "Traceback" not in err
        proc = cli(scene, "dag", "export", cid, "-o", target, ok=False)
        assert proc.returncode == 1 and "which only ipfs-mcp writes" in proc.stderr.decode(), target
    # A relative path, from inside the project, through the symlinked folder.
    proc = cli(scene, "get", cid, "-o", "models-link/refs/main", ok=False, cwd=scene.work)
    assert proc.returncode == 1 and "which only ipfs-mcp writes" in proc.stderr.decode()
    assert tree_digest(scene.hub) == before
    assert not (scene.repo / "planted").exists()


def test_cli_get_replaces_like_kubo_and_says_what_it_replaced(scene: Scene) -> None:
    """A person at the command line asked for the path: Kubo's `get -o` replaces it, and so
    does ours, saying what was there."""
    other = scene.work / "other.txt"
    other.write_text(ATTACKER_TEXT)
    cid = cli(scene, "add", "-Q", str(other)).stdout.decode().strip()
    proc = cli(scene, "get", cid, "-o", str(scene.notes))
    assert scene.notes.read_text() == ATTACKER_TEXT
    assert f"replaced a file of {len(NOTES)} bytes at {scene.notes}" in proc.stderr.decode()
    fresh = scene.work / "fresh.txt"
    proc = cli(scene, "get", cid, "-o", str(fresh))
    assert fresh.read_text() == ATTACKER_TEXT and b"replaced" not in proc.stderr
    assert not any(p.name.startswith(".") for p in os.scandir(scene.work))  # no temp left
