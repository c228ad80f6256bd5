"""Download throughput through our HTTP gateway versus sha256 and Kubo 0.43's gateway.

    python bench/gateway_throughput.py [--size-mib 1024] [--no-kubo]

One random file, one run. Our side is the real server process (``ipfs-mcp serve
--gateway``) over the embedded repo the file was added to; Kubo's side is a Kubo 0.43
daemon (tests/interop/kubo_daemon.py) that added the same file (same CID required).
Each gateway is read twice over loopback with the same httpx client: the deserialized file
(``GET /ipfs/{cid}``) and the CAR (``?format=car``). Our gateway verifies every block
against its CID as it reads it from disk. Baseline: hashlib sha256 over the same bytes
(the floor of any verified read). Nothing is asserted: this prints figures.
"""

from __future__ import annotations

import argparse

import httpx
from _common import MIB, mbps, sha256_file, timed
from _programs import gateway_url, kubo043_daemon, random_file_in_repo, start_serve

READ_CHUNK = 4 * MIB


def download(client: httpx.Client, url: str) -> int:
    """Bytes received from ``url`` (read and dropped, so the client costs little)."""
    total = 0
    with client.stream("GET", url) as response:
        response.raise_for_status()
        for chunk in response.iter_raw(READ_CHUNK):
            total += len(chunk)
    return total


def measure(client: httpx.Client, base: str, cid: str) -> list[tuple[str, float, int]]:
    rows = []
    for label, path in (("file", f"/ipfs/{cid}"), ("CAR", f"/ipfs/{cid}?format=car")):
        download(client, base + path)  # warm: blocks in the page cache for every contender
        size, seconds = timed(lambda path=path: download(client, base + path))
        rows.append((label, seconds, size))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--no-kubo", action="store_true")
    args = parser.parse_args()
    size = args.size_mib * MIB

    with random_file_in_repo(size) as (tmp, data, home, cid):
        _, t_sha = timed(lambda: sha256_file(data))
        server = start_serve(tmp, home, "--no-p2p", "--http", "127.0.0.1:0", "--gateway",
                             "127.0.0.1:0", ready_marker="serving gateway at")
        results: list[tuple[str, str, float, int]] = []
        with httpx.Client(timeout=600) as client:
            try:
                server.wait_ready(60)
                ours = gateway_url(server)
                assert ours, server.log_tail()
                results += [("ipfs-mcp", label, t, n)
                            for label, t, n in measure(client, ours, cid)]
            finally:
                server.close()
            kubo = None if args.no_kubo else kubo043_daemon(tmp / "kubo")
            if kubo is not None:
                with kubo:
                    kubo_cid = kubo.add_path(data)
                    if kubo_cid != cid:
                        print(f"CIDs differ: ours {cid}, Kubo {kubo_cid}")
                        return 1
                    results += [("Kubo 0.43", label, t, n) for label, t, n in
                                measure(client, kubo.gateway_url, cid)]
    print(f"{args.size_mib} MiB random file, CID {cid}")
    print(f"{'contender':<28}{'MiB/s':>9}{'x sha256':>10}")
    print(f"{'hashlib sha256 (baseline)':<28}{mbps(size, t_sha):>9.0f}{1.0:>10.2f}")
    for who, label, seconds, received in results:
        print(f"{who + ' gateway, ' + label:<28}{mbps(received, seconds):>9.0f}"
              f"{t_sha / seconds:>10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
