"""P2P fetch, node to node: ours against Kubo 0.43 -> Kubo 0.43 in the same run.

    python bench/p2p_fetch.py [--size-mib 1024] [--runs 1] [--no-fsync] [--no-kubo]
                              [--from-kubo] [--profile DIR]

One random file (Kubo's defaults: CIDv0, 256 KiB chunks). One ipfs-mcp process adds it and
serves it; a second ipfs-mcp process connects over loopback and fetches the whole DAG into
its own repo. It reports time to first byte (the root and the left edge down to the first
leaf), throughput, its own peak RSS and CPU. Then two Kubo 0.43 daemons (the harness in
tests/interop/kubo_daemon.py) do the same with the same file: one adds it, the other
connects, reads the first byte (``cat``) and then ``pin add``s the whole DAG into its
blockstore; its peak RSS is the daemon's ``VmHWM``. Last, five of our nodes in one process
measure the median ``find_providers`` latency through the DHT.

With ``--from-kubo`` the provider is a Kubo 0.43 daemon instead (no HTTP address, so our
node fetches over bitswap), against Kubo -> Kubo in the same run; ``--profile DIR`` samples
our fetching process with py-spy (200 Hz, ``--threads --idle``) and prints its busiest
functions.

fsync is on by default on both sides: our repos sync every block, and Kubo's flatfs is set
to ``sync: true`` (its default spec here says false). Figures are printed; nothing is
asserted. On a shared box, run it 2-3 times (``--runs``) and report the range.
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
from typing import Any

import httpx
from _common import MIB, ROOT, import_test_harness, mbps, random_file

SELF = Path(__file__).resolve()


# -- child processes -----------------------------------------------------------------------
def _serve(repo_dir: str, file: str, fsync: bool) -> None:
    import trio

    from ipfs_mcp.backends.core.cids import cid_str
    from ipfs_mcp.backends.core.importer import Importer
    from ipfs_mcp.backends.repo.repository import Repo
    from ipfs_mcp.p2p import NodeConfig, open_node

    repo = Repo(Path(repo_dir), fsync=fsync)
    root = Importer(sink=repo.blocks).add_path(Path(file)).root

    async def main() -> None:
        async with open_node(repo, NodeConfig()) as node:
            print(json.dumps({"addr": node.addrs[0], "cid": cid_str(root)}), flush=True)
            # Serve until the parent closes our stdin.
            await trio.to_thread.run_sync(sys.stdin.read)

    trio.run(main)
    usage = resource.getrusage(resource.RUSAGE_SELF)  # the add included
    print(json.dumps({"server_cpu": usage.ru_utime + usage.ru_stime}), flush=True)


def _fetch(repo_dir: str, addr: str, cid_text: str, fsync: bool) -> None:
    import trio

    from ipfs_mcp.backends.core.cids import parse_cid
    from ipfs_mcp.backends.core.dag import links_of
    from ipfs_mcp.backends.repo.repository import Repo
    from ipfs_mcp.p2p import NodeConfig, open_node

    repo = Repo(Path(repo_dir), fsync=fsync)
    root = parse_cid(cid_text)

    async def main() -> dict[str, float]:
        async with open_node(repo, NodeConfig(role="leecher")) as node:
            await node.connect_peer(addr)
            cpu = time.process_time()  # the fetch's own CPU, not the start-up's imports
            system = resource.getrusage(resource.RUSAGE_SELF).ru_stime
            start = time.perf_counter()
            cid, block = root, await node.retrieve_block(root)
            while links := links_of(cid, block):  # down the left edge to the first leaf
                cid = links[0]
                block = await node.retrieve_block(cid)
            ttfb = time.perf_counter() - start
            report = await node.retrieve_content(root)
            total = time.perf_counter() - start
            cpu = time.process_time() - cpu
            system = resource.getrusage(resource.RUSAGE_SELF).ru_stime - system
            ledgers = node.bitswap.ledgers().values()
            return {"ttfb": ttfb, "seconds": total, "blocks": report.blocks,
                    "messages": sum(ledger.messages_received for ledger in ledgers),
                    "cpu_seconds": cpu,
                    "sys_seconds": system}  # fsync and socket work in the kernel

    result = trio.run(main)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result), flush=True)


# -- the figures ---------------------------------------------------------------------------
def ours(file: Path, size: int, work: Path, fsync: bool) -> dict[str, Any]:
    # An outer PYTHONPATH is kept behind bench/ (to run another checkout's code, say).
    paths = [str(ROOT / "bench"), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
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
    assert server.stdout is not None
    result.update(json.loads(server.stdout.read().strip().splitlines()[-1]))
    result["mbps"] = mbps(size, result["seconds"])
    result["cid"] = info["cid"]
    return result


def _fetch_from(addr: str, cid: str, work: Path, fsync: bool,
                profile: Path | None) -> dict[str, Any]:
    """Our fetching process (``_fetch``) against the provider at ``addr``, under py-spy
    when ``profile`` names a file for its samples."""
    paths = [str(ROOT / "bench"), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    command = [sys.executable, str(SELF), "_fetch", str(work / "fetch"), addr, cid,
               str(int(fsync))]
    if profile is not None:
        command = ["py-spy", "record", "--rate", "200", "--threads", "--idle", "--format",
                   "raw", "-o", str(profile), "--", *command]
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600,
                         check=True)
    figures = [line for line in out.stdout.splitlines() if line.startswith("{")]
    return dict(json.loads(figures[-1]))


def kubo_to_ours(file: Path, size: int, work: Path, fsync: bool,
                 profile: Path | None = None) -> dict[str, Any] | None:
    """A Kubo 0.43 daemon adds ``file``; our node fetches it over bitswap (Kubo offers no
    HTTP address), as ``_fetch`` does from our own node."""
    import_test_harness()
    from tests.interop.gobuild import GoBuildError
    from tests.interop.kubo_daemon import KuboDaemon

    try:
        with KuboDaemon(work / "kubo-p", config={"Datastore.Spec": _flatfs_spec(fsync)}) as a:
            cid = a.add_path(file)
            result = _fetch_from(a.dial_addr, cid, work, fsync, profile)
    except GoBuildError as exc:
        print(f"  kubo: skipped ({exc})")
        return None
    result["mbps"] = mbps(size, result["seconds"])
    result["cid"] = cid
    return result


def _flatfs_spec(sync: bool) -> dict[str, object]:
    """Kubo's default datastore spec with flatfs ``sync`` set as asked."""
    return {"type": "mount", "mounts": [
        {"mountpoint": "/blocks", "path": "blocks", "prefix": "flatfs.datastore",
         "shardFunc": "/repo/flatfs/shard/v1/next-to-last/2", "sync": sync, "type": "flatfs"},
        {"mountpoint": "/", "path": "datastore", "prefix": "leveldb.datastore",
         "compression": "none", "type": "levelds"}]}


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def kubo_to_kubo(file: Path, size: int, work: Path, fsync: bool, cid: str
                 ) -> dict[str, float] | None:
    import_test_harness()
    from tests.interop.gobuild import GoBuildError
    from tests.interop.kubo_daemon import KuboDaemon

    config = {"Datastore.Spec": _flatfs_spec(fsync)}
    try:
        with KuboDaemon(work / "kubo-a", config=config) as a, \
                KuboDaemon(work / "kubo-b", config=config) as b:
            kubo_cid = a.add_path(file)
            if kubo_cid != cid:
                raise SystemExit(f"CIDs differ: ours {cid}, Kubo's {kubo_cid}")
            b.connect(a.dial_addr)
            start = time.perf_counter()
            with httpx.stream("POST", f"{b.api_url}/api/v0/cat", params={"arg": cid},
                              timeout=60) as answer:
                next(answer.iter_raw(1))
            ttfb = time.perf_counter() - start
            b.rpc("pin/add", arg=cid, timeout=3600)
            seconds = time.perf_counter() - start
            rss = _peak_rss_mib(b._proc.proc.pid)
    except GoBuildError as exc:
        print(f"  kubo: skipped ({exc})")
        return None
    return {"seconds": seconds, "mbps": mbps(size, seconds), "ttfb": ttfb,
            "peak_rss_mib": rss}


