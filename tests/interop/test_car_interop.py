"""CAR files move both ways between ipfs-mcp and npm ipfs-car (the standard JS CAR tool)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.core.importer import ImportOptions
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.repo.repository import Repo

from .jsenv import JS_DIR, js_skip_reason

pytestmark = [pytest.mark.interop,
              pytest.mark.skipif(js_skip_reason() is not None, reason=str(js_skip_reason()))]


def ipfs_car(*args: str) -> str:
    proc = subprocess.run(["node", str(JS_DIR / "node_modules" / ".bin" / "ipfs-car"), *args],
                          capture_output=True, text=True, timeout=120, cwd=JS_DIR)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"aaa\n")
    (root / "sub" / "big.bin").write_bytes(os.urandom(1_300_000))
    (root / "sub" / "deeper" / "empty").write_bytes(b"")
    return root


def _same_tree(a: Path, b: Path) -> None:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_ipfs_car_unpacks_our_export(tree: Path, tmp_path: Path) -> None:
    backend = HFCacheBackend(Repo(tmp_path / "repo"))
    for options in (ImportOptions(), ImportOptions(cid_version=1)):
        root = cid_str(backend.add_path(tree, options=options).root)
        car = tmp_path / f"ours-v{options.cid_version}.car"
        backend.dag_export(root, car)
        assert ipfs_car("roots", str(car)) == root
        out = tmp_path / f"unpacked-v{options.cid_version}"
        ipfs_car("unpack", str(car), "--output", str(out))
        _same_tree(tree, out)


def test_we_import_what_ipfs_car_packs(tree: Path, tmp_path: Path) -> None:
    car = tmp_path / "theirs.car"
    root = ipfs_car("pack", str(tree), "--no-wrap", "--output", str(car))
    backend = HFCacheBackend(Repo(tmp_path / "repo"))
    with open(car, "rb") as stream:
        report = backend.dag_import(stream)
    assert [cid_str(r) for r in report.roots] == [root]
    assert [cid_str(p.cid) for p in backend.repo.pins] == [root]
    backend.get_to_path(root, output_path=tmp_path / "out")
    _same_tree(tree, tmp_path / "out")
    # ipfs-car packs CIDv1 with raw leaves and 1 MiB chunks: our importer agrees
    ours = backend.add_path(tree, pin=False,
                            options=ImportOptions(cid_version=1, chunk_size=1024 * 1024))
    assert cid_str(ours.root) == root
