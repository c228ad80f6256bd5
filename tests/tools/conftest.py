from __future__ import annotations

from pathlib import Path

import pytest

from ipfs_mcp.tools.roots import AllowedRoots
from tests.hf_fixtures import backend_fixture, hub_fixture  # noqa: F401 - found by name


@pytest.fixture
def roots(work: Path, hub: Path) -> AllowedRoots:
    return AllowedRoots.of([work, hub])
