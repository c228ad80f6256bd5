"""The MCP server over stdio, as a client sees it: start-up, tools/call latency, store_model.

1. Process start to the ``initialize`` response (target: under 1.5 s).
2. ``tools/call`` latency of ``fetch_cid`` for a cached 1 KiB object, p50 and p99
   (target: p50 under 2 ms), one request at a time, measured at the client.
3. ``store_model`` of a folder of random files (default 1 GiB): throughput, and the
   server's peak RSS (from /proc, Linux only).

Each run uses a fresh HF_HOME in a temp folder. Figures are printed; nothing is asserted.

    python bench/mcp_stdio.py [--calls 2000] [--store-mib 1024] [--no-p2p]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import MIB, mbps, random_file

SERVE = [sys.executable, "-m", "ipfs_mcp.server.serve"]


class StdioClient:
    """Blocking line-delimited JSON-RPC, the simplest client there is (no SDK overhead)."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(SERVE + args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=env)
        self.next_id = 0

    def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.next_id += 1
        line = json.dumps({"jsonrpc": "2.0", "id": self.next_id, "method": method,
                           "params": params})
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        while True:
            reply = json.loads(self.proc.stdout.readline())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(reply["error"])
                return reply["result"]

    def notify(self, method: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"jsonrpc": "2.0", "method": method}).encode() + b"\n")
        self.proc.stdin.flush()

    def tool(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        result = self.request("tools/call", {"name": name, "arguments": args})
        if result.get("isError"):
            raise RuntimeError(result["content"][0]["text"])
        return result["structuredContent"]

    def peak_rss_mib(self) -> float | None:
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return None

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--starts", type=int, default=5, help="start-up samples")
    parser.add_argument("--store-mib", type=int, default=1024, help="0 skips store_model")
    parser.add_argument("--no-p2p", action="store_true", help="serve without the P2P node")
    opts = parser.parse_args()
    extra = ["--no-p2p"] if opts.no_p2p else []

    with tempfile.TemporaryDirectory(prefix="mcp-bench-") as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        env = {**os.environ, "HF_HOME": str(Path(tmp) / "hf"), "IPFS_MCP_ALLOW_ROOTS": str(work)}
        init = {"protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "bench", "version": "0"}}

        starts = []
        for _ in range(opts.starts):
            client = StdioClient(extra, env)
            client.request("initialize", init)
            starts.append(time.perf_counter() - client.started)
            client.close()
        print(f"start to initialize response: median {statistics.median(starts) * 1000:.0f} ms,"
              f" max {max(starts) * 1000:.0f} ms over {opts.starts} starts "
              f"({'no P2P node' if opts.no_p2p else 'P2P node starting in the background'})")

        client = StdioClient(extra, env)
        client.request("initialize", init)
        client.notify("notifications/initialized")
        cid = client.tool("add_content", {"data_base64": __import__("base64").b64encode(
            os.urandom(1024)).decode()})["cid"]
        for _ in range(50):  # warm-up: imports, caches, thread pool
            client.tool("fetch_cid", {"cid": cid})
        latencies = []
        for _ in range(opts.calls):
            t0 = time.perf_counter()
            client.tool("fetch_cid", {"cid": cid})
            latencies.append(time.perf_counter() - t0)
        print(f"tools/call fetch_cid, cached 1 KiB object, {opts.calls} calls: "
              f"p50 {percentile(latencies, 50) * 1000:.2f} ms, "
              f"p99 {percentile(latencies, 99) * 1000:.2f} ms, "
              f"mean {statistics.fmean(latencies) * 1000:.2f} ms")

        if opts.store_mib:
            folder = work / "model"
            folder.mkdir()
            files = 8
            for i in range(files):
                random_file(folder / f"shard-{i:02d}.bin", opts.store_mib * MIB // files)
            size = opts.store_mib * MIB
            t0 = time.perf_counter()
            stored = client.tool("store_model", {"source": str(folder)})
            seconds = time.perf_counter() - t0
            rss = client.peak_rss_mib()
            print(f"store_model of a {opts.store_mib} MiB folder ({files} files): "
                  f"{seconds:.2f} s, {mbps(size, seconds):.0f} MiB/s, server peak RSS "
                  f"{rss:.0f} MiB" if rss is not None else "n/a")
            print(f"  root {stored['root_cid']}")
        client.close()


if __name__ == "__main__":
    main()
