"""Node to node over HTTP CAR streams: ours -> ours against Kubo 0.43 -> Kubo 0.43 over
bitswap, in the same run.

    python bench/p2p_http_fetch.py [--size-mib 256] [--runs 1] [--fsync | --ours-durable]
                                   [--no-kubo] [--profile DIR]

One random file (Kubo's defaults: CIDv0, 256 KiB chunks) in the embedded repo of an
``ipfs-mcp serve`` process, with default settings: its P2P node serves its blocks over HTTP
where it listens and advertises that ``/http`` address. Our fetching node runs as the
server runs it (``server.state.run_node``, default settings) over a fresh repo, connects to
the provider over loopback (identify tells it the address) and fetches the whole DAG with
``fetch_dag``, which asks for verified CAR streams before any bitswap want. Only the fetch
is timed; the blocks that came over bitswap are counted (expected: none), and the output's
sha256 is compared after the clock stops. Then two Kubo 0.43 daemons do the same over
bitswap (``bench/p2p_fetch.py``'s harness: one adds, the other ``pin add``s).

fsync is off on both sides by default, as Kubo 0.43's flatfs runs (``sync: false``);
``--fsync`` syncs every block the fetcher stores and sets flatfs ``sync: true``;
``--ours-durable`` compares each as shipped (our repo syncs in batches, Kubo's flatfs does
not sync). Figures
are printed; nothing is asserted. On a shared box, run it 2-3 times and report the range.

With ``--profile DIR`` py-spy samples both processes (200 Hz, ``--threads --idle``) while
the fetch runs, and the busiest functions of each are printed (idle waits left out).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import MIB, mbps, sha256_file
from _programs import random_file_in_repo, start_serve
from p2p_fetch import kubo_to_kubo

NODE_START = 60.0  # seconds a node may take to come up


def sampled(pids: dict[str, int], folder: Path | None) -> Callable[[], None]:
    """py-spy attached to each process in ``pids`` (named by its key) until the returned
    stop is called; nothing when ``folder`` is None."""
    if folder is None:
        return lambda: None
    folder.mkdir(parents=True, exist_ok=True)
    samplers = [subprocess.Popen(
        ["py-spy", "record", "--rate", "200", "--threads", "--idle", "--format", "raw",
         "--pid", str(pid), "-o", str(folder / f"{name}.txt")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for name, pid in pids.items()]
    time.sleep(1.0)  # attached before the fetch starts

    def stop() -> None:
        for sampler in samplers:
            sampler.send_signal(2)  # SIGINT: py-spy writes what it sampled
        for sampler in samplers:
            sampler.wait(timeout=120)
    return stop


# The leaf frames of a thread that waits (for the loop, a lock, a socket, work): left out.
_IDLE = ("get_events", "wait", "_wait_for_tstate_lock", "acquire", "_work", "select",
         "sleep", "_read_loop", "_worker", "readline")


def busiest(raw: Path, count: int = 10) -> list[str]:
    """The functions with most busy samples in py-spy's raw output, self and inclusive."""
    import collections

    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        frames = [f.split(" (")[0] for f in stack.split(";")
                  if not f.startswith(("thread", "process"))]
        if not frames or frames[-1].rpartition(".")[2] in _IDLE:
            continue
        total += int(samples)
        own[frames[-1]] += int(samples)
        for name in set(frames):
            inclusive[name] += int(samples)
    if not total:
        return ["(no busy samples)"]
    return [f"{name}: {n / total:.1%} self, {inclusive[name] / total:.1%} inclusive"
            for name, n in own.most_common(count)]


