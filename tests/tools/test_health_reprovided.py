"""Content added with the repo alone (as the CLI adds, no node running) is provided once the
server's node runs, and the health resource says how many CIDs the pins announced: an
agent diagnosing "nobody finds my content" sees whether the node provides it."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest
from mcp import Client

from ipfs_mcp.backends.core.importer import Importer
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.server.app import build_server
from ipfs_mcp.server.config import ServerSettings
from ipfs_mcp.tools import models

pytestmark = pytest.mark.anyio


async def test_health_shows_the_pins_reprovided_at_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IPFS_", "HF_"))}
    env["HF_HOME"] = str(tmp_path / "home")
    (tmp_path / "work").mkdir()
    settings = ServerSettings.load(env, allow_roots=[str(tmp_path / "work")], role="worker")
    repo = Repo(settings.backend.repo_path, fsync=False)
    root = Importer(sink=repo.blocks).add_bytes(os.urandom(300_000)).cid_obj
    repo.pin(root)

    with anyio.fail_after(60):
        async with Client(build_server(settings), mode="auto") as client:
            health = None
            for _ in range(200):  # until the start-up round has run; bounded by the above
                contents = (await client.read_resource("ipfs-mcp://health")).contents
                health = models.Health.model_validate_json(contents[0].text)  # type: ignore[union-attr]
                if health.reprovided:
                    break
                await anyio.sleep(0.05)
    assert health is not None and health.network_status == "running"
    assert health.reprovided == 1  # worker: the pin's root
