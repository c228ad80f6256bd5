"""Node-to-node fetch through MCP, against the raw node-to-node figure of the same run.

    python bench/mcp_fetch.py [--size-mib 1024] [--runs 1] [--profile DIR]

A model folder (one large random weights file and a config) is stored with ``store_model``
(nocopy, so raw leaves as for a model in the HF cache) by one ``ipfs-mcp serve`` process,
which serves it over its P2P node. Then, each in a fresh process and repo:

1. raw: a bare node fetches the whole DAG into its repo (``bench/p2p_fetch.py``'s fetcher);
2. ``fetch_cid`` to ``output_path``, through a real ``ipfs-mcp serve`` over stdio;
3. ``fetch_cid`` with ``into_hf_cache``, the same way.

For each: MiB/s, the ratio to raw (target: within 10%, that is at least 0.90), the fetching
process's peak RSS, and the bytes it wrote to disk per byte of the model (from
``/proc/PID/io``; the write-once target for ``into_hf_cache`` is 1.05 at most). Figures
are printed; nothing is asserted. Every repo syncs (``fsync``), as the server's does.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import MIB, ROOT, mbps, random_file
from mcp_stdio import StdioClient
from p2p_fetch import SELF as P2P_FETCH
from p2p_http_fetch import busiest, sampled

INIT = {"protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "bench", "version": "0"}}
CONNECT_DEADLINE = 60.0  # seconds for the fetcher's node to reach the provider


def proc_io(pid: int) -> dict[str, int]:
    try:
        text = Path(f"/proc/{pid}/io").read_text()
    except OSError:
        return {}
    return {k: int(v) for k, v in (line.split(": ") for line in text.splitlines())}


def proc_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a live process, from ``/proc/PID/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_model(folder: Path, size: int) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "bench"}\n')
    random_file(folder / "model.safetensors", size)
    return folder


class Provider:
    """The serving node: a real ``ipfs-mcp serve`` that stored the model with
    ``store_model`` (nocopy: raw leaves referenced in place, as for a model in the HF
    cache), serving it over its P2P node."""

    def __init__(self, home: Path, model: Path) -> None:
        env = {**os.environ, "HF_HOME": str(home / "hf"),
               "IPFS_MCP_ALLOW_ROOTS": str(model.parent)}
        self.client = StdioClient(["--listen", "/ip4/127.0.0.1/tcp/0"], env)
        self.client.request("initialize", INIT)
        self.client.notify("notifications/initialized")
        stored = self.client.tool("store_model", {"source": str(model), "nocopy": True})
        self.cid: str = stored["root_cid"]
        network = wait_for(self.client, lambda n: bool(n.get("listen_addrs")))
        self.addr = f"{network['listen_addrs'][0]}/p2p/{network['peer_id']}"

    def close(self) -> None:
        self.client.close()


def wait_for(client: StdioClient, ready: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Poll ``peer_stats`` until the node's report satisfies ``ready`` (bounded)."""
    deadline = time.monotonic() + CONNECT_DEADLINE
    for _ in range(600):  # bounded: also by the deadline
        stats = client.tool("peer_stats", {})
        network = stats.get("network") or {}
        if ready(network):
            return network
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)  # polling a subprocess; this is a bench, not a test
    raise RuntimeError(f"the node never got ready: {stats}")


def raw_fetch(provider: Provider, work: Path, size: int) -> dict[str, float]:
    """The bare node-to-node figure: bench/p2p_fetch.py's fetcher, same provider and DAG."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "bench")}
    out = subprocess.run([sys.executable, str(P2P_FETCH), "_fetch", str(work), provider.addr,
                          provider.cid, "1"],
                         capture_output=True, text=True, env=env, timeout=3600, check=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    result["mbps"] = mbps(size, result["seconds"])
    return result


def through_mcp(provider: Provider, work: Path, size: int, args: dict[str, Any],
                profile: Path | None = None) -> dict[str, Any]:
    work.mkdir(parents=True)
    env = {**os.environ, "HF_HOME": str(work / "hf"), "IPFS_MCP_ALLOW_ROOTS": str(work)}
    client = StdioClient(["--bootstrap", provider.addr, "--role", "leecher"], env)
    try:
        client.request("initialize", INIT)
        client.notify("notifications/initialized")
        wait_for(client, lambda n: n.get("connected_peers", 0) >= 1)
        before = proc_io(client.proc.pid).get("write_bytes", 0)
        stop = sampled({"fetcher": client.proc.pid}, profile)
        cpu_before = proc_cpu_seconds(client.proc.pid)
        start = time.perf_counter()
        result = client.tool("fetch_cid", {"cid": provider.cid, **args})
        seconds = time.perf_counter() - start
        cpu = proc_cpu_seconds(client.proc.pid) - cpu_before
        stop()
        written = proc_io(client.proc.pid).get("write_bytes", 0) - before
        rss = client.peak_rss_mib() or 0.0
    finally:
        client.close()
    return {"seconds": seconds, "mbps": mbps(size, seconds), "peak_rss_mib": rss,
            "cpu_per_gib": cpu * (1 << 30) / size,
            "written_per_byte": written / size, "delivery": result.get("delivery", "")}


def one_round(provider: Provider, work: Path, size: int, profile: Path | None = None) -> None:
    raw = raw_fetch(provider, work / "raw", size)
    print(f"  raw node to node:           {raw['mbps']:7.1f} MiB/s, fetcher peak RSS "
          f"{raw['peak_rss_mib']:.0f} MiB, CPU {raw['cpu_seconds'] * (1 << 30) / size:.1f} s/GiB")
    for label, args in (
            ("fetch_cid to output_path", {"output_path": "model"}),
            ("fetch_cid into_hf_cache", {"into_hf_cache": "bench/model"})):
        home = work / label.replace(" ", "-")
        if "output_path" in args:
            args = {"output_path": str(home / args["output_path"])}
        folder = None if profile is None else profile / label.replace(" ", "-")
        got = through_mcp(provider, home, size, args, folder)
        print(f"  {label + ':':27} {got['mbps']:7.1f} MiB/s "
              f"({got['mbps'] / raw['mbps']:.2f} x raw; target >= 0.90), "
              f"server peak RSS {got['peak_rss_mib']:.0f} MiB, "
              f"CPU {got['cpu_per_gib']:.1f} s/GiB, "
              f"{got['written_per_byte']:.2f} bytes written per model byte, "
              f"delivered {got['delivery'] or 'as the result does not say'}")
        if folder is not None:
            print("    py-spy, the fetching server, busiest by self samples:")
            for line in busiest(folder / "fetcher.txt"):
                print(f"      {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=1,
                        help="rounds of all three, each in fresh repos (report the range)")
    parser.add_argument("--profile", type=Path,
                        help="sample the fetching server with py-spy during each fetch_cid, here")
    opts = parser.parse_args()
    fsync = True
    size = opts.size_mib * MIB
    with tempfile.TemporaryDirectory(prefix="mcp-fetch-") as tmp:
        work = Path(tmp)
        model = make_model(work / "models" / "model", size)
        print(f"{opts.size_mib} MiB model, fsync={fsync}:")
        provider = Provider(work / "provider", model)
        try:
            for run in range(1, opts.runs + 1):
                print(f" run {run}:")
                one_round(provider, work / f"run{run}", size, opts.profile)
        finally:
            provider.close()


if __name__ == "__main__":
    main()