def process_cpu(pid: int) -> float:
    """CPU seconds (user and system) a process has used so far, from ``/proc``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fetch(addr: str, cid: str, repo_dir: Path, fsync: bool, server_pid: int = 0,
          profile: Path | None = None) -> dict[str, Any]:
    """Our node, as the server runs it, fetching ``cid`` from the peer at ``addr``."""
    import anyio

    from ipfs_mcp.backends.core.cids import parse_cid
    from ipfs_mcp.backends.core.exporter import Exporter
    from ipfs_mcp.backends.repo.repository import Repo
    from ipfs_mcp.server.config import ServerSettings
    from ipfs_mcp.server.state import NodeSlot, run_node

    repo = Repo(repo_dir, fsync=fsync)
    root = parse_cid(cid)

    async def main() -> dict[str, Any]:
        async with anyio.create_task_group() as tg:
            slot = NodeSlot()
            tg.start_soon(run_node, ServerSettings.load({}), repo, slot)
            node = await slot.wait(NODE_START)
            if node is None:
                raise SystemExit(f"our node did not start: {slot.status}")
            await node.connect_peer(addr)
            stop = sampled({"fetcher": os.getpid(), "server": server_pid}, profile)
            server_cpu = process_cpu(server_pid)
            cpu = time.process_time()
            start = time.perf_counter()
            report = await node.fetch_dag(root)
            seconds = time.perf_counter() - start
            cpu = time.process_time() - cpu
            server_cpu = process_cpu(server_pid) - server_cpu
            stop()
            over_bitswap = sum(ledger.blocks_received
                               for ledger in node.bitswap.ledgers().values())
            tg.cancel_scope.cancel()
        return {"seconds": seconds, "blocks": report.blocks, "fetched": report.fetched,
                "over_bitswap": over_bitswap, "cpu": cpu, "server_cpu": server_cpu}

    result = anyio.run(main, backend="trio")
    digest = hashlib.sha256()  # after the clock: the bytes, to compare
    for chunk in Exporter(repo.blocks.get).cat(root):
        digest.update(chunk)
    result["sha256"] = digest.hexdigest()
    return result


def provider_addr(server: Any) -> str:
    """The P2P address the ``serve`` process logs once its node is up (and where it serves
    HTTP, on the same line)."""
    deadline = time.monotonic() + NODE_START
    while (node := re.search(r"P2P node (\S+) on (/ip4/127\.0\.0\.1/tcp/\d+)/p2p/\S+, "
                             r"(/ip4/\S+/http)", server.log_tail())) is None:
        if time.monotonic() > deadline:
            raise SystemExit(f"no P2P node with an /http address:\n{server.log_tail()}")
        time.sleep(0.05)
    print(f"  provider {node.group(1)} serves HTTP at {node.group(3)}")
    return f"{node.group(2)}/p2p/{node.group(1)}"


def _range(values: list[float], fmt: str = ".1f") -> str:
    low, high = min(values), max(values)
    return f"{low:{fmt}}" if len(values) == 1 else f"{low:{fmt}}-{high:{fmt}}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--fsync", action="store_true")
    parser.add_argument("--ours-durable", action="store_true",
                        help="ours as shipped (blocks synced in batches), Kubo as shipped "
                             "(flatfs sync: false)")
    parser.add_argument("--no-kubo", action="store_true")
    parser.add_argument("--profile", type=Path, help="sample both processes with py-spy, here")
    args = parser.parse_args()
    size = args.size_mib * MIB
    rates: list[tuple[float, float | None]] = []
    ours_sync = args.fsync or args.ours_durable
    print(f"{args.size_mib} MiB file, " + ("each as shipped: ours synced in batches, Kubo's "
                                            "flatfs sync: false:" if args.ours_durable else
                                            f"fsync {'on' if args.fsync else 'off'} on both "
                                            "sides:"))
    for run in range(1, args.runs + 1):
        with random_file_in_repo(size) as (work, data, home, cid):
            server = start_serve(work, home, "--http", "127.0.0.1:0", "--log-level", "INFO",
                                 ready_marker="serving MCP at")
            try:
                server.wait_ready(NODE_START)
                us = fetch(provider_addr(server), cid, work / f"fetch-{run}", ours_sync,
                           server.proc.pid, args.profile and args.profile / f"run{run}")
            finally:
                server.close()
            same = us.pop("sha256") == sha256_file(data)
            kubo = (None if args.no_kubo else
                    kubo_to_kubo(data, size, work, args.fsync, cid))
        ours = mbps(size, us["seconds"])
        rates.append((ours, kubo["mbps"] if kubo else None))
        line = (f"  run {run}: ipfs-mcp -> ipfs-mcp over HTTP CAR {ours:.1f} MiB/s "
                f"({us['seconds']:.2f} s, CPU fetcher {us['cpu']:.1f} s, "
                f"server {us['server_cpu']:.1f} s; "
                f"{us['fetched']}/{us['blocks']} blocks fetched, "
                f"{us['over_bitswap']} of them over bitswap; same bytes: {same})")
        if kubo:
            line += (f"; Kubo 0.43 -> Kubo 0.43 over bitswap {kubo['mbps']:.1f} MiB/s "
                     f"({kubo['seconds']:.2f} s); ratio {ours / kubo['mbps']:.2f}")
        print(line, f"(load average {os.getloadavg()[0]:.1f})", flush=True)
        if args.profile is not None:
            for raw in sorted((args.profile / f"run{run}").glob("*.txt")):
                print(f"    py-spy, {raw.stem}, busiest by self samples:")
                for entry in busiest(raw):
                    print(f"      {entry}")
    print(f"  ipfs-mcp -> ipfs-mcp (HTTP CAR):  {_range([u for u, _ in rates])} MiB/s")
    kubos = [(u, k) for u, k in rates if k is not None]
    if kubos:
        print(f"  Kubo 0.43 -> Kubo 0.43 (bitswap): {_range([k for _, k in kubos])} MiB/s")
        print(f"  ratio ours/Kubo (each run): {_range([u / k for u, k in kubos], '.2f')}")


if __name__ == "__main__":
    main()
