"""The wheel must carry every module and prompt: `pip install .` is the README's first step."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"backends": "ipfs_mcp.backends", "p2p": "ipfs_mcp.p2p", "tools": "ipfs_mcp.tools",
           "server": "ipfs_mcp.server", "prompts": "ipfs_mcp.prompts"}


def test_every_package_folder_is_listed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    found = set()
    for folder, package in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([package, *rel.parts]))
    assert found == listed


def test_wheel_contains_modules_and_prompt_texts(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q",
                    "-w", str(tmp_path)], check=True, timeout=300)
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder, package in FOLDERS.items():
        for source in (ROOT / folder).rglob("*"):
            if source.suffix in (".py", ".md") and "__pycache__" not in source.parts:
                rel = source.relative_to(ROOT / folder)
                assert "/".join([*package.split("."), *rel.parts]) in names, rel
