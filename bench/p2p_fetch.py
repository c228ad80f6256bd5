"""P2P fetch benchmarks: throughput, peak RSS, time to first byte, find_providers latency.

    python bench/p2p_fetch.py [--sizes-mib 64,1024] [--no-kubo] [--fsync]

For each size, one ipfs-mcp process adds a random file (Kubo's defaults: CIDv0,
256 KiB chunks) and serves it; a second ipfs-mcp process connects over loopback and fetches
the whole DAG into its own repo, reporting time to first byte (root block and first leaf),
throughput and its own peak RSS. In the same run two embedded Kubo 0.22 processes do the
same (``ipfs get`` into a file), for the ratio. Last, five of our nodes in one process
measure the median ``find_providers`` latency through the DHT.

Figures are printed; nothing is asserted. Repos are created with ``fsync=False`` unless
``--fsync`` (Kubo's flatfs syncs by default, so ``--fsync`` is the like-for-like setting).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import MIB, ROOT, import_test_harness, mbps, random_file

SELF = Path(__file__).resolve()


# -- child processes -----------------------------------------------------------------------
def _serve(repo_dir: str, file: str, fsync: bool) -> None:
    import trio

    from ipfs_mcp.backends.cids import cid_str
    from ipfs_mcp.backends.importer import Importer
    from ipfs_mcp.backends.repo import Repo
    from ipfs_mcp.p2p import NodeConfig, open_node

    repo = Repo(Path(repo_dir), fsync=fsync)
    root = Importer(sink=repo.blocks).add_path(Path(file)).root

    async def main() -> None:
        async with open_node(repo, NodeConfig()) as node:
            print(json.dumps({"addr": node.addrs[0], "cid": cid_str(root)}), flush=True)
            # Serve until the parent closes our stdin.
            await trio.to_thread.run_sync(sys.stdin.read)

    trio.run(main)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"server cpu {usage.ru_utime + usage.ru_stime:.2f} s", file=sys.stderr)


def _fetch(repo_dir: str, addr: str, cid_text: str, fsync: bool) -> None:
    import trio

    from ipfs_mcp.backends.cids import parse_cid
    from ipfs_mcp.backends.dag import links_of
    from ipfs_mcp.backends.repo import Repo
    from ipfs_mcp.p2p import NodeConfig, open_node

    repo = Repo(Path(repo_dir), fsync=fsync)
    root = parse_cid(cid_text)

    async def main() -> dict[str, float]:
        async with open_node(repo, NodeConfig(role="leecher")) as node:
            await node.connect_peer(addr)
            start = time.perf_counter()
            cid, block = root, await node.retrieve_block(root)
            while links := links_of(cid, block):  # down the left edge to the first leaf
                cid = links[0]
                block = await node.retrieve_block(cid)
            ttfb = time.perf_counter() - start
            report = await node.retrieve_content(root)
            total = time.perf_counter() - start
            return {"ttfb": ttfb, "seconds": total, "blocks": report.blocks}

    result = trio.run(main)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["peak_rss_mib"] = usage.ru_maxrss / 1024
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    print(json.dumps(result), flush=True)


# -- the figures ---------------------------------------------------------------------------
def ours(file: Path, size: int, work: Path, fsync: bool) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "bench")}
    server = subprocess.Popen(
        [sys.executable, str(SELF), "_serve", str(work / "serve"), str(file), str(int(fsync))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert server.stdout is not None
        info = json.loads(server.stdout.readline())
        out = subprocess.run(
            [sys.executable, str(SELF), "_fetch", str(work / "fetch"), info["addr"],
             info["cid"], str(int(fsync))],
            capture_output=True, text=True, env=env, timeout=3600, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        if server.stdin:
            server.stdin.close()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    result["mbps"] = mbps(size, result["seconds"])
    return result


def kubo_to_kubo(file: Path, size: int, work: Path) -> dict[str, float] | None:
    import_test_harness()
    from tests.interop.kubo import KuboNode, kubo_skip_reason

    if kubo_skip_reason():
        print(f"  kubo: skipped ({kubo_skip_reason()})")
        return None
    with KuboNode(work / "kubo-a") as a, KuboNode(work / "kubo-b") as b:
        cid = a.add(file, timeout=3600)
        b.connect(a.dial_addr)
        start = time.perf_counter()
        b.download(cid, work / "kubo-got", timeout=3600)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "mbps": mbps(size, seconds)}


def find_providers_latency(rounds: int = 20) -> float:
    import trio

    from ipfs_mcp.backends.cids import cid_of_block
    from ipfs_mcp.backends.repo import Repo
    from ipfs_mcp.p2p import NodeConfig, Role, open_node

    async def main() -> float:
        from contextlib import AsyncExitStack

        with tempfile.TemporaryDirectory() as tmp:
            async with AsyncExitStack() as stack:
                nodes = []
                for i in range(5):
                    role = Role.MASTER if i == 0 else Role.WORKER
                    repo = Repo(Path(tmp) / f"n{i}", fsync=False)
                    nodes.append(await stack.enter_async_context(
                        open_node(repo, NodeConfig(role=role))))
                for node in nodes[1:]:
                    await node.connect_peer(nodes[0].addrs[0])
                times = []
                for r in range(rounds):
                    data = f"bench block {r}".encode()
                    provider = nodes[1 + r % 4]
                    cid = cid_of_block(data)
                    provider.blockstore.put(cid, data)
                    await provider.announce_content(cid)
                    asker = nodes[1 + (r + 1) % 4]
                    start = time.perf_counter()
                    found = await asker.find_providers(cid)
                    times.append(time.perf_counter() - start)
                    assert [p.peer_id for p in found] == [provider.peer_id]
                return statistics.median(times)

    return trio.run(main)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mib", default="64,1024")
    parser.add_argument("--no-kubo", action="store_true")
    parser.add_argument("--fsync", action="store_true")
    args = parser.parse_args()
    for size_mib in (int(s) for s in args.sizes_mib.split(",")):
        size = size_mib * MIB
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            file = random_file(work / "data.bin", size)
            print(f"{size_mib} MiB file, fsync={args.fsync}:")
            us = ours(file, size, work, args.fsync)
            print(f"  ipfs-mcp -> ipfs-mcp: {us['mbps']:.1f} MiB/s ({us['seconds']:.2f} s, "
                  f"{us['blocks']:.0f} blocks), time to first byte {us['ttfb'] * 1000:.1f} ms, "
                  f"fetcher peak RSS {us['peak_rss_mib']:.0f} MiB, CPU {us['cpu_seconds']:.1f} s")
            if not args.no_kubo:
                kubo = kubo_to_kubo(file, size, work)
                if kubo:
                    print(f"  kubo -> kubo:         {kubo['mbps']:.1f} MiB/s "
                          f"({kubo['seconds']:.2f} s)")
                    print(f"  ratio ours/kubo:      {us['mbps'] / kubo['mbps']:.2f}")
    print(f"find_providers across 5 nodes: median {find_providers_latency() * 1000:.1f} ms")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_serve":
        _serve(sys.argv[2], sys.argv[3], sys.argv[4] == "1")
    elif len(sys.argv) > 1 and sys.argv[1] == "_fetch":
        _fetch(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] == "1")
    else:
        main()
