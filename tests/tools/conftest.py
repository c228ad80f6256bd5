from __future__ import annotations

from pathlib import Path

import pytest

from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.tools.roots import AllowedRoots


@pytest.fixture
def hub(tmp_path: Path) -> Path:
    return tmp_path / "hub"


@pytest.fixture
def backend(tmp_path: Path, hub: Path) -> HFCacheBackend:
    return HFCacheBackend(Repo(tmp_path / "repo", fsync=False), hub_cache=hub)


@pytest.fixture
def roots(work: Path, hub: Path) -> AllowedRoots:
    return AllowedRoots.of([work, hub])
