"""Fixtures for tests of the embedded backend beside a Hugging Face cache.

* ``hub``: the test's HF hub cache folder (``tmp_path / "hub"``; not made until a test
  lays a model out in it);
* ``backend``: an embedded backend on a fresh repo (no fsync) that adds from that cache.

A module brings them in with ``from tests.hf_fixtures import backend_fixture, hub_fixture``;
pytest finds them under their fixture names.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.repo.repository import Repo

__all__ = ["backend_fixture", "hub_fixture"]


@pytest.fixture(name="hub")
def hub_fixture(tmp_path: Path) -> Path:
    return tmp_path / "hub"


@pytest.fixture(name="backend")
def backend_fixture(tmp_path: Path, hub: Path) -> HFCacheBackend:
    return HFCacheBackend(Repo(tmp_path / "repo", fsync=False), hub_cache=hub)
