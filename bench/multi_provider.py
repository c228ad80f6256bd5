"""One provider against three: fetching one DAG from several providers at once.

    python bench/multi_provider.py [--size-mib 1024] [--fsync] [--rounds 1]

Three ipfs-mcp processes each add the same random file (Kubo's defaults: CIDv0, 256 KiB
chunks) to their own repo and serve it. A fourth process fetches the whole DAG into an
empty repo, first from one provider, then from all three (a fresh repo each time), and
prints MiB/s and how many blocks each provider delivered (the session's ``by_peer``).
The baseline in the same run is hashlib sha256 over the same bytes, the work every fetched
block costs the fetcher at least once.

On a 2-core machine the four processes share two cores and the fetcher alone can fill
one, so three providers cannot give three times one: the figure shows how evenly the
session spreads the wants and what the fetcher's own core allows. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import MIB, ROOT, mbps, random_file

SELF = Path(__file__).resolve()
SERVE = ROOT / "bench" / "p2p_fetch.py"  # its `_serve` child adds a file and serves it


def _fetch(repo_dir: str, addrs: str, cid_text: str, fsync: bool) -> None:
    import trio

    from ipfs_mcp.backends.core.cids import parse_cid
    from ipfs_mcp.backends.repo.repository import Repo
    from ipfs_mcp.p2p import NodeConfig, open_node

    repo = Repo(Path(repo_dir), fsync=fsync)
    root = parse_cid(cid_text)

    async def main() -> dict[str, object]:
        async with open_node(repo, NodeConfig(role="leecher")) as node:
            for addr in addrs.split(","):
                await node.connect_peer(addr)
            start = time.perf_counter()
            report = await node.retrieve_content(root)
            seconds = time.perf_counter() - start
            return {"seconds": seconds, "blocks": report.blocks, "by_peer": report.by_peer,
                    "reissued": sum(report.reissued.values())}

    result = trio.run(main)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    result["peak_rss_mib"] = usage.ru_maxrss / 1024
    print(json.dumps(result), flush=True)


def sha256_baseline(file: Path) -> float:
    digest = hashlib.sha256()
    start = time.perf_counter()
    with open(file, "rb") as src:
        while chunk := src.read(4 * MIB):
            digest.update(chunk)
    return time.perf_counter() - start


def fetch(work: Path, name: str, providers: list[dict[str, str]], fsync: bool,
          env: dict[str, str]) -> dict[str, object]:
    repo = work / name
    out = subprocess.run(
        [sys.executable, str(SELF), "_fetch", str(repo), ",".join(p["addr"] for p in providers),
         providers[0]["cid"], str(int(fsync))],
        capture_output=True, text=True, env=env, timeout=3600, check=True)
    shutil.rmtree(repo, ignore_errors=True)  # the next round starts from an empty repo
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--fsync", action="store_true")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    size = args.size_mib * MIB
    env = {**os.environ, "PYTHONPATH": str(ROOT / "bench")}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        file = random_file(work / "data.bin", size)
        servers = [subprocess.Popen(
            [sys.executable, str(SERVE), "_serve", str(work / f"p{i}"), str(file),
             str(int(args.fsync))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
            for i in range(3)]
        try:
            infos = []
            for server in servers:
                assert server.stdout is not None
                infos.append(json.loads(server.stdout.readline()))
            names = {info["addr"].rsplit("/", 1)[-1]: f"provider {i}"
                     for i, info in enumerate(infos)}
            print(f"{args.size_mib} MiB file, fsync={args.fsync}:")
            print(f"  hashlib sha256:  {mbps(size, sha256_baseline(file)):.0f} MiB/s")
            for n in range(args.rounds):
                for count in (1, 3):
                    result = fetch(work, f"fetch-{n}-{count}", infos[:count], args.fsync, env)
                    seconds = float(result["seconds"])  # type: ignore[arg-type]
                    by_peer = result["by_peer"]
                    assert isinstance(by_peer, dict)
                    spread = ", ".join(f"{names.get(p, p)}: {b}" for p, b in by_peer.items())
                    print(f"  {count} provider{'s' if count > 1 else ' '}:     "
                          f"{mbps(size, seconds):.1f} MiB/s ({seconds:.2f} s, "
                          f"{result['blocks']} blocks; {spread}; {result['reissued']} "
                          "re-issued), fetcher CPU "
                          f"{float(result['cpu_seconds']):.1f} s, peak RSS "  # type: ignore[arg-type]
                          f"{float(result['peak_rss_mib']):.0f} MiB")  # type: ignore[arg-type]
        finally:
            for server in servers:
                if server.stdin:
                    server.stdin.close()
            for server in servers:
                try:
                    server.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    server.kill()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_fetch":
        _fetch(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] == "1")
    else:
        main()
