"""Our nodes behind two NATs reach each other through a Kubo 0.43.1 relay on the lab's internet.

Each home router drops new inbound connections, so neither node can dial the other. Both run
``ipfs-mcp daemon --relay <kubo>``: each reserves a slot on the relay in ``pub`` and
advertises ``<relay>/p2p-circuit``. Then, in each home, ``ipfs-mcp get --peer
<relay>/p2p-circuit/p2p/<the other daemon>`` (a node of its own, behind that home's NAT)
dials through the relay and writes the other's file, verified, both ways. The times to the
reservation and to the first relayed connection are printed.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from .lab import Home, Internet, OurNode, seconds_until

WAIT = 60.0  # seconds for each step, on a loaded 2-core machine


def _until(what: str, ready: Callable[[], object], timeout: float = WAIT) -> float:
    return seconds_until(what, ready, timeout)


def _logged(node: OurNode, pattern: str) -> bool:
    return re.search(pattern, node.log_path.read_text(errors="replace")) is not None


def _logged_at(node: OurNode, pattern: str) -> float:
    """The time (UNIX seconds) of the first log line of ``node`` matching ``pattern``.

    Raises:
        AssertionError: no such line.
    """
    for line in node.log_path.read_text(errors="replace").splitlines():
        if re.search(pattern, line):
            stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            return stamp.timestamp()  # logging stamps local time, as a naive datetime reads
    raise AssertionError(f"{node.name} never logged {pattern!r}")


def _seconds_between(node: OurNode, first: str, then: str) -> float:
    return _logged_at(node, then) - _logged_at(node, first)


def _get(internet: Internet, home: Home, tmp: Path, cid: str, peer: str) -> tuple[bytes, float]:
    """``ipfs-mcp get CID --peer PEER`` run in ``home`` with a repo of its own: the bytes it
    wrote and the seconds it took."""
    tmp.mkdir()
    out = tmp / "got"
    env = {"HF_HOME": str(tmp / "hf"), "HF_HUB_OFFLINE": "1"}
    started = time.monotonic()
    done = internet.run(home, [sys.executable, "-m", "ipfs_mcp.server.cli", "get", cid,
                               "-o", str(out), "--peer", peer], timeout=WAIT, env=env)
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return out.read_bytes(), took


def test_two_of_our_nodes_behind_nat_exchange_files_through_a_kubo_relay(
        internet: Internet, tmp_path: Path) -> None:
    relay = internet.kubo(internet.add_public("relay"), relay_service=True, force_public=True)
    home_a, home_b = internet.add_home("a"), internet.add_home("b")
    # The routers keep strangers out: nobody on the internet reaches a home host directly.
    assert internet.dial(home_b, home_a.public_ip, 4001, timeout=2.0) != "connected"

    # Both daemons start at once: each start is most of this test's time.
    with ThreadPoolExecutor(2) as pool:
        starting = [pool.submit(internet.ours, home, "--relay", relay.dial_addr,
                                "--log-level", "INFO") for home in (home_a, home_b)]
        a, b = (f.result() for f in starting)
    for node in (a, b):
        _until(f"{node.name}'s reservation on the Kubo relay",
               functools.partial(_logged, node, "reservation on relay"))
    reserved = [_seconds_between(n, "listening on", "reservation on relay") for n in (a, b)]
    # `ipfs-mcp id` shows the relayed address beside the direct one.
    circuit_a = f"{relay.dial_addr}/p2p-circuit/p2p/{a.peer_id}"
    _until("A's card listing its relayed address",
           lambda: circuit_a in a.card()["addresses"], timeout=WAIT)

    data_a, data_b = os.urandom(20_000), os.urandom(30_000)
    (tmp_path / "a.bin").write_bytes(data_a)
    (tmp_path / "b.bin").write_bytes(data_b)
    cid_a = a.cli("add", "-Q", str(tmp_path / "a.bin")).decode().strip()
    cid_b = b.cli("add", "-Q", str(tmp_path / "b.bin")).decode().strip()

    asked = time.time()
    got_a, first = _get(internet, home_b, tmp_path / "in-b", cid_a, circuit_a)
    assert got_a == data_a
    relayed_in = _logged_at(a, r"relayed connection from \S+ through relay " + relay.peer_id)
    got_b, second = _get(internet, home_a, tmp_path / "in-a",
                         cid_b, f"{relay.dial_addr}/p2p-circuit/p2p/{b.peer_id}")
    assert got_b == data_b
    print(f"\nreservation {reserved[0]:.2f} s and {reserved[1]:.2f} s after each node "
          f"listened; first relayed connection {relayed_in - asked:.2f} s after `get` was "
          f"started (its own node's start included); each get, start to verified file: "
          f"{first:.2f} s (B from A), {second:.2f} s (A from B)")
