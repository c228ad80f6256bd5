"""``ipfs-mcp add`` (stored) vs Kubo 0.43's ``ipfs add`` (stored), same file, same run.

Contenders, each on a fresh repo, each as a command a user would type (process start-up
included), each asked for the same CID:
  * ``ipfs add -Q FILE`` of Kubo 0.43.1 (built by tests/interop/gobuild.py), no daemon,
    Kubo's default datastore: flatfs with ``sync: false`` (no fsync of the blocks);
  * the same with flatfs ``sync: true``, the durability ipfs-mcp's repo has;
  * ``ipfs-mcp add -Q FILE`` into its own repo (``HF_HOME``; fsync, as in use).
The page cache is warmed first, so both read the file from memory. Target (issue 10): ours
>= 1.5x Kubo. Nothing is asserted on time: this prints figures.

    python bench/kubo043_add.py [--size-mib 1024] [--cid-version 0|1] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import MIB, mbps, random_file, timed
from _programs import kubo043_binary


def run(argv: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(argv, capture_output=True, env=env, timeout=7200, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.decode()[-2000:]}")
    return done.stdout.decode().strip().splitlines()[-1].strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--cid-version", type=int, default=0, choices=(0, 1))
    parser.add_argument("--rounds", type=int, default=2, help="best of N, each on a fresh repo")
    args = parser.parse_args()
    ipfs = kubo043_binary()
    if ipfs is None:
        return 2
    ours_cmd = shutil.which("ipfs-mcp")
    if ours_cmd is None:
        print("ipfs-mcp is not installed (pip install -e .)", file=sys.stderr)
        return 2
    size = args.size_mib * MIB
    flags = [f"--cid-version={args.cid_version}"]
    with tempfile.TemporaryDirectory(prefix="kubo043-add-") as tmp:
        work = Path(tmp)
        data = random_file(work / "input.bin", size)
        _warm(data)  # page cache: both read the file from memory
        best: dict[str, tuple[float, str]] = {}
        for round_ in range(args.rounds):
            results = []
            for label, sync in ((KUBO, False), (KUBO_SYNC, True)):
                kubo_repo = work / f"kubo-{round_}-{sync}"
                kenv = {**os.environ, "IPFS_PATH": str(kubo_repo), "IPFS_TELEMETRY": "off"}
                subprocess.run([str(ipfs), "init", "--profile", "test"], env=kenv,
                               capture_output=True, check=True, timeout=120)
                _set_flatfs_sync(kubo_repo / "config", sync)
                cid, seconds = timed(
                    lambda e=kenv: run([str(ipfs), "add", "-Q", *flags, str(data)], e))
                results.append((label, seconds, cid))
                shutil.rmtree(kubo_repo, ignore_errors=True)
            oenv = {**os.environ, "HF_HOME": str(work / f"hf-{round_}")}
            ocid, ot = timed(lambda e=oenv: run([ours_cmd, "add", "-Q", *flags, str(data)], e))
            results.append((OURS, ot, ocid))
            shutil.rmtree(work / f"hf-{round_}", ignore_errors=True)
            if len({cid for _, _, cid in results}) != 1:
                print(f"CIDs differ: {results}", file=sys.stderr)
                return 1
            for name, seconds, cid in results:
                if name not in best or seconds < best[name][0]:
                    best[name] = (seconds, cid)
    print(f"add, {args.size_mib} MiB random file, CIDv{args.cid_version}, best of "
          f"{args.rounds} (fresh repo each)")
    for name, (seconds, cid) in best.items():
        print(f"  {name:<32} {mbps(size, seconds):8.1f} MB/s  {seconds:7.2f} s  {cid}")
    ours_s = best[OURS][0]
    print(f"  ratio ipfs-mcp / Kubo 0.43 default (speed)    {best[KUBO][0] / ours_s:6.2f}  "
          "(target >= 1.5)")
    print(f"  ratio ipfs-mcp / Kubo 0.43 sync=true (speed)  {best[KUBO_SYNC][0] / ours_s:6.2f}")
    return 0


KUBO = "Kubo 0.43.1 ipfs add (default)"
KUBO_SYNC = "Kubo 0.43.1 ipfs add (sync)"
OURS = "ipfs-mcp add (stored, fsync)"


def _set_flatfs_sync(config_path: Path, sync: bool) -> None:
    config = json.loads(config_path.read_text())
    for mount in config["Datastore"]["Spec"]["mounts"]:
        if mount.get("type") == "flatfs":
            mount["sync"] = sync
    config_path.write_text(json.dumps(config, indent=2))


def _warm(path: Path) -> None:
    with open(path, "rb", buffering=0) as f:
        while f.read(64 * MIB):
            pass


if __name__ == "__main__":
    sys.exit(main())
