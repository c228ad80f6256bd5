"""Add through a 3-peer IPFS Cluster with replication 2 vs one Kubo 0.43 and the embedded repo.

Same random file, same run, same CID required from all three:
  * the embedded ``hf_cache`` backend (fsync);
  * the Kubo RPC backend on one of the cluster's Kubo daemons (one copy);
  * the ``cluster`` backend: streamed ``/add`` with ``replication_min=replication_max=2``,
    which returns once two peers report the pin (two copies, one over the cluster's RPC).
Every daemon is built by tests/interop/gobuild.py and runs on 127.0.0.1. Nothing is
asserted on time: this prints figures.

    python bench/cluster_add.py [--size-mib 256]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _common import MIB, import_test_harness, mbps, random_file, timed

from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.remote.cluster import ClusterBackend
from ipfs_mcp.backends.remote.kubo.backend import KuboBackend
from ipfs_mcp.backends.repo.repository import Repo


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256)
    args = parser.parse_args()
    import_test_harness()
    from tests.interop.cluster import Cluster
    from tests.interop.gobuild import GoBuildError, cluster_binaries, kubo_binary

    try:
        kubo_binary()
        cluster_binaries()
    except GoBuildError as exc:
        print(f"cannot build Kubo 0.43 / IPFS Cluster: {exc}", file=sys.stderr)
        return 2
    size = args.size_mib * MIB
    with tempfile.TemporaryDirectory(prefix="cluster-bench-") as tmp:
        work = Path(tmp)
        source = random_file(work / "input.bin", size)
        with Cluster(work / "cluster", peers=3) as cluster:
            print(f"cluster of 3 (each with its own Kubo 0.43) up in "
                  f"{cluster.start_seconds:.1f} s")
            peer = cluster.peers[1]
            kubo = KuboBackend.over_http(cluster.peers[2].kubo.api_url, timeout=3600)
            backend = ClusterBackend.connect(peer.rest_url, kubo_api=peer.proxy_url,
                                             timeout=3600)
            embedded = HFCacheBackend(Repo(work / "repo"))
            rows = []
            for name, add in (
                    ("embedded hf_cache (1 copy)", lambda s: embedded.add_stream(s)),
                    ("Kubo 0.43 RPC (1 copy)", lambda s: kubo.add_stream(s)),
                    ("cluster, replication 2", lambda s: backend.add_stream(
                        s, replication_min=2, replication_max=2))):
                with open(source, "rb") as stream:
                    cid, seconds = timed(lambda a=add, st=stream: a(st))
                rows.append((name, cid, seconds))
            pinned = len(backend.pin_status(rows[-1][1])[0].pinned_on())
            backend.close()
            kubo.close()
    print(f"add, {args.size_mib} MiB random file, CIDv0")
    for name, cid, seconds in rows:
        print(f"  {name:<28} {mbps(size, seconds):8.1f} MB/s  {seconds:7.2f} s  {cid}")
    print(f"  cluster pin held by {pinned} peers")
    cids = {cid for _, cid, _ in rows}
    print(f"  same CID from all: {'yes' if len(cids) == 1 else 'NO'}")
    return 0 if len(cids) == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
