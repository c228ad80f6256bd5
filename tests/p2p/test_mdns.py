"""Two nodes with mDNS on find each other on a LAN, with no address given, and exchange
a file.

The LAN is the test's own: two network namespaces it creates (and deletes afterwards),
joined by a veth pair with one address and a multicast route at each end, so that nothing
is announced on the machine's real interfaces. Each node is a process (``mdns_peer.py``)
started with ``ip netns exec`` in its own namespace. The test needs root and
``ip``; it is skipped, saying why, only where a namespace cannot be made.
"""

from __future__ import annotations

import os
import queue
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ipfs_mcp.p2p.discovery import expand_unspecified, interface_ipv4s

PEER_SCRIPT = Path(__file__).with_name("mdns_peer.py")
LAN = ("10.231.0.1", "10.231.0.2")
DEADLINE = 90.0  # the whole exchange; mDNS announces within a second or two


def _ip(*args: str, netns: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = ["ip", *(["netns", "exec", netns, "ip"] if netns else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)


@pytest.fixture
def lan() -> Iterator[tuple[str, str]]:
    """Two fresh network namespaces joined by a veth pair, a LAN of two machines."""
    if shutil.which("ip") is None:
        pytest.skip("mDNS test: the `ip` tool (iproute2) is not installed")
    if os.geteuid() != 0:
        pytest.skip("mDNS test: creating a network namespace needs root")
    tag = f"{os.getpid()}-{secrets.token_hex(3)}"
    names = (f"ipfsmcp-mdns-a-{tag}", f"ipfsmcp-mdns-b-{tag}")
    made: list[str] = []
    try:
        for name in names:
            done = _ip("netns", "add", name)
            if done.returncode != 0:
                pytest.skip("mDNS test: cannot create a network namespace: "
                            f"{done.stderr.strip()}")
            made.append(name)
        a, b = names
        steps = [
            (a, ("link", "add", "lan0", "type", "veth", "peer", "name", "lan1")),
            (a, ("link", "set", "lan1", "netns", b)),
        ]
        for name, end, ip in ((a, "lan0", LAN[0]), (b, "lan1", LAN[1])):
            steps += [
                (name, ("link", "set", "lo", "up")),
                (name, ("addr", "add", f"{ip}/24", "dev", end)),
                (name, ("link", "set", end, "up")),
                (name, ("route", "add", "224.0.0.0/4", "dev", end)),  # mDNS multicast
            ]
        for name, step in steps:
            done = _ip(*step, netns=name)
            assert done.returncode == 0, f"ip {' '.join(step)} in {name}: {done.stderr}"
        yield a, b
    finally:
        for name in made:
            _ip("netns", "del", name)


class Peer:
    """One ``mdns_peer.py`` process in the namespace, its stdout read line by line."""

    def __init__(self, netns: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, str(PEER_SCRIPT), *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        self._pumps = [threading.Thread(target=self._pump, daemon=True),
                       threading.Thread(target=self._pump_stderr, daemon=True)]
        for pump in self._pumps:
            pump.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def _pump_stderr(self) -> None:
        assert self.proc.stderr is not None
        self.stderr.extend(self.proc.stderr)

    def expect(self, word: str, deadline: float) -> str:
        """The rest of the next line starting with ``word``, waiting until ``deadline``."""
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {word!r} line in time; stderr: {''.join(self.stderr)}"
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            assert line is not None, f"exited before {word!r}: {''.join(self.stderr)}"
            head, _, rest = line.partition(" ")
            if head == word:
                return rest

    def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)
        for pump in self._pumps:  # they end at the pipes' end of file, now that it exited
            pump.join(timeout=15)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


def test_two_nodes_find_each_other_by_mdns_and_exchange_a_file(lan: tuple[str, str],
                                                               tmp_path: Path) -> None:
    payload = os.urandom(700_000)  # three leaves and a root
    (tmp_path / "in.bin").write_bytes(payload)
    out = tmp_path / "out.bin"
    deadline = time.monotonic() + DEADLINE
    peers: list[Peer] = []
    try:
        # Both listen on every interface of their machine, so each must announce its LAN
        # address, not 0.0.0.0 (which the other machine would take for itself).
        adder = Peer(lan[0], "--repo", str(tmp_path / "a"), "--listen", "/ip4/0.0.0.0/tcp/0",
                     "--add", str(tmp_path / "in.bin"))
        peers.append(adder)
        adder_id = adder.expect("ready", deadline)
        cid = adder.expect("added", deadline)
        fetcher = Peer(lan[1], "--repo", str(tmp_path / "b"), "--listen",
                       "/ip4/0.0.0.0/tcp/0", "--fetch", cid, "--peer", adder_id,
                       "--out", str(out))
        peers.append(fetcher)
        fetcher_id = fetcher.expect("ready", deadline)
        assert fetcher_id != adder_id
        # Each learns of the other by mDNS alone: neither was given an address.
        assert fetcher.expect("connected", deadline) == adder_id
        assert adder.expect("connected", deadline) == fetcher_id
        assert int(fetcher.expect("fetched", deadline)) == len(payload)
        assert out.read_bytes() == payload
    finally:
        for peer in peers:
            peer.close()


def test_unspecified_listen_address_is_announced_per_interface() -> None:
    addrs = ["/ip4/0.0.0.0/tcp/4001", "/ip4/10.0.0.9/tcp/4002", "/ip4/0.0.0.0/tcp/4001"]
    assert expand_unspecified(addrs, ["192.168.1.5", "10.0.0.9"]) == [
        "/ip4/192.168.1.5/tcp/4001", "/ip4/10.0.0.9/tcp/4001", "/ip4/10.0.0.9/tcp/4002"]
    assert "127.0.0.1" not in interface_ipv4s()
