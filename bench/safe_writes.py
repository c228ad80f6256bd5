"""What the safe write path costs: atomic, fsynced, size-checked ``get_to_path`` against a bare
stream of the same bytes into a file, in the same run; and how fast DAG bombs are refused.

    python bench/safe_writes.py [--size-mib 256] [--files 1000]

Contenders, on the same repo and CIDs:

* baseline: ``cat`` streamed into an open file (no size check, no fsync, no rename);
* ``get_to_path``: declared size checked against disk and limit, temp name, fsync, rename.

Then the two bombs of the tests (tests/backends/test_bombs.py): the 240 TB claim (refused
before a byte is written) and a 3000-deep chain (read through; per-level cost shown).
"""

from __future__ import annotations

import argparse
import io
import shutil
import tempfile
from functools import partial
from pathlib import Path

from _common import MIB, import_test_harness, mbps, random_file, timed

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.errors import WriteTooLarge
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.repo.repository import Repo


def _baseline(backend: HFCacheBackend, cid: str, out: Path) -> None:
    with open(out, "wb") as stream:
        for piece in backend.cat_stream(cid):
            stream.write(piece)


def _baseline_tree(backend: HFCacheBackend, cid: str, out: Path) -> None:
    out.mkdir()
    for entry in backend.ls(cid):
        _baseline(backend, cid_str(entry.cid), out / entry.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--files", type=int, default=1000)
    args = parser.parse_args()
    import_test_harness()
    from tests.backends.test_bombs import BOMB_SIZE, bomb_car, chain_car

    work = Path(tempfile.mkdtemp(prefix="safe-writes-"))
    try:
        backend = HFCacheBackend(Repo(work / "repo"))
        size = args.size_mib * MIB
        big = cid_str(backend.add_path(random_file(work / "big.bin", size)).root)
        folder = work / "folder"
        folder.mkdir()
        for i in range(args.files):
            (folder / f"f{i:05}.txt").write_bytes(f"file {i}\n".encode() * 100)
        tree = cid_str(backend.add_path(folder).root)

        print(f"| contender | {args.size_mib} MiB file MB/s | {args.files} files s |")
        print("|---|---|---|")
        def get(b: HFCacheBackend, c: str, o: Path) -> None:
            b.get_to_path(c, output_path=o)

        contenders = (("cat into a file (baseline)", _baseline, _baseline_tree, "base"),
                      ("get_to_path (checked, atomic, fsync)", get, get, "safe"))
        for name, one, many, tag in contenders:
            _, file_s = timed(partial(one, backend, big, work / f"out-{tag}.bin"))
            _, tree_s = timed(partial(many, backend, tree, work / f"tree-{tag}"))
            print(f"| {name} | {mbps(size, file_s):.0f} | {tree_s:.2f} |")

        root, blob = bomb_car()
        backend.dag_import(io.BytesIO(blob), pin_roots=False)
        target = work / "bomb-target"
        target.mkdir()

        def refuse() -> None:
            try:
                backend.get_to_path(cid_str(root), output_path=target / "model.bin")
            except WriteTooLarge:
                return
            raise AssertionError("the bomb was not refused")

        _, refuse_s = timed(refuse)
        assert not any(target.iterdir())
        print(f"\n240 TB claim ({BOMB_SIZE} bytes, 5 blocks): refused in {refuse_s * 1000:.1f} "
              "ms, nothing written")

        chain, blob = chain_car(3000)
        backend.dag_import(io.BytesIO(blob), pin_roots=False)
        data, cat_s = timed(lambda: backend.cat(cid_str(chain)))
        print(f"3000-deep chain: cat {cat_s:.2f} s ({cat_s / 3000 * 1e6:.0f} us per level), "
              f"{len(data)} bytes, no RecursionError")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
