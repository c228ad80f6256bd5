"""A gate: the whole tree passes mypy, as configured in pyproject.toml's [tool.mypy].

The installed package maps folders to names (``backends/`` is ``ipfs_mcp.backends``) through an
import hook that mypy does not follow, so the check reads the package through a tree of links
that spells those names, made afresh on each run under ``.mypy_cache/tree`` (ignored by git).
mypy keeps its cache beside it, so a second run reads only the files that changed.

``python -m tests.test_types`` prints the same report.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".mypy_cache"
TREE = CACHE / "tree"


def _link(link: Path, target: Path) -> None:
    if link.is_symlink() and link.resolve() == target.resolve():
        return
    if link.is_symlink():
        link.unlink()
    link.symlink_to(target, target_is_directory=True)


def link_tree() -> Path:
    """Lay ``TREE/ipfs_mcp/<name>`` -> each folder in the package map, and ``TREE/tests``.

    Returns:
        The ``ipfs_mcp`` folder of the tree, to hand to mypy.
    """
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_dir: dict[str, str] = config["tool"]["setuptools"]["package-dir"]
    package = TREE / "ipfs_mcp"
    package.mkdir(parents=True, exist_ok=True)
    for name, folder in package_dir.items():
        _link(package / name.removeprefix("ipfs_mcp."), ROOT / folder)
    # `from tests.x import ...` (the tests' other spelling of themselves).
    _link(TREE / "tests", ROOT / "tests")
    return package


def run_mypy() -> tuple[int, str]:
    """Check the package, the tests and the bench scripts.

    Returns:
        mypy's exit status and its report, with paths written as they are in the checkout.
    """
    package = link_tree()
    # Run from the tree: mypy names a file passed to it from its nearest base folder, and the
    # checkout itself must not be one (tests/backends would be tests.backends, not backends).
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(CACHE), "--no-error-summary", "--no-pretty",
         str(package), str(ROOT / "tests"), str(ROOT / "bench")],
        cwd=TREE, capture_output=True, text=True, timeout=600,
        env={**os.environ, "MYPY_FORCE_COLOR": "0"},
    )
    report = proc.stdout + proc.stderr
    for name in sorted(p.name for p in package.iterdir()):
        report = report.replace(f"ipfs_mcp/{name}/", f"{os.readlink(package / name)}/")
    # A file that is imported under two names (tests/x.py as `x` and as `tests.x`) is reported
    # twice: once is enough.
    report = "".join(dict.fromkeys(report.replace(f"{ROOT}/", "").splitlines(keepends=True)))
    return proc.returncode, report


def test_mypy_is_clean() -> None:
    status, report = run_mypy()
    assert status == 0, report


if __name__ == "__main__":
    status, report = run_mypy()
    print(report or "mypy: no issues", end="" if report else "\n")
    sys.exit(status)
