"""Nocopy benchmarks (issue 13): storing a model from the HF cache, and fetching one into it.

    python bench/nocopy.py [--size-mib 1024] [--rounds 3] [--no-fsync] [--skip-store]
                           [--skip-fetch]

One model (a random ``model.safetensors`` of ``--size-mib`` and a config) is laid out as a
real HuggingFace hub cache (blobs named by sha256, snapshot symlinks, refs/main).

1. ``store_model`` of it (the MCP tool's function) into a fresh repo, by reference
   (nocopy, the default for the hub cache) and copied (``nocopy=false``), against hashlib
   sha256 over the same bytes in the same run; and how much each grows the repo (allocated
   blocks, ``st_blocks``).
2. A fetch into another HF cache over P2P between two processes: one serves the model
   stored by reference; a second process fetches it into its own ``HF_HOME`` with the
   receiving path (written once into the blobs) and, in a fresh ``HF_HOME``, with the
   copying path (blocks into the repo, then copied into the blobs). For each: throughput,
   the fetching process's ``write_bytes`` (``/proc/<pid>/io``) per byte of model, and the
   growth of its ``HF_HOME`` (``st_blocks``).

Figures are printed; nothing is asserted. Repos sync to disk as the server's do, unless
``--no-fsync``.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
from _common import MIB, ROOT, mbps

from ipfs_mcp.backends.core.limits import allocated_bytes

SELF = Path(__file__).resolve()
REPO_ID = "bench/nocopy-model"
COMMIT = "b" * 40


# -- the model ------------------------------------------------------------------------------
def make_hub(hub: Path, size: int) -> int:
    """A hub cache holding REPO_ID; returns the model's size in bytes."""
    folder = hub / f"models--{REPO_ID.replace('/', '--')}"
    (folder / "blobs").mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(COMMIT)
    snapshot = folder / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    total = 0
    for name, length in (("config.json", None), ("model.safetensors", size)):
        tmp = folder / "blobs" / "tmp"
        digest = hashlib.sha256()
        with open(tmp, "wb") as out:
            if length is None:
                data = b'{"model_type": "bert", "hidden_size": 8}\n'
                out.write(data)
                digest.update(data)
                total += len(data)
            else:
                left = length
                while left:
                    piece = os.urandom(min(left, 64 * MIB))
                    out.write(piece)
                    digest.update(piece)
                    left -= len(piece)
                total += length
        blob = folder / "blobs" / digest.hexdigest()
        os.replace(tmp, blob)
        (snapshot / name).symlink_to(os.path.relpath(blob, snapshot))
    return total




