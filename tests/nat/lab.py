"""A simulated internet of network namespaces, with home routers doing NAT, for P2P tests.

Everything lives in namespaces this module makes (named ``ipfsmcp-<pid>-<random>-<name>``,
so parallel runs never collide) and removes at the end, killing every process in them
first, even when the test failed (and a new lab removes those of a test process that was
killed before it could). No namespace has a route out of the lab: nothing leaves
the machine, and the tests' own 127.0.0.1 is never touched::

    pub  (the "internet", 11.77.0.0/24: libp2p counts it as public, unlike 10/8,
     │    172.16/12, 192.168/16 or 100.64/10, where it will not relay nor hole-punch)
     │    bridge "inet" 11.77.0.1; a process may run in pub itself on that address
     ├── add_public("relay")     a host of its own on the internet, 11.77.0.k
     ├── add_home("a")           router a: wan 11.77.0.k, lan 192.168.n.1
     │      │   MASQUERADE out of wan (--random-fully when symmetric: a random source
     │      │   port per flow, so hole punching cannot work), ip_forward=1, and
     │      │   new inbound connections dropped, both forwarded and to the router itself
     │      │   (else the router would answer a punch with a reset)
     │      └── host a: 192.168.n.2, default route via the router
     └── add_home("b", symmetric=True) ...

API (all waits bounded; every failure says what happened, with the log's tail)::

    with Internet(tmp_path) as net:             # or the ``internet`` fixture (conftest)
        relay_host = net.add_public("relay")    # -> Public(name, ns, ip)
        a = net.add_home("a")                   # -> Home(name, router, ns, public_ip, ip, ...)
        b = net.add_home("b", symmetric=True)
        relay = net.kubo(relay_host, relay_service=True, force_public=True,
                         autonat_service=True)
        ka = net.kubo(a, relays=[relay.dial_addr],
                      config={"Internal.Libp2pForceReachability": "private"})
        ka.cli("swarm", "peers")                # ``ipfs`` CLI run inside a's namespace
        ka.rpc("swarm/peers")                   # the RPC API, as KuboDaemon.rpc answers
        ka.connections(peer_id)                 # its connections' addresses to a peer
        ka.wait_log("hole punch attempt with peer failed")   # with GOLOG_LOG_LEVEL set
        node = net.ours(a, "--bootstrap", relay.dial_addr)   # ipfs-mcp daemon in host a
        other = net.ours(b, wait=False).ready()  # start several, then wait for each
        node.id()                               # ``ipfs-mcp id --json`` of that daemon
        node.card()                             # the same card, read from its file
        node.cli("add", "-Q", path)             # any ``ipfs-mcp`` command on its repo
        net.listen(a, 9000); net.dial(relay_host, a.public_ip, 9000)  # -> "timed out"
        proc = net.spawn(a, ["some", "program"], name="x", ready="listening")
        net.run(a, ["ip", "route"])             # one command in a namespace, bounded
        wait_until(lambda: ... or None, timeout=30, what="...")  # bounded polling
        print(net.logs())                       # every program's log tail

``kubo(where, ...)`` starts Kubo 0.43.1 (the project's build, :mod:`tests.interop.gobuild`)
as a :class:`tests.interop.kubo_daemon.KuboDaemon` whose binary is a wrapper that runs
``ip netns exec NS ipfs``: init, the daemon and every CLI call run inside the namespace,
and the CLI reaches the daemon's RPC API (127.0.0.1 there) through the repo's ``api``
file. :meth:`LabKubo.rpc` posts to that API from a small Python client run in the
namespace (an HTTP call from the root namespace would reach the wrong 127.0.0.1). Its
swarm listens on the namespace's own address, TCP port 4001 unless told; no bootstrap
peers unless given, mDNS off; ``relay_service``/``force_public`` for the relay on the
internet, ``autonat_service`` for a peer that answers AutoNAT; ``relays`` (static relays)
turns on the relay client and hole punching, for a Kubo behind NAT.

What makes Kubo behind NAT hole-punch every time here: give it its relay as a static
relay and no bootstrap peers (a bootstrap dial racing the relay dial can take the listen
port's reuse away, and without it the node never learns its public port), and tell it
its reachability is private (``Internal.Libp2pForceReachability``) so it reserves at
once instead of waiting for AutoNAT.

``ours(where, *args)`` starts ``ipfs-mcp daemon --listen /ip4/<ns address>/tcp/4001``
(plus ``args``: ``--bootstrap``, ``--role``...) with its own ``HF_HOME``; its card (peer
id, addresses, reachability) is the one the daemon keeps in its repo, which
``ipfs-mcp id --json`` prints (:meth:`OurNode.id`) and :meth:`OurNode.card` reads. :meth:`OurNode.cli` runs any ``ipfs-mcp`` command on that repo
inside the namespace (``add`` writes into the repo the daemon serves).

Without root, ``ip`` or ``iptables`` the lab skips saying why (:func:`require_lab`); with
``IPFS_MCP_REQUIRE_INTEROP=1`` (CI) that is a failure instead.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tests.interop._process import DaemonProcess, InteropError, InteropTimeout
from tests.interop.gobuild import interop_skip
from tests.interop.kubo_daemon import KuboDaemon, kubo_daemon_binary

__all__ = ["Home", "Internet", "LabError", "LabKubo", "OurNode", "Public", "Where",
           "lab_skip_reason", "require_lab", "wait_until"]

NET = "11.77.0"  # the lab's internet: public to libp2p, and existing only in the lab
BRIDGE_IP = f"{NET}.1"
T = TypeVar("T")
SWARM_PORT = 4001
STEP_TIMEOUT = 20.0  # one ip/iptables/sysctl call
START_TIMEOUT = 90.0  # one daemon, on a loaded 2-core machine
STOP_GRACE = 2.0  # a lab is torn down, not shut down gracefully: SIGTERM, then kill


class LabError(InteropError):
    """The lab could not be built, or a process in it failed."""


def lab_skip_reason() -> str | None:
    """Why the lab cannot be built here, or None."""
    if sys.platform != "linux":
        return f"the NAT lab needs Linux network namespaces, not {sys.platform}"
    if os.geteuid() != 0:
        return "the NAT lab needs root (network namespaces and iptables)"
    for tool, package in (("ip", "iproute2"), ("iptables", "iptables")):
        if shutil.which(tool) is None:
            return f"the NAT lab needs `{tool}` (Debian package {package})"
    return None


def require_lab() -> None:
    """Skip (or, under ``IPFS_MCP_REQUIRE_INTEROP=1``, fail) when the lab cannot run."""
    reason = lab_skip_reason()
    if reason is not None:
        interop_skip(reason)


def wait_until(check: Callable[[], T | None], *, timeout: float, what: str,
               interval: float = 0.1) -> T:
    """Ask ``check`` until it returns something true (not None, False, nor an empty list
    or string: "the direct connections" must be some); that value.
    Bounded in time and in count (``timeout / interval + 1`` asks at most).

    Raises:
        InteropTimeout: ``what`` did not happen in time.
    """
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 1):
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)  # polling a process we cannot subscribe to
    raise InteropTimeout(f"{what} did not happen within {timeout:.1f} s")


def seconds_until(what: str, ready: Callable[[], object], timeout: float,
                  interval: float = 0.1) -> float:
    """:func:`wait_until` for a test that records how long ``ready`` took to hold.

    Raises:
        InteropTimeout: ``what`` did not happen in time.
    """
    started = time.monotonic()
    wait_until(ready, timeout=timeout, what=what, interval=interval)
    return time.monotonic() - started


@dataclass(frozen=True)
class Public:
    """A host on the lab's internet: its namespace and its address."""

    name: str
    ns: str
    ip: str


