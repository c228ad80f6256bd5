"""Add and cat throughput through the Kubo RPC backend versus our embedded backend.

    python bench/kubo_rpc_throughput.py --size-mib 256             # starts Kubo 0.43
    python bench/kubo_rpc_throughput.py --api http://127.0.0.1:5001  # an existing Kubo

Same random file, same run, same CID required from both (CIDv0 defaults, and CIDv1 with
``--cid-version 1``). "add" streams the file from disk; "cat" reads it back whole, every
byte verified on our side (through the daemon's ``cat``, leaf by leaf, for RPC). The
embedded backend writes its repo with fsync, as it does in use. Nothing is asserted: this
prints figures.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _common import MIB, mbps, random_file, timed
from _programs import kubo043_binary

from ipfs_mcp.backends.core.importer import ImportOptions
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.remote.kubo.backend import KuboBackend
from ipfs_mcp.backends.repo.repository import Repo


def drain(chunks: object) -> int:
    total = 0
    for piece in chunks:  # type: ignore[attr-defined]
        total += len(piece)
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--api", help="an existing Kubo RPC API (default: start Kubo 0.43)")
    parser.add_argument("--cid-version", type=int, default=0, choices=(0, 1))
    args = parser.parse_args()
    size = args.size_mib * MIB
    options = ImportOptions(cid_version=args.cid_version)

    with tempfile.TemporaryDirectory(prefix="kubo-bench-") as tmp:
        work = Path(tmp)
        source = random_file(work / "input.bin", size)
        daemon = None
        if args.api:
            api, label = args.api, f"Kubo RPC at {args.api}"
        else:
            binary = kubo043_binary()
            if binary is None:
                return 2
            from tests.interop.kubo_daemon import KuboDaemon

            daemon = KuboDaemon(work / "kubo", binary=binary)
            api, label = daemon.api_url, "Kubo 0.43 RPC (127.0.0.1)"
        try:
            rpc = KuboBackend.over_http(api, timeout=600)
            embedded = HFCacheBackend(Repo(work / "repo"))
            rows = []
            for name, backend in (("embedded hf_cache", embedded), (label, rpc)):
                with open(source, "rb") as stream:
                    cid, add_s = timed(lambda b=backend, s=stream: b.add_stream(s, options=options))
                got, cat_s = timed(lambda b=backend, c=cid: drain(b.cat_stream(c)))
                assert got == size, f"{name} returned {got} bytes of {size}"
                rows.append((name, cid, mbps(size, add_s), mbps(size, cat_s)))
            rpc.close()
        finally:
            if daemon is not None:
                daemon.close()

    print(f"{args.size_mib} MiB random file, CIDv{args.cid_version}")
    print("| backend | add MB/s | cat MB/s (verified) |")
    print("|---|---|---|")
    for name, _, add_rate, cat_rate in rows:
        print(f"| {name} | {add_rate:.0f} | {cat_rate:.0f} |")
    cids = {cid for _, cid, _, _ in rows}
    print(f"same CID from both: {'yes' if len(cids) == 1 else 'NO'} ({', '.join(sorted(cids))})")
    return 0 if len(cids) == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