def write_bytes() -> int:
    """This process's bytes sent to the storage layer so far (``/proc/self/io``)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError("no write_bytes in /proc/self/io")


def sha256_file(path: Path) -> float:
    """Seconds to hash a file with hashlib, 1 MiB reads (the baseline)."""
    start = time.perf_counter()
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as handle:
        while piece := handle.read(MIB):
            digest.update(piece)
    return time.perf_counter() - start


# -- part 1: store_model ----------------------------------------------------------------------
def bench_store(hub: Path, work: Path, size: int, fsync: bool, rounds: int) -> None:
    from ipfs_mcp.backends.hf_cache import HFCacheBackend
    from ipfs_mcp.backends.repo.repository import Repo
    from ipfs_mcp.tools import content
    from ipfs_mcp.tools.roots import AllowedRoots

    blobs = sorted((hub / f"models--{REPO_ID.replace('/', '--')}" / "blobs").iterdir(),
                   key=lambda p: p.stat().st_size)
    weights = blobs[-1]
    sha256_file(weights)  # warm the page cache: every contender reads from memory

    def store(label: str, nocopy: bool | None) -> tuple[float, int, str]:
        repo_dir = work / f"repo-{label}"
        shutil.rmtree(repo_dir, ignore_errors=True)
        backend = HFCacheBackend(Repo(repo_dir, fsync=fsync), hub_cache=hub)
        before = allocated_bytes(repo_dir)
        call = functools.partial(content.store_model, backend, REPO_ID,
                                 roots=AllowedRoots.of([hub]), hub_cache=hub, nocopy=nocopy)
        start = time.perf_counter()
        result = anyio.run(call, backend="trio")
        return time.perf_counter() - start, allocated_bytes(repo_dir) - before, result.root_cid

    # One untimed store first: the first call pays for imports and the first SQLite open
    # (a py-spy profile put half of a cold 512 MiB run there), which is not throughput.
    store("warm-up", None)
    # The box is shared: sha256 and the nocopy store alternate, and each keeps its best
    # (and worst) round, so a burst of other work does not decide the ratio.
    sha: list[float] = []
    nocopy: list[tuple[float, int, str]] = []
    for _ in range(rounds):
        sha.append(sha256_file(weights))
        nocopy.append(store("nocopy", None))
    copy = store("copy", False)
    best = min(sha)
    rows = [("hashlib sha256 (baseline)", sha, None, ""),
            ("store_model nocopy (default)", [n[0] for n in nocopy], nocopy[0][1], nocopy[0][2]),
            ("store_model copy", [copy[0]], copy[1], copy[2])]
    print(f"\nstore_model of a {size / MIB:.0f} MiB model from the HF cache "
          f"(fsync {'on' if fsync else 'off'}; best of {rounds} for the first two, range)")
    print(f"{'contender':30} {'MiB/s':>8} {'range':>11} {'x sha256':>9} {'repo growth':>12}")
    for label, times, grown, cid in rows:
        growth = "" if grown is None else f"{grown / size * 100:.3f} %"
        spread = f"{mbps(size, max(times)):.0f}-{mbps(size, min(times)):.0f}"
        print(f"{label:30} {mbps(size, min(times)):8.0f} {spread:>11} "
              f"{best / min(times):9.2f} {growth:>12}  {cid}")


# -- part 2: P2P fetch into the HF cache -------------------------------------------------------
def _serve(hub: str, repo_dir: str) -> None:
    import trio

    from ipfs_mcp.backends.core.cids import cid_str
    from ipfs_mcp.backends.hf_cache import HFCacheBackend
    from ipfs_mcp.backends.repo.repository import Repo
    from ipfs_mcp.p2p import NodeConfig, open_node

    repo = Repo(Path(repo_dir), fsync=False)
    root = HFCacheBackend(repo, hub_cache=Path(hub)).add_hf_model(REPO_ID).root  # nocopy

    async def main() -> None:
        async with open_node(repo, NodeConfig()) as node:
            print(json.dumps({"addr": node.addrs[0], "cid": cid_str(root)}), flush=True)
            await trio.to_thread.run_sync(sys.stdin.read)  # until the parent closes it

    trio.run(main)


def _fetch(home: str, addr: str, cid: str, mode: str, fsync: bool) -> None:
    import trio

    from ipfs_mcp.backends.hf_cache import HFCacheBackend
    from ipfs_mcp.backends.hub import models as hub
    from ipfs_mcp.backends.hub import receive as hf_receive
    from ipfs_mcp.backends.repo.repository import Repo
    from ipfs_mcp.p2p import NodeConfig, open_node

    hf_home = Path(home)
    repo = Repo(hf_home / "ipfs", fsync=fsync)
    hub_cache = hf_home / "hub"
    out: dict[str, object] = {}

    async def main() -> None:
        async with open_node(repo, NodeConfig()) as node:
            await node.connect_peer(addr)
            backend = HFCacheBackend(repo, hub_cache=hub_cache, fetcher=node.fetcher())
            start_io, start = write_bytes(), time.perf_counter()
            if mode == "nocopy":
                result = await trio.to_thread.run_sync(lambda: hf_receive.export_model(
                    backend, hub_cache, cid, REPO_ID))
            else:
                result = await trio.to_thread.run_sync(lambda: hub.export_model(
                    backend, hub_cache, cid, REPO_ID))
            out.update(seconds=time.perf_counter() - start, write_bytes=write_bytes() - start_io,
                       by_reference=list(result.by_reference), copied=list(result.copied),
                       into_blobs=result.written)

    trio.run(main)
    print(json.dumps(out), flush=True)


def bench_fetch(hub: Path, work: Path, size: int, fsync: bool) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, str(SELF), "--child-serve", str(hub),
                               str(work / "provider")], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert server.stdout is not None
        hello = json.loads(server.stdout.readline())
        print(f"\nfetch of the {size / MIB:.0f} MiB model into another HF cache over P2P, two "
              f"processes (fsync {'on' if fsync else 'off'})")
        print(f"{'path':34} {'MiB/s':>8} {'written/model':>14} {'into blobs':>11} "
              f"{'HF_HOME growth/model':>21}")
        for mode in ("nocopy", "copy"):
            home = work / f"home-{mode}"
            home.mkdir()
            before = allocated_bytes(home)
            done = subprocess.run(
                [sys.executable, str(SELF), "--child-fetch", str(home), hello["addr"],
                 hello["cid"], mode] + ([] if fsync else ["--no-fsync"]),
                capture_output=True, text=True, env=env, check=True, timeout=3600)
            got = json.loads(done.stdout.strip().splitlines()[-1])
            grown = allocated_bytes(home) - before
            label = ("receive: written once into blobs" if mode == "nocopy"
                     else "copy: blocks, then blobs")
            print(f"{label:34} {mbps(size, float(got['seconds'])):8.1f} "
                  f"{int(got['write_bytes']) / size:14.3f} "
                  f"{int(got['into_blobs']) / size:11.3f} {grown / size:21.3f}")
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--no-fsync", action="store_true")
    parser.add_argument("--skip-store", action="store_true")
    parser.add_argument("--skip-fetch", action="store_true")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of sha256 and nocopy")
    parser.add_argument("--child-serve", nargs=2, metavar=("HUB", "REPO"))
    parser.add_argument("--child-fetch", nargs=4, metavar=("HOME", "ADDR", "CID", "MODE"))
    args = parser.parse_args()
    if args.child_serve:
        _serve(*args.child_serve)
        return
    if args.child_fetch:
        _fetch(*args.child_fetch, fsync=not args.no_fsync)
        return
    with tempfile.TemporaryDirectory(prefix="nocopy-bench-", dir=os.environ.get("BENCH_DIR")
                                     ) as tmp:
        work = Path(tmp)
        size = make_hub(work / "hub", args.size_mib * MIB)
        if not args.skip_store:
            bench_store(work / "hub", work, size, not args.no_fsync, args.rounds)
        if not args.skip_fetch:
            bench_fetch(work / "hub", work, size, not args.no_fsync)


if __name__ == "__main__":
    main()