def find_providers_latency(rounds: int = 20) -> float:
    import trio

    from ipfs_mcp.backends.core.cids import cid_of_block
    from ipfs_mcp.backends.repo.repository import Repo
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



def _range(values: list[float], fmt: str = ".1f") -> str:
    low, high = min(values), max(values)
    return f"{low:{fmt}}" if len(values) == 1 else f"{low:{fmt}}-{high:{fmt}}"


def from_kubo(size_mib: int, runs: int, fsync: bool, profile: Path | None) -> None:
    """Kubo -> ours over bitswap, then Kubo -> Kubo, in each run."""
    from p2p_http_fetch import busiest

    size = size_mib * MIB
    print(f"{size_mib} MiB file, fsync {'on' if fsync else 'off'} on both sides, from Kubo:")
    for run in range(1, runs + 1):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            file = random_file(work / "data.bin", size)
            raw = None if profile is None else profile / f"kubo-to-ours-{run}.txt"
            if raw is not None:
                raw.parent.mkdir(parents=True, exist_ok=True)
            us = kubo_to_ours(file, size, work, fsync, raw)
            if us is None:
                return
            kubo = kubo_to_kubo(file, size, work, fsync, us["cid"])
        line = (f"  run {run}: Kubo 0.43 -> ipfs-mcp (bitswap) {us['mbps']:.1f} MiB/s "
                f"({us['seconds']:.1f} s, TTFB {us['ttfb'] * 1000:.0f} ms, peak RSS "
                f"{us['peak_rss_mib']:.0f} MiB, CPU {us['cpu_seconds']:.1f} s of which "
                f"system {us['sys_seconds']:.1f} s; {us['blocks']} blocks in "
                f"{us['messages']} messages)")
        if kubo:
            line += (f"; Kubo 0.43 -> Kubo 0.43 {kubo['mbps']:.1f} MiB/s; ratio "
                     f"{us['mbps'] / kubo['mbps']:.2f}")
        print(line, f"(load average {os.getloadavg()[0]:.1f})", flush=True)
        if raw is not None:
            print("    py-spy, our fetcher, busiest by self samples:")
            for entry in busiest(raw, 14):
                print(f"      {entry}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--no-fsync", action="store_true")
    parser.add_argument("--no-kubo", action="store_true")
    parser.add_argument("--from-kubo", action="store_true",
                        help="Kubo -> ours over bitswap against Kubo -> Kubo")
    parser.add_argument("--profile", type=Path, help="with --from-kubo: py-spy samples, here")
    args = parser.parse_args()
    fsync = not args.no_fsync
    size = args.size_mib * MIB
    if args.from_kubo:
        from_kubo(args.size_mib, args.runs, fsync, args.profile)
        return
    runs: list[tuple[dict[str, Any], dict[str, float] | None]] = []
    print(f"{args.size_mib} MiB file, fsync {'on' if fsync else 'off'} on both sides:")
    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            file = random_file(work / "data.bin", size)
            us = ours(file, size, work, fsync)
            kubo = None if args.no_kubo else kubo_to_kubo(file, size, work, fsync, us["cid"])
        runs.append((us, kubo))
        line = (f"  run {run}: ipfs-mcp {us['mbps']:.1f} MiB/s ({us['seconds']:.1f} s, "
                f"TTFB {us['ttfb'] * 1000:.0f} ms, fetcher peak RSS {us['peak_rss_mib']:.0f} MiB, "
                f"CPU {us['cpu_seconds']:.1f} s of which system {us['sys_seconds']:.1f} s, server CPU {us['server_cpu']:.1f} s)")
        if kubo:
            line += (f"; Kubo 0.43 -> Kubo 0.43 {kubo['mbps']:.1f} MiB/s (TTFB "
                     f"{kubo['ttfb'] * 1000:.0f} ms, peak RSS {kubo['peak_rss_mib']:.0f} MiB)"
                     f"; ratio {us['mbps'] / kubo['mbps']:.2f}")
        print(line, flush=True)
    ours_rates = [u["mbps"] for u, _ in runs]
    print(f"  ipfs-mcp -> ipfs-mcp:   {_range(ours_rates)} MiB/s, TTFB "
          f"{_range([u['ttfb'] * 1000 for u, _ in runs], '.0f')} ms, fetcher peak RSS "
          f"{_range([u['peak_rss_mib'] for u, _ in runs], '.0f')} MiB")
    kubos = [k for _, k in runs if k]
    if kubos:
        print(f"  Kubo 0.43 -> Kubo 0.43: {_range([k['mbps'] for k in kubos])} MiB/s, TTFB "
              f"{_range([k['ttfb'] * 1000 for k in kubos], '.0f')} ms, peak RSS "
              f"{_range([k['peak_rss_mib'] for k in kubos], '.0f')} MiB")
        print(f"  ratio ours/Kubo (each run): "
              f"{_range([u['mbps'] / k['mbps'] for u, k in runs if k], '.2f')}")
    print(f"find_providers across 5 nodes: median {find_providers_latency() * 1000:.1f} ms")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_serve":
        _serve(sys.argv[2], sys.argv[3], sys.argv[4] == "1")
    elif len(sys.argv) > 1 and sys.argv[1] == "_fetch":
        _fetch(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] == "1")
    else:
        main()
