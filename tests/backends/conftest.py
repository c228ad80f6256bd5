from __future__ import annotations

from pathlib import Path

import pytest

from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.repo.repository import Repo


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path / "repo")


@pytest.fixture
def backend(repo: Repo, tmp_path: Path) -> HFCacheBackend:
    return HFCacheBackend(repo, hub_cache=tmp_path / "hub")
