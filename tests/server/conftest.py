from __future__ import annotations

from pathlib import Path

import pytest

from ipfs_mcp.server.config import ServerSettings


@pytest.fixture
def settings(work: Path) -> ServerSettings:
    """Settings from the (test-isolated) environment: one allowed root, no P2P node."""
    return ServerSettings.load(allow_roots=[str(work)], p2p=False, inline_max=4096,
                               add_max=64 * 1024)


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    """Both protocol eras: auto negotiates 2026-07-28, legacy runs JSON-RPC at 2025-11-25."""
    return str(request.param)
