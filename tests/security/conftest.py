from __future__ import annotations

from pathlib import Path

import pytest

from .scene import Scene, make_scene


@pytest.fixture
def scene(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Scene:
    """The attack scene, with HF_HOME pointing into it for in-process servers."""
    made = make_scene(tmp_path)
    monkeypatch.setenv("HF_HOME", str(made.hf_home))
    return made
