"""Shared fixtures: every test gets its own HF_HOME, so no test touches a real cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from ipfs_mcp.backends import router


@pytest.fixture(autouse=True)
def isolated_hf_home(tmp_path_factory: pytest.TempPathFactory,
                     monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("hf_home")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    for name in ("IPFS_BACKEND", "IPFS_API", "KUBO_CMD", "ENABLE_HF_CACHE", "ENABLE_IPFS_KIT",
                 "IPFS_KIT_DISABLE", "IPFS_ROUTER_CACHE", "IPFS_API_AUTHORIZATION",
                 "IPFS_API_TIMEOUT", "IPFS_READ_FALLBACK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    router.reset()
    yield home
    router.reset()