@dataclass(frozen=True)
class Home:
    """A home network: a NAT router and one host behind it."""

    name: str
    router: str  # the router's namespace
    ns: str  # the host's namespace (where its programs run)
    public_ip: str  # the router's address on the internet: what peers see
    ip: str  # the host's private address
    symmetric: bool


Where = Public | Home


class Internet:
    """The lab: build it, start programs in it, tear it all down (see the module docstring).

    Args:
        base_dir: a folder for logs, repos and wrappers (one sub-folder per program).

    Raises:
        LabError: a namespace or rule could not be made (the lab is torn down).
    """

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = Path(base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.tag = f"ipfsmcp-{os.getpid()}-{secrets.token_hex(2)}"
        self.namespaces: list[str] = []
        self.processes: list[DaemonProcess] = []
        self.nodes: list[LabKubo | OurNode] = []
        self._hosts = itertools.count(2)  # 11.77.0.k
        self._homes = itertools.count(1)  # 192.168.n.0/24
        self._names: set[str] = set()
        started = time.monotonic()
        _remove_stale_labs()
        try:
            self.pub = self._namespace("pub")
            self._ip(self.pub, "link", "add", "inet", "type", "bridge")
            self._ip(self.pub, "addr", "add", f"{BRIDGE_IP}/24", "dev", "inet")
            self._ip(self.pub, "link", "set", "inet", "up")
            self.here = Public("pub", self.pub, BRIDGE_IP)
        except BaseException:
            self.close()
            raise
        self.setup_seconds = time.monotonic() - started

    # -- building ----------------------------------------------------------------------
    def add_public(self, name: str) -> Public:
        """A host on the internet with an address of its own (11.77.0.k).

        Raises:
            LabError: the namespace or its link could not be made.
        """
        ns = self._namespace(name)
        ip = f"{NET}.{next(self._hosts)}"
        self._wire_to_bridge(ns, "eth0", ip)
        return Public(name, ns, ip)

    def add_home(self, name: str, *, symmetric: bool = False) -> Home:
        """A NAT router on the internet and one host behind it (see the module docstring).

        ``symmetric`` maps every flow to a random source port (``--random-fully``), as a
        carrier-grade or strict firewall does: peers see a port that the next flow will
        not use, so hole punching cannot work.

        Raises:
            LabError: a namespace, link or rule could not be made.
        """
        router, host = self._namespace(f"{name}-r"), self._namespace(name)
        public_ip, n = f"{NET}.{next(self._hosts)}", next(self._homes)
        lan_ip, host_ip = f"192.168.{n}.1", f"192.168.{n}.2"
        self._wire_to_bridge(router, "wan", public_ip)
        self._ip(router, "link", "add", "lan", "type", "veth", "peer", "name", "eth0",
                 "netns", host)
        self._ip(router, "addr", "add", f"{lan_ip}/24", "dev", "lan")
        self._ip(router, "link", "set", "lan", "up")
        self._ip(host, "addr", "add", f"{host_ip}/24", "dev", "eth0")
        self._ip(host, "link", "set", "eth0", "up")
        self._ip(host, "route", "add", "default", "via", lan_ip)
        self._exec(router, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        masquerade = ["-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"]
        self._exec(router, "iptables", *masquerade, *(["--random-fully"] if symmetric else []))
        for chain in ("FORWARD", "INPUT"):
            self._exec(router, "iptables", "-A", chain, "-i", "wan", "-m", "conntrack",
                       "--ctstate", "NEW", "-j", "DROP")
        return Home(name, router, host, public_ip, host_ip, symmetric)

    # -- programs ----------------------------------------------------------------------
    def run(self, where: Where | str, argv: Sequence[str], *, timeout: float = 30.0,
            env: Mapping[str, str] | None = None, input: bytes | None = None
            ) -> subprocess.CompletedProcess[bytes]:
        """Run one command in a namespace and wait for it (bounded); its result, whatever
        its exit status.

        Raises:
            InteropTimeout: it ran longer than ``timeout`` (it is killed).
        """
        argv = ["ip", "netns", "exec", _ns(where), *argv]
        try:
            return subprocess.run(argv, input=input or b"", capture_output=True,
                                  timeout=timeout, env={**os.environ, **(env or {})},
                                  check=False)
        except subprocess.TimeoutExpired as exc:
            raise InteropTimeout(f"`{' '.join(argv)}` took more than {timeout:g} s") from exc

    def spawn(self, where: Where | str, argv: Sequence[str], *, name: str, ready: str,
              env: Mapping[str, str] | None = None, timeout: float = START_TIMEOUT,
              wait: bool = True) -> DaemonProcess:
        """Start a long-running program in a namespace, its output in ``<name>.log``, and
        wait (bounded) for a line containing ``ready`` (unless ``wait`` is false: then
        ``proc.wait_ready(timeout)`` is the caller's). Killed at teardown.

        Raises:
            InteropTimeout: no ready line in time. InteropError: it exited first.
        """
        folder = self._folder(name)
        proc = DaemonProcess(["ip", "netns", "exec", _ns(where), *argv], name=name,
                             cwd=folder, log_path=folder / f"{name}.log", ready_marker=ready,
                             env=dict(env or {}))
        self.processes.append(proc)
        if wait:
            proc.wait_ready(timeout)
        return proc

    def kubo(self, where: Where, *, port: int = SWARM_PORT, relay_service: bool = False,
             force_public: bool = False, autonat_service: bool = False,
             relays: Sequence[str] = (), bootstrap: Sequence[str] = (),
             dht: str = "dhtserver", config: Mapping[str, Any] | None = None,
             env: Mapping[str, str] | None = None, name: str | None = None) -> LabKubo:
        """A Kubo 0.43.1 daemon in ``where`` (see the module docstring); ``config`` adds
        dotted keys, ``env`` environment (``GOLOG_LOG_LEVEL`` to see a subsystem's log).

        Raises:
            InteropTimeout, InteropError: it did not start (with its log's tail).
        """
        name = self._unique(name or f"kubo-{_label(where)}")
        settings: dict[str, Any] = {
            "Addresses.Swarm": [f"/ip4/{where.ip}/tcp/{port}"],
            "Addresses.Announce": [],
            "Bootstrap": list(bootstrap),
            "Routing.Type": dht,
            "Swarm.RelayService.Enabled": relay_service,
            "Swarm.RelayClient.Enabled": bool(relays),
            "Swarm.RelayClient.StaticRelays": list(relays),
            "Swarm.EnableHolePunching": bool(relays),
            "AutoNAT.ServiceMode": "enabled" if autonat_service else "disabled",
            **({"Internal.Libp2pForceReachability": "public"} if force_public else {}),
            **(config or {}),
        }
        wrapper = self._folder(name) / "ipfs"
        wrapper.write_text(f"#!/bin/sh\nexec ip netns exec {_ns(where)} "
                           f"{kubo_daemon_binary()} \"$@\"\n")
        wrapper.chmod(0o755)
        kubo = LabKubo(self._folder(name), where=where, config=settings, binary=wrapper,
                       env=env, start_timeout=START_TIMEOUT)
        self.nodes.append(kubo)
        return kubo

    def ours(self, where: Where, *args: str, port: int = SWARM_PORT,
             name: str | None = None, wait: bool = True) -> OurNode:
        """``ipfs-mcp daemon`` in ``where``, listening on its address (see the docstring).
        With ``wait=False`` it is only started: call :meth:`OurNode.ready` before using it
        (so several daemons start side by side).

        Raises:
            InteropTimeout, InteropError: it did not start (with its log's tail).
        """
        name = self._unique(name or f"ours-{_label(where)}")
        node = OurNode(self, where, self._folder(name), name,
                       ["--listen", f"/ip4/{where.ip}/tcp/{port}", *args])
        self.nodes.append(node)
        return node.ready() if wait else node

    def listen(self, where: Where, port: int, *, name: str | None = None) -> DaemonProcess:
        """A plain TCP listener on ``where``'s address and ``port`` (it accepts and closes),
        to try dials against without any P2P stack in the way.

        Raises:
            InteropTimeout, InteropError: it did not start listening.
        """
        return self.spawn(where, [sys.executable, "-c", _LISTENER, where.ip, str(port)],
                          name=self._unique(name or f"listen-{_label(where)}-{port}"),
                          ready="listening")

    def dial(self, where: Where, ip: str, port: int, *, timeout: float = 5.0) -> str:
        """One TCP connect from ``where`` to ``ip:port``: ``"connected"``, ``"timed out"``
        (the packets were dropped: no answer at all), ``"refused"`` (a reset) or
        ``"unreachable"`` (no route there).

        Raises:
            LabError: the probe itself failed.
        """
        done = self.run(where, [sys.executable, "-c", _DIALER, ip, str(port), str(timeout)],
                        timeout=timeout + 30.0)
        outcome = done.stdout.decode().strip()
        if done.returncode != 0 or not outcome:
            raise LabError(f"dial probe from {_label(where)} to {ip}:{port} failed: "
                           f"{done.stderr.decode(errors='replace')[-1000:]}")
        return outcome

    def logs(self, limit: int = 3000) -> str:
        """Every program's log tail, labelled: what a failing test shows."""
        parts = [f"--- {p.name} ({p.log_path}) ---\n{p.log_tail(limit)}" for p in self.processes]
        parts += [f"--- {n.name} ({n.log_path}) ---\n{_tail(n.log_path, limit)}"
                  for n in self.nodes if isinstance(n, LabKubo)]
        return "\n".join(parts)

    # -- teardown ----------------------------------------------------------------------
    def __enter__(self) -> Internet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every program (SIGTERM, then kill), kill whatever else runs in the lab's
        namespaces, and delete them. Idempotent; never raises for what is already gone."""
        # SIGTERM to all first, so their grace periods run side by side.
        running = [p.proc for p in self.processes]
        running += [n._proc.proc for n in self.nodes if isinstance(n, LabKubo)
                    and hasattr(n, "_proc")]
        for child in running:
            if child.poll() is None:
                _quietly(child.terminate)
        for node in reversed(self.nodes):
            _quietly(node.close)
        for proc in reversed(self.processes):
            _quietly(proc.close, STOP_GRACE)
        for ns in reversed(self.namespaces):
            for pid in _pids_in(ns):
                _quietly(os.kill, pid, signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True,
                           timeout=STEP_TIMEOUT, check=False)
        self.namespaces.clear()

    # -- plumbing ----------------------------------------------------------------------
    def _namespace(self, name: str) -> str:
        ns = f"{self.tag}-{self._unique(name)}"
        done = subprocess.run(["ip", "netns", "add", ns], capture_output=True, text=True,
                              timeout=STEP_TIMEOUT, check=False)
        if done.returncode != 0:
            raise LabError(f"cannot create network namespace {ns}: {done.stderr.strip()}")
        self.namespaces.append(ns)
        self._ip(ns, "link", "set", "lo", "up")
        return ns

    def _wire_to_bridge(self, ns: str, device: str, ip: str) -> None:
        """A veth from ``ns`` (``device`` there, with ``ip``) to the internet's bridge."""
        port = f"p{ip.rsplit('.', 1)[1]}"
        self._ip(self.pub, "link", "add", port, "type", "veth", "peer", "name", device,
                 "netns", ns)
        self._ip(self.pub, "link", "set", port, "master", "inet")
        self._ip(self.pub, "link", "set", port, "up")
        self._ip(ns, "addr", "add", f"{ip}/24", "dev", device)
        self._ip(ns, "link", "set", device, "up")

    def _ip(self, ns: str, *args: str) -> None:
        self._step(["ip", "-n", ns, *args])

    def _exec(self, ns: str, *argv: str) -> None:
        self._step(["ip", "netns", "exec", ns, *argv])

    @staticmethod
    def _step(argv: list[str]) -> None:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=STEP_TIMEOUT,
                              check=False)
        if done.returncode != 0:
            raise LabError(f"`{' '.join(argv)}` failed: {done.stderr.strip()}")

    def _unique(self, name: str) -> str:
        if name in self._names:
            raise LabError(f"the lab already has something named {name!r}")
        self._names.add(name)
        return name

    def _folder(self, name: str) -> Path:
        folder = self.base_dir / name
        folder.mkdir(exist_ok=True)
        return folder


class LabKubo(KuboDaemon):
    """A Kubo 0.43.1 daemon inside a lab namespace (its binary runs through
    ``ip netns exec``); :meth:`rpc` is posted from inside the namespace."""

    close_grace = STOP_GRACE

    def __init__(self, base_dir: Path, *, where: Where, **kwargs: Any) -> None:
        self.where = where
        self.name = f"kubo-0.43@{_label(where)}"
        super().__init__(base_dir, **kwargs)

    def rpc(self, path: str, *, timeout: float = 30.0, files: Any = None,
            **params: Any) -> Any:
        """POST ``/api/v0/<path>`` from inside the namespace (a small Python client run
        there, since the API's 127.0.0.1 is the namespace's own); answers as
        :meth:`KuboDaemon.rpc` does: JSON (a list for one object per line), else bytes.

        Raises:
            InteropError: a non-200 answer (with Kubo's message). InteropTimeout: too slow.
        """
        if files is not None:
            raise LabError("a lab Kubo takes content through cli('add', ...), not files")
        query = {k.replace("_", "-"): (str(v).lower() if isinstance(v, bool) else v)
                 for k, v in params.items()}
        argv = [sys.executable, "-c", _RPC, self.api_url, path, json.dumps(query), str(timeout)]
        try:
            done = subprocess.run(["ip", "netns", "exec", self.where.ns, *argv],
                                  capture_output=True, timeout=timeout + 30.0, check=False)
        except subprocess.TimeoutExpired as exc:
            raise InteropTimeout(f"{self.name}: {path} took more than {timeout:g} s") from exc
        status, _, rest = done.stdout.partition(b"\n")
        content_type, _, body = rest.partition(b"\n")
        if done.returncode != 0 or status != b"200":
            raise InteropError(f"{self.name}: {path} answered {status.decode() or '-'}: "
                               f"{(body or done.stderr).decode(errors='replace')[-1000:]}")
        if b"json" not in content_type:
            return body
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        return lines[0] if len(lines) == 1 else lines

    def _identify(self, peer_id: str, addrs: Sequence[str]) -> None:
        """Keep the addresses on the namespace's own address (there is no loopback one
        worth dialling from elsewhere in the lab)."""
        suffix = f"/p2p/{peer_id}"
        mine = [a.removesuffix(suffix) for a in addrs if f"/ip4/{self.where.ip}/" in a]
        if not peer_id or not mine:
            raise LabError(f"{self.name} started without a peer id or an address on "
                           f"{self.where.ip}: {peer_id!r} {list(addrs)!r}")
        self.peer_id = peer_id
        self.addrs = mine
        self.dial_addrs = [a + suffix for a in mine]
        self.dial_addr = self.dial_addrs[0]
        self._closed = False

    def wait_log(self, text: str, *, timeout: float = 30.0) -> None:
        """Wait (bounded) until the daemon's log has a line containing ``text``: an event
        Kubo only logs (a hole punch given up, with ``GOLOG_LOG_LEVEL=p2p-holepunch=debug``).

        Raises:
            InteropTimeout: no such line in time (with the log's tail).
        """
        try:
            wait_until(lambda: text in _tail(self.log_path, 1 << 24), timeout=timeout,
                       what=f"{self.name} logging {text!r}")
        except InteropTimeout as exc:
            raise InteropTimeout(f"{exc}\n{_tail(self.log_path, 4000)}") from None

    def connections(self, peer_id: str) -> list[str]:
        """The addresses of this Kubo's open connections to ``peer_id`` (``swarm peers``);
        a relayed one contains ``/p2p-circuit``."""
        answer = self.rpc("swarm/peers")
        return [str(p.get("Addr")) for p in (answer.get("Peers") or [])
                if p.get("Peer") == peer_id]


class OurNode:
    """``ipfs-mcp daemon`` in a lab namespace, with its own repo (``HF_HOME``)."""

    def __init__(self, lab: Internet, where: Where, folder: Path, name: str,
                 args: Sequence[str]) -> None:
        self.lab, self.where, self.name = lab, where, name
        self.home = folder / "hf"
        self.env = {**{k: v for k, v in os.environ.items()
                       if not k.startswith(("IPFS_MCP_", "IPFS_BACKEND"))},
                    "HF_HOME": str(self.home), "HF_HUB_OFFLINE": "1"}
        self._started = time.monotonic()
        self.proc = lab.spawn(where, [*_OURS, "daemon", *args], name=name,
                              ready="daemon ready", env=self.env, wait=False)
        self.log_path = self.proc.log_path

    def ready(self, timeout: float = START_TIMEOUT) -> OurNode:
        """Wait (bounded) until the daemon is up, and learn its peer id and addresses
        (``peer_id``, ``dial_addrs``, ``dial_addr``); itself. Idempotent.

        Raises:
            InteropTimeout, InteropError: it did not start (with its log's tail).
            LabError: it listens nowhere on its namespace's address.
        """
        if hasattr(self, "peer_id"):
            return self
        self.proc.wait_ready(timeout)
        card = self.card()  # what ``id`` would print, without starting another Python
        self.start_seconds = time.monotonic() - self._started
        self.dial_addrs = [a for a in card["addresses"] if f"/ip4/{self.where.ip}/tcp/" in a]
        if not self.dial_addrs:
            raise LabError(f"{self.name} listens nowhere on {self.where.ip}: "
                           f"{card['addresses']}")
        self.dial_addr = self.dial_addrs[0]
        self.peer_id: str = card["peer_id"]
        return self

    def cli(self, *args: str, timeout: float = 60.0, input: bytes | None = None) -> bytes:
        """Run ``ipfs-mcp ARGS`` on this node's repo inside its namespace; its stdout.

        Raises:
            LabError: it exited non-zero (with its stderr). InteropTimeout: too slow.
        """
        done = self.lab.run(self.where, [*_OURS, *args], timeout=timeout, env=self.env,
                            input=input)
        if done.returncode != 0:
            raise LabError(f"`ipfs-mcp {' '.join(args)}` in {self.name} failed "
                           f"({done.returncode}): {done.stderr.decode(errors='replace')[-2000:]}")
        return done.stdout

    def id(self) -> dict[str, Any]:
        """``ipfs-mcp id --json``: peer id, addresses, role, reachability."""
        card: dict[str, Any] = json.loads(self.cli("id", "--json"))
        return card

    def card(self) -> dict[str, Any]:
        """The card the running daemon keeps in its repo (what :meth:`id` prints), read
        straight from the file: cheap enough to poll, where each ``id`` is a new Python.

        Raises:
            LabError: the daemon has not said where its card is (not ready yet).
        """
        found = re.search(r"card in (\S+?)\); stop", _tail(self.log_path, 1 << 20))
        if found is None:
            raise LabError(f"{self.name} has not said where its card is")
        card: dict[str, Any] = json.loads(Path(found.group(1)).read_text())
        return card

    def close(self) -> None:
        self.proc.close(STOP_GRACE)


_OURS = [sys.executable, "-m", "ipfs_mcp.server.cli"]

# Run with ``python -c`` in a namespace. The RPC client prints the status, the content type
# and the body; its argv is ``API_URL PATH QUERY_JSON TIMEOUT``.
_RPC = """
import json, sys, urllib.error, urllib.parse, urllib.request
url, path, query, timeout = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
request = urllib.request.Request(
    f"{url}/api/v0/{path}?{urllib.parse.urlencode(query, doseq=True)}", method="POST")
try:
    answer = urllib.request.urlopen(request, timeout=float(timeout))
except urllib.error.HTTPError as exc:
    answer = exc
body = answer.read()
sys.stdout.buffer.write(f"{answer.status}\\n{answer.headers.get('Content-Type', '')}\\n".encode())
sys.stdout.buffer.write(body)
"""
# The listener and the dialer: argv is ``IP PORT`` / ``IP PORT TIMEOUT``.
_LISTENER = """
import socket, sys
s = socket.create_server((sys.argv[1], int(sys.argv[2])))
print("listening", flush=True)
while True:
    s.accept()[0].close()
"""
_DIALER = """
import errno, socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
    print("connected")
except TimeoutError:
    print("timed out")
except ConnectionRefusedError:
    print("refused")
except OSError as exc:
    if exc.errno not in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        raise
    print("unreachable")
"""


def _ns(where: Where | str) -> str:
    return where if isinstance(where, str) else where.ns


def _label(where: Where) -> str:
    return where.name


_LAB_NAME = re.compile(r"ipfsmcp-(\d+)-[0-9a-f]{4}-")


def _remove_stale_labs() -> None:
    """Delete the namespaces of labs whose test process died without tearing them down
    (killed by a timeout): their names carry its pid. A lab whose process lives is left."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                            timeout=STEP_TIMEOUT, check=False).stdout
    for line in listed.splitlines():
        name = line.split(" ", 1)[0]
        found = _LAB_NAME.match(name)
        if found is None or Path(f"/proc/{found.group(1)}").exists():
            continue
        for pid in _pids_in(name):
            _quietly(os.kill, pid, signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", name], capture_output=True,
                       timeout=STEP_TIMEOUT, check=False)


def _pids_in(ns: str) -> Iterable[int]:
    done = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True,
                          timeout=STEP_TIMEOUT, check=False)
    return [int(p) for p in done.stdout.split() if p.isdigit()]


def _tail(path: Path, limit: int) -> str:
    try:
        return path.read_bytes()[-limit:].decode("utf-8", "replace")
    except OSError:
        return ""


def _quietly(fn: Any, *args: Any) -> None:
    """Teardown: go on past what is already gone, so every namespace is still deleted."""
    try:
        fn(*args)
    except (OSError, InteropError, subprocess.SubprocessError):
        pass
