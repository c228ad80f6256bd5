"""Peak RSS of adding and getting a large file, each in a fresh process.

Target (issue 2): under 200 MiB for a 2 GiB file, both ways. The importer and exporter
stream block by block, so peak memory should not grow with the file.

    python bench/rss.py [--size-mib 2048]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import MIB, mbps, random_file, timed

ADD = """
import sys
from pathlib import Path
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.backends.core.cids import cid_str
print(cid_str(HFCacheBackend(Repo(Path(sys.argv[1]))).add_path(sys.argv[2]).root))
"""
GET = """
import sys
from pathlib import Path
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.repo.repository import Repo
HFCacheBackend(Repo(Path(sys.argv[1]))).get_to_path(sys.argv[2], output_path=sys.argv[3])
"""
BASE = "import ipfs_mcp.backends.hf_cache"


def peak_rss_mib(code: str, *args: str) -> tuple[str, float, float]:
    """Run ``code`` in a new interpreter; return its stdout, peak RSS (MiB) and seconds."""
    # The child reports its own peak, so earlier children cannot mask it.
    report = ("\nimport resource, sys\n"
              "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)")
    proc, seconds = timed(lambda: subprocess.run([sys.executable, "-c", code + report, *args],
                                                 capture_output=True, text=True, check=True))
    peak_kib = int(proc.stderr.strip().splitlines()[-1])
    return proc.stdout.strip(), peak_kib / 1024, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=2048)
    args = parser.parse_args()
    size = args.size_mib * MIB
    with tempfile.TemporaryDirectory() as tmp:
        data = random_file(Path(tmp) / "data.bin", size)
        _, base, _ = peak_rss_mib(BASE)
        cid, add_rss, t_add = peak_rss_mib(ADD, f"{tmp}/repo", str(data))
        _, get_rss, t_get = peak_rss_mib(GET, f"{tmp}/repo", cid, f"{tmp}/out.bin")
        assert (Path(tmp) / "out.bin").stat().st_size == size
        print(f"peak RSS, {args.size_mib} MiB file (target < 200 MiB)")
        print(f"  interpreter + imports only   {base:7.1f} MiB")
        print(f"  add (stored, fsync)          {add_rss:7.1f} MiB  {mbps(size, t_add):7.1f} MB/s")
        print(f"  get to a file                {get_rss:7.1f} MiB  {mbps(size, t_get):7.1f} MB/s")


if __name__ == "__main__":
    main()
