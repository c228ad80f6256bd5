"""Our node retrieving one file over HTTP (trustless gateways) versus over bitswap.

    python bench/http_vs_bitswap.py [--size-mib 256] [--runs 1] [--no-kubo]

One random file (Kubo's defaults: CIDv0, 256 KiB chunks) is held by two providers, each
reachable both ways:

* an ``ipfs-mcp serve --gateway`` process (its P2P node on and its gateway, one repo);
* a Kubo 0.43 daemon (tests/interop/kubo_daemon.py) that added the same file (same CID).

Our node then fetches the whole DAG into a fresh repo (verifying every block) from each
provider, once over HTTP (the trustless-gateway source the Router uses on a miss: one
verified CAR stream, ``GET /ipfs/{cid}?format=car&dag-scope=all&car-dups=n``, then
``?format=raw`` per block for whatever it left) and once over bitswap (our P2P node
dialling the provider). ``bench/car_fetch.py`` sets the CAR stream against Kubo -> Kubo. Only the retrieval is timed: our node is up and connected,
the HTTP client made, before the clock starts. Baseline in the same run: hashlib sha256 over the same bytes,
the floor of any verified retrieval. Figures are printed; nothing is asserted.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from _common import MIB, mbps, sha256_file, timed
from _programs import gateway_url, kubo043_daemon, random_file_in_repo, start_serve

from ipfs_mcp.backends.core.cids import parse_cid
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.backends.retrieval.trustless_gateway import TrustlessGateways

FETCH_TIMEOUT = 1800.0  # seconds one retrieval may take


def over_http(gateway: str, cid: str, repo_dir: Path) -> float:
    """Seconds to fetch the DAG from ``gateway`` (HTTP client made beforehand)."""
    repo = Repo(repo_dir, fsync=False)
    gateways = TrustlessGateways([gateway], repo.blocks, timeout=60)
    try:
        return timed(lambda: gateways.fetch_dag(parse_cid(cid)))[1]
    finally:
        gateways.close()


def over_bitswap(addr: str, cid: str, repo_dir: Path) -> float:
    """Seconds to fetch the DAG over bitswap, once our node is up and connected."""
    import trio

    from ipfs_mcp.p2p import NodeConfig, open_node

    repo = Repo(repo_dir, fsync=False)

    async def main() -> float:
        async with open_node(repo, NodeConfig(role="leecher")) as node:
            await node.connect_peer(addr)
            start = time.perf_counter()
            with trio.fail_after(FETCH_TIMEOUT):
                await node.retrieve_content(parse_cid(cid))
            return time.perf_counter() - start

    return trio.run(main)


def complete(repo_dir: Path, cid: str, size: int) -> None:
    """The fetched repo holds the whole file (every block read back and verified)."""
    backend = HFCacheBackend(Repo(repo_dir, fsync=False))
    got = sum(len(chunk) for chunk in backend.cat_stream(cid))
    if got != size:
        raise SystemExit(f"retrieval into {repo_dir} is incomplete: {got} of {size} bytes")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=1, help="rounds of every contender")
    parser.add_argument("--no-kubo", action="store_true")
    args = parser.parse_args()
    size = args.size_mib * MIB

    # read once, so it is in the page cache, as every contender's provider has it
    with random_file_in_repo(size) as (tmp, data, home, cid):
        server = start_serve(tmp, home, "--http", "127.0.0.1:0", "--gateway", "127.0.0.1:0",
                             "--log-level", "INFO", ready_marker="serving MCP at")
        contenders: list[tuple[str, Callable[[Path], float]]] = []
        kubo = None
        rows: list[tuple[str, float]] = []
        try:
            server.wait_ready(60)
            gateway = gateway_url(server)
            deadline = time.monotonic() + 60  # the node logs its address once it is up
            while (node := re.search(r"P2P node (\S+) on (/ip4/127\.0\.0\.1/tcp/\d+)",
                                     server.log_tail())) is None \
                    and time.monotonic() < deadline:
                time.sleep(0.05)
            assert gateway and node, server.log_tail()
            ours_addr = f"{node.group(2)}/p2p/{node.group(1)}"
            contenders += [("ipfs-mcp gateway, HTTP", partial(over_http, gateway, cid)),
                           ("ipfs-mcp node, bitswap", partial(over_bitswap, ours_addr, cid))]
            if not args.no_kubo:
                kubo = kubo043_daemon(tmp / "kubo")
                if kubo is not None:
                    kubo_cid = kubo.add_path(data)
                    if kubo_cid != cid:
                        print(f"CIDs differ: ours {cid}, Kubo {kubo_cid}")
                        return 1
                    contenders += [
                        ("Kubo 0.43 gateway, HTTP", partial(over_http, kubo.gateway_url, cid)),
                        ("Kubo 0.43 node, bitswap", partial(over_bitswap, kubo.dial_addr, cid))]
            for run in range(args.runs):
                _, t_sha = timed(lambda: sha256_file(data))
                rows.append(("hashlib sha256 (baseline)", t_sha))
                for label, fetch in contenders:
                    target = tmp / f"fetch-{run}-{len(rows)}"
                    seconds = fetch(target)
                    complete(target, cid, size)
                    rows.append((label, seconds))
        finally:
            server.close()
            if kubo is not None:
                kubo.close()
    print(f"{args.size_mib} MiB random file, CID {cid}; our node fetches it into a fresh "
          f"repo ({args.runs} run(s))")
    print(f"{'contender':<30}{'MiB/s':>9}{'x sha256':>10}")
    baseline = rows[0][1]
    for label, seconds in rows:
        if label.startswith("hashlib"):
            baseline = seconds
        print(f"{label:<30}{mbps(size, seconds):>9.0f}{baseline / seconds:>10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
