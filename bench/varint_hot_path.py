"""Local verified ``cat`` throughput and the varint decoder under it, in one run.

Prints: hashlib sha256 over the same bytes (the baseline), ``Exporter.read`` of a file added
to a fresh repo (every block read from disk and verified), and the cost of one varint decode
with ``multiformats.varint`` and with ``backends.varint``.

    python bench/varint_hot_path.py --size-mib 256
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from pathlib import Path

from multiformats import varint as mf_varint

from ipfs_mcp.backends.core import varint
from ipfs_mcp.backends.core.exporter import Exporter
from ipfs_mcp.backends.core.importer import Importer
from ipfs_mcp.backends.repo.repository import Repo


def _best(fn, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=256)
    args = parser.parse_args()
    size = args.size_mib << 20
    data = os.urandom(size)
    with tempfile.TemporaryDirectory() as tmp:
        repo = Repo(Path(tmp) / "repo", fsync=False)
        root = Importer(repo.blocks).add_bytes(data).cid_obj
        exporter = Exporter(repo.blocks.get)
        sha = _best(lambda: hashlib.sha256(data).digest())
        cat = _best(lambda: exporter.read(root))
        assert exporter.read(root) == data
    mib = size / (1 << 20)
    print(f"sha256 baseline:        {mib / sha:8.1f} MiB/s")
    print(f"verified local cat:     {mib / cat:8.1f} MiB/s  ({sha / cat:.2f}x sha256)")
    raw = varint.encode(262158)
    n = 100_000
    mf = _best(lambda: [mf_varint.decode_raw(raw) for _ in range(n)], 1) / n
    own = _best(lambda: [varint.decode(raw) for _ in range(n)], 1) / n
    print(f"varint decode: multiformats {mf * 1e6:.2f} us, ours {own * 1e6:.2f} us "
          f"({mf / own:.0f}x)")


if __name__ == "__main__":
    main()
