"""Node to node over HTTP CAR streams: ours -> ours against Kubo 0.43 -> Kubo 0.43 over
bitswap, in the same run.

    python bench/p2p_http_fetch.py [--size-mib 256] [--runs 1] [--fsync] [--no-kubo]

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
``--fsync`` syncs every block the fetcher stores and sets flatfs ``sync: true``. Figures
are printed; nothing is asserted. On a shared box, run it 2-3 times and report the range.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import time
from pathlib import Path
from typing import Any

from _common import MIB, mbps, sha256_file
from _programs import random_file_in_repo, start_serve
from p2p_fetch import kubo_to_kubo

NODE_START = 60.0  # seconds a node may take to come up


def fetch(addr: str, cid: str, repo_dir: Path, fsync: bool) -> dict[str, Any]:
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
            start = time.perf_counter()
            report = await node.fetch_dag(root)
            seconds = time.perf_counter() - start
            over_bitswap = sum(ledger.blocks_received
                               for ledger in node.bitswap.ledgers().values())
            tg.cancel_scope.cancel()
        return {"seconds": seconds, "blocks": report.blocks, "fetched": report.fetched,
                "over_bitswap": over_bitswap}

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
    parser.add_argument("--no-kubo", action="store_true")
    args = parser.parse_args()
    size = args.size_mib * MIB
    rates: list[tuple[float, float | None]] = []
    print(f"{args.size_mib} MiB file, fsync {'on' if args.fsync else 'off'} on both sides:")
    for run in range(1, args.runs + 1):
        with random_file_in_repo(size) as (work, data, home, cid):
            server = start_serve(work, home, "--http", "127.0.0.1:0", "--log-level", "INFO",
                                 ready_marker="serving MCP at")
            try:
                server.wait_ready(NODE_START)
                us = fetch(provider_addr(server), cid, work / f"fetch-{run}", args.fsync)
            finally:
                server.close()
            same = us.pop("sha256") == sha256_file(data)
            kubo = (None if args.no_kubo else
                    kubo_to_kubo(data, size, work, args.fsync, cid))
        ours = mbps(size, us["seconds"])
        rates.append((ours, kubo["mbps"] if kubo else None))
        line = (f"  run {run}: ipfs-mcp -> ipfs-mcp over HTTP CAR {ours:.1f} MiB/s "
                f"({us['seconds']:.2f} s; {us['fetched']}/{us['blocks']} blocks fetched, "
                f"{us['over_bitswap']} of them over bitswap; same bytes: {same})")
        if kubo:
            line += (f"; Kubo 0.43 -> Kubo 0.43 over bitswap {kubo['mbps']:.1f} MiB/s "
                     f"({kubo['seconds']:.2f} s); ratio {ours / kubo['mbps']:.2f}")
        print(line, flush=True)
    print(f"  ipfs-mcp -> ipfs-mcp (HTTP CAR):  {_range([u for u, _ in rates])} MiB/s")
    kubos = [(u, k) for u, k in rates if k is not None]
    if kubos:
        print(f"  Kubo 0.43 -> Kubo 0.43 (bitswap): {_range([k for _, k in kubos])} MiB/s")
        print(f"  ratio ours/Kubo (each run): {_range([u / k for u, k in kubos], '.2f')}")


if __name__ == "__main__":
    main()
