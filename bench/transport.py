"""The ceiling for P2P fetch: py-libp2p's TCP+noise+yamux alone, two processes, one stream.

    python bench/transport.py [--size-mib 256] [--runs 3]

A receiver process listens on 127.0.0.1; a sender process dials it, opens one stream and
writes ``--size-mib`` of random bytes; the receiver times the stream from its first byte
to its last and reads it the way our bitswap reads (256 KiB reads). Each row is the median
of ``--runs``, each run in fresh processes:

- the library at its defaults (64 KiB and 1 MiB writes);
- the same with our tuning (``p2p/transport_tuning.py``: frames of one noise message,
  window updates in batches) and 1 MiB writes;
- our node's own host (``p2p/host.py``: tuning plus frames that survive cancellation)
  with 1 MiB writes: the ceiling that ``bench/p2p_fetch.py`` is measured against.

hashlib sha256 over the same bytes, in this process, is the same-run baseline. Figures are
printed; nothing is asserted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import MIB, ROOT

SELF = Path(__file__).resolve()
READ_SIZE = 1 << 18  # what p2p/_net.py's FrameReader asks for
PROTOCOL = "/bench/transport/1.0.0"
MODES = ("defaults", "tuned", "node")


def _host(mode: str) -> object:
    from libp2p import new_host
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.crypto.x25519 import create_new_key_pair as x25519
    from libp2p.custom_types import TProtocol
    from libp2p.security.noise.transport import PROTOCOL_ID as NOISE
    from libp2p.security.noise.transport import Transport as Noise
    from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX
    from libp2p.stream_muxer.yamux.yamux import Yamux

    from ipfs_mcp.p2p.config import NodeConfig
    from ipfs_mcp.p2p.host import build_host
    from ipfs_mcp.p2p.transport_tuning import apply_transport_tuning

    keys = create_new_key_pair()
    if mode == "node":
        return build_host(keys, NodeConfig())
    if mode == "tuned":
        apply_transport_tuning()
    return new_host(key_pair=keys,
                    sec_opt={TProtocol(NOISE): Noise(keys, noise_privkey=x25519().private_key)},
                    muxer_opt={TProtocol(YAMUX): Yamux})


def _receive(mode: str, size: int) -> None:
    import multiaddr
    import trio
    from libp2p.custom_types import TProtocol

    host = _host(mode)

    async def main() -> dict[str, float]:
        done = trio.Event()
        result: dict[str, float] = {}

        async def handler(stream: object) -> None:
            got = 0
            first = None
            while got < size:
                chunk = await stream.read(READ_SIZE)  # type: ignore[attr-defined]
                if not chunk:
                    break
                if first is None:
                    first = time.perf_counter()
                    cpu = time.process_time()
                got += len(chunk)
            result["seconds"] = time.perf_counter() - (first or time.perf_counter())
            result["cpu"] = time.process_time() - cpu
            result["bytes"] = got
            done.set()

        async with host.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):  # type: ignore[attr-defined]
            host.set_stream_handler(TProtocol(PROTOCOL), handler)  # type: ignore[attr-defined]
            addr = f"{host.get_addrs()[0]}"  # type: ignore[attr-defined]
            print(json.dumps({"addr": addr}), flush=True)
            with trio.fail_after(600):
                await done.wait()
            if result["bytes"] != size:
                result["seconds"] = -1.0
            return result

    print(json.dumps(trio.run(main)), flush=True)


def _send(mode: str, size: int, write: int, addr: str) -> None:
    import trio
    from libp2p.custom_types import TProtocol

    from ipfs_mcp.p2p.host import peer_info_from_addr

    host = _host(mode)
    chunk = os.urandom(write)

    async def main() -> None:
        info = peer_info_from_addr(addr)
        async with host.run([]):  # type: ignore[attr-defined]
            await host.connect(info)  # type: ignore[attr-defined]
            stream = await host.new_stream(info.peer_id, [TProtocol(PROTOCOL)])  # type: ignore[attr-defined]
            left = size
            cpu = time.process_time()
            while left:
                n = min(left, write)
                await stream.write(chunk[:n])
                left -= n
            print(json.dumps({"cpu": time.process_time() - cpu}), flush=True)
            # Stay until the receiver has everything (it then ends our stdin).
            await trio.to_thread.run_sync(sys.stdin.read)

    trio.run(main)


def one_run(mode: str, size: int, write: int) -> tuple[float, float, float]:
    """MB/s, and the receiver's and the sender's CPU seconds per GiB (robust to other load)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PY_YAMUX_")}
    env["PYTHONPATH"] = str(ROOT / "bench")
    receiver = subprocess.Popen([sys.executable, str(SELF), "_receive", mode, str(size)],
                                stdout=subprocess.PIPE, text=True, env=env)
    sender = None
    try:
        assert receiver.stdout is not None
        addr = json.loads(receiver.stdout.readline())["addr"]
        sender = subprocess.Popen(
            [sys.executable, str(SELF), "_send", mode, str(size), str(write), addr],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        got = json.loads(receiver.stdout.readline())
        assert sender.stdout is not None
        sent = json.loads(sender.stdout.readline())
    finally:
        if sender is not None:
            if sender.stdin:
                sender.stdin.close()
            sender.wait(timeout=30)
        receiver.wait(timeout=30)
    if got["seconds"] <= 0:
        raise RuntimeError(f"{mode}: the stream ended short")
    per_gib = (1 << 30) / size
    return size / 1e6 / got["seconds"], got["cpu"] * per_gib, sent["cpu"] * per_gib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    size = args.size_mib * MIB
    data = os.urandom(size)
    start = time.perf_counter()
    hashlib.sha256(data).digest()
    sha = size / 1e6 / (time.perf_counter() - start)
    del data
    print(f"{args.size_mib} MiB over one stream, TCP+noise+yamux on 127.0.0.1, "
          f"median of {args.runs} (MB/s):")
    print(f"  {'':40s} {'MB/s':>7s}  {'runs':>9s}  CPU s/GiB: receiver, sender")
    print(f"  {'hashlib sha256 (baseline)':40s} {sha:7.0f}")
    rows = [("library defaults, 64 KiB writes", "defaults", 64 << 10),
            ("library defaults, 1 MiB writes", "defaults", MIB),
            ("tuned (transport_tuning), 1 MiB writes", "tuned", MIB),
            ("our node's host, 1 MiB writes", "node", MIB)]
    for label, mode, write in rows:
        runs = [one_run(mode, size, write) for _ in range(args.runs)]
        rates = [r[0] for r in runs]
        spread = f"{min(rates):.0f}-{max(rates):.0f}"
        print(f"  {label:40s} {statistics.median(rates):7.0f}  {spread:>9s}  "
              f"{statistics.median(r[1] for r in runs):5.2f}, "
              f"{statistics.median(r[2] for r in runs):5.2f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_receive":
        _receive(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "_send":
        _send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    else:
        main()
