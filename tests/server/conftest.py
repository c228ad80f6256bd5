from __future__ import annotations

from pathlib import Path

import pytest

from ipfs_mcp.server.config import ServerSettings


@pytest.fixture
def anyio_backend() -> str:
    # The server, the tools and py-libp2p share one trio loop; anyio's pytest plugin runs
    # each async test on it.
    return "trio"


@pytest.fixture
def work(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


@pytest.fixture
def settings(work: Path) -> ServerSettings:
    """Settings from the (test-isolated) environment: one allowed root, no P2P node."""
    return ServerSettings.load(allow_roots=[str(work)], p2p=False, inline_max=4096,
                               add_max=64 * 1024)


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    """Both protocol eras: auto negotiates 2026-07-28, legacy runs JSON-RPC at 2025-11-25."""
    return str(request.param)
