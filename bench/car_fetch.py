"""Node to node over HTTP CAR streams: ours -> ours against Kubo 0.43 -> Kubo 0.43 over
bitswap, in the same run.

    python bench/car_fetch.py [--size-mib 1024] [--runs 1] [--no-kubo] [--profile DIR]

One random file (Kubo's defaults: CIDv0, 256 KiB chunks) is added to an embedded repo and
served by ``ipfs-mcp serve --gateway`` (a child process, P2P off). A second process, our
fetcher, asks it for the whole DAG the way a miss does with ``--trustless-gateway``
(``TrustlessGateways.fetch_dag``: one ``format=car&dag-scope=all&car-dups=n`` stream,
every block hashed and checked against the DAG walk, stored into a fresh repo), with the
repo's fsync off and on. Then two Kubo 0.43.1 daemons do the same over bitswap (one adds
the file, the other connects, ``cat``s the first byte and ``pin add``s the DAG;
``p2p_fetch.kubo_to_kubo``), flatfs ``sync: false`` as Kubo 0.43 ships it. Baseline in
the same run: hashlib sha256 over the same bytes. With ``--profile DIR`` the fetcher runs
under py-spy (and the server is sampled too) and the top functions are printed.
Figures are printed; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import MIB, mbps, sha256_file, timed
from _programs import gateway_url, random_file_in_repo, start_serve
from p2p_fetch import kubo_to_kubo
from p2p_http_fetch import busiest

SELF = Path(__file__).resolve()
FETCH_TIMEOUT = 3600.0


def _fetch(gateway: str, cid_text: str, repo_dir: str, fsync: bool) -> None:
    """The fetcher process: one whole-DAG fetch, its figures as JSON on stdout."""
    from ipfs_mcp.backends.core.cids import parse_cid
    from ipfs_mcp.backends.repo.repository import Repo
    from ipfs_mcp.backends.retrieval.trustless_gateway import TrustlessGateways

    repo = Repo(Path(repo_dir), fsync=fsync)
    gateways = TrustlessGateways([gateway], repo.blocks, timeout=60)
    try:
        _, seconds = timed(lambda: gateways.fetch_dag(parse_cid(cid_text)))
        stat = gateways.stats()[0]
    finally:
        gateways.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"seconds": seconds, "peak_rss_mib": usage.ru_maxrss / 1024,
                      "cpu_seconds": usage.ru_utime + usage.ru_stime,
                      "blocks": stat.successes}), flush=True)


def ours(gateway: str, cid: str, repo_dir: Path, fsync: bool, profile: Path | None,
         server_pid: int) -> dict[str, Any]:
    command = [sys.executable, str(SELF), "_fetch", gateway, cid, str(repo_dir),
               "1" if fsync else "0"]
    sampler = None
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        tag = "fsync" if fsync else "nofsync"
        command = ["py-spy", "record", "--rate", "200", "--format", "raw", "--threads",
                   "-o", str(profile / f"fetcher-{tag}.txt"), "--", *command]
        sampler = subprocess.Popen(
            ["py-spy", "record", "--rate", "200", "--format", "raw", "--pid",
             str(server_pid), "-o", str(profile / f"server-{tag}.txt")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # py-spy attaches before the fetch starts
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=FETCH_TIMEOUT,
                              check=True)
    finally:
        if sampler is not None:
            sampler.send_signal(2)  # SIGINT: py-spy writes what it sampled
            sampler.wait(timeout=60)
    figures = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return dict(json.loads(figures[-1]))  # py-spy says its own things on stdout too


def complete(repo_dir: Path, cid: str, size: int) -> None:
    """The fetched repo holds the whole file (every block read back and verified)."""
    from ipfs_mcp.backends.hf_cache import HFCacheBackend
    from ipfs_mcp.backends.repo.repository import Repo

    backend = HFCacheBackend(Repo(repo_dir, fsync=False))
    got = sum(len(chunk) for chunk in backend.cat_stream(cid))
    if got != size:
        raise SystemExit(f"retrieval into {repo_dir} is incomplete: {got} of {size} bytes")


def top_functions(raw: Path, count: int = 12) -> list[str]:
    """py-spy's collapsed stacks as the functions with most samples: self and inclusive."""
    return busiest(raw, count)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_fetch":
        _fetch(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] == "1")
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--no-kubo", action="store_true")
    parser.add_argument("--profile", type=Path, help="run the fetcher under py-spy, here")
    args = parser.parse_args()
    size = args.size_mib * MIB
    rows: list[tuple[str, float, str]] = []
    with random_file_in_repo(size) as (work, data, home, cid):
        server = start_serve(work, home, "--http", "127.0.0.1:0", "--no-p2p",
                             "--gateway", "127.0.0.1:0", "--log-level", "INFO",
                             ready_marker="serving MCP at")
        try:
            server.wait_ready(60)
            gateway = gateway_url(server)
            assert gateway, server.log_tail()
            for run in range(args.runs):
                _, t_sha = timed(lambda: sha256_file(data))
                rows.append(("hashlib sha256 (baseline)", t_sha, ""))
                for fsync in (False, True):
                    target = work / f"fetch-{run}-{fsync}"
                    result = ours(gateway, cid, target, fsync,
                                  args.profile if run == 0 else None, server.proc.pid)
                    complete(target, cid, size)
                    rows.append((f"ours -> ours, CAR, fsync {'on' if fsync else 'off'}",
                                 result["seconds"],
                                 f"RSS {result['peak_rss_mib']:.0f} MiB, CPU "
                                 f"{result['cpu_seconds']:.1f} s, "
                                 f"{result['blocks']} blocks verified"))
                if not args.no_kubo:
                    kubo = kubo_to_kubo(data, size, work / f"kubo-{run}", False, cid)
                    if kubo is not None:
                        rows.append(("Kubo 0.43 -> Kubo 0.43, bitswap", kubo["seconds"],
                                     f"RSS {kubo['peak_rss_mib']:.0f} MiB, TTFB "
                                     f"{kubo['ttfb'] * 1000:.0f} ms"))
        finally:
            server.close()
    print(f"{args.size_mib} MiB random file, CID {cid} ({args.runs} run(s))")
    print(f"{'contender':<38}{'MiB/s':>8}{'x sha256':>10}{'x Kubo':>8}  notes")
    baseline = rows[0][1]
    kubo_s = {run: s for run, (label, s, _) in enumerate(rows) if label.startswith("Kubo")}
    for index, (label, seconds, notes) in enumerate(rows):
        if label.startswith("hashlib"):
            baseline = seconds
        same_run = next((s for run, s in kubo_s.items() if run > index), None)
        ratio = (f"{same_run / seconds:>8.2f}" if same_run and label.startswith("ours")
                 else " " * 8)
        print(f"{label:<38}{mbps(size, seconds):>8.0f}{baseline / seconds:>10.2f}{ratio}"
              f"  {notes}")
    if args.profile is not None:
        for raw in sorted(args.profile.glob("*.txt")):
            print(f"\npy-spy, {raw.stem} (top by self samples):")
            for line in top_functions(raw):
                print(f"  {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
