"""A real Kubo 0.43 daemon for tests: its RPC API, its gateway, its CLI and its swarm.

The binary comes from :func:`.gobuild.kubo_binary` (built once, cached). Each
:class:`KuboDaemon` runs ``ipfs daemon`` on a repo of its own:

* ``ipfs init --profile test``: API, gateway and swarm on ``/ip4/127.0.0.1/tcp/0``, no
  bootstrap peers, no mDNS, no NAT port mapping, AutoConf off, no delegated routers,
  ``Routing.LoopbackAddressesOnLanDHT=true`` (Kubo's own test profile, read in its
  ``config/profile.go``);
* then, in the config file: telemetry off, relay client and service off, AutoNAT service
  off, and whatever the test adds (dotted keys, ``{"API.Authorizations": {...}}``);
* ``ipfs daemon`` until it prints "Daemon is ready" (bounded); the ports it bound are read
  back from the repo's ``api`` and ``gateway`` files and the swarm addresses from ``id``.

Stopping sends SIGTERM (Kubo shuts down cleanly on it), waits, then kills; a finalizer
kills a daemon a test forgot. :meth:`KuboDaemon.kill` is the sudden death failure tests
need. ``KuboDaemon.start_seconds`` (and ``timings``: init, configure, daemon) say how long
it took; measured on 2 busy cores: init 0.1-0.6 s, daemon 0.4-1.0 s.

The CLI (:meth:`KuboDaemon.cli`, or :attr:`cli_command` with :attr:`cli_env` for a
backend) reaches the running daemon through the repo's ``api`` file, as ``ipfs`` does.

Example::

    with KuboDaemon(tmp_path / "kubo") as kubo:
        cid = kubo.add_bytes(b"hello world\\n")
        kubo.rpc("swarm/connect", arg=other.dial_addr)
        print(kubo.api_url, kubo.gateway_url, kubo.dial_addr)
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from ._process import ChildNode, DaemonProcess, InteropError, InteropTimeout, node_folder
from .gobuild import GoBuildError, interop_skip, kubo_binary

__all__ = ["KuboDaemon", "InteropError", "InteropTimeout", "kubo_daemon_binary"]

_READY = "Daemon is ready"
# Settings on top of the test profile (dotted config keys).
BASE_CONFIG: dict[str, Any] = {
    "Plugins.Plugins": {"telemetry": {"Disabled": True}},
    "Swarm.RelayClient.Enabled": False,
    "Swarm.RelayService.Enabled": False,
    "AutoNAT.ServiceMode": "disabled",
    "Routing.LoopbackAddressesOnLanDHT": True,
    "Bootstrap": [],
    "Discovery.MDNS.Enabled": False,
}
_ENV = {"IPFS_TELEMETRY": "off", "GOLOG_LOG_LEVEL": "error"}


def kubo_daemon_binary() -> Path:
    """The Kubo 0.43 binary, or a skip (a failure under CI) that says why there is none."""
    try:
        return kubo_binary()
    except GoBuildError as exc:
        interop_skip(f"Kubo 0.43 is not available: {exc}")


def set_dotted(config: dict[str, Any], key: str, value: Any) -> None:
    """``set_dotted(c, "API.Authorizations", v)`` sets ``c["API"]["Authorizations"] = v``."""
    *parents, last = key.split(".")
    node = config
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[last] = value


class KuboDaemon(ChildNode):
    """One Kubo 0.43 daemon on its own repo; use it as a context manager.

    Args:
        base_dir: a folder for the repo and the log (created if missing; a fresh temporary
            folder if None, removed on close).
        config: extra config keys, dotted, applied after :data:`BASE_CONFIG`.
        authorization: the ``Authorization`` header this harness sends on its own RPC
            calls (needed when ``config`` sets ``API.Authorizations``).
        start_timeout: seconds the whole start (init, configure, daemon) may take.
        binary: the ``ipfs`` binary (default: :func:`kubo_daemon_binary`).
        env: environment additions for the daemon and the CLI (e.g. ``TEST_DHT_STUB``).
        daemon_args: extra ``ipfs daemon`` flags.

    Attributes:
        peer_id, addrs, dial_addrs, dial_addr: as for every :class:`~._process.ChildNode`.
        api_multiaddr / api_url: the RPC API (``/ip4/127.0.0.1/tcp/N``, ``http://...``).
        gateway_url: the HTTP gateway (``http://127.0.0.1:N``).
        repo: the IPFS_PATH.
    """

    name = "kubo-0.43"
    close_grace = 10.0  # SIGTERM first: Kubo shuts down cleanly, closing its datastore
    _proc: DaemonProcess

    def __init__(self, base_dir: Path | str | None = None, *,
                 config: Mapping[str, Any] | None = None, authorization: str | None = None,
                 start_timeout: float = 60.0, binary: Path | None = None,
                 env: Mapping[str, str] | None = None, daemon_args: Sequence[str] = ()) -> None:
        self.binary = Path(binary) if binary is not None else kubo_daemon_binary()
        self.base_dir, self._own_dir = node_folder(base_dir, "kubo043-")
        self.repo = self.base_dir / "repo"
        self.log_path = self.base_dir / "daemon.log"
        self.authorization = authorization
        self.env = {**_ENV, **(env or {}), "IPFS_PATH": str(self.repo)}
        self._config = {**BASE_CONFIG, **(config or {})}
        self._daemon_args = list(daemon_args)
        self._start_timeout = start_timeout
        self.start()

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Init the repo (first time only) and start the daemon, within ``start_timeout``.

        Also used to restart a daemon after :meth:`stop` or :meth:`kill` (same repo, same
        peer id, new ports).

        Raises:
            InteropTimeout: it was not up in time (it is killed).
            InteropError: init or the daemon failed (with the log tail).
        """
        started = time.monotonic()
        deadline = started + self._start_timeout
        self.timings: dict[str, float] = {}
        if not (self.repo / "config").is_file():
            self.cli("init", "--profile", "test", timeout=self._start_timeout, daemon=False)
            self.timings["init"] = time.monotonic() - started
            mark = time.monotonic()
            self._write_config()
            self.timings["configure"] = time.monotonic() - mark
        for stale in ("api", "gateway"):  # left by a killed daemon; the new one rewrites them
            (self.repo / stale).unlink(missing_ok=True)
        mark = time.monotonic()
        self._proc = DaemonProcess(
            [str(self.binary), "daemon", "--enable-gc=false", *self._daemon_args],
            name=self.name, cwd=self.base_dir, log_path=self.log_path, ready_marker=_READY,
            env=self.env)
        try:
            self._proc.wait_ready(max(1.0, deadline - time.monotonic()))
            self.api_multiaddr = (self.repo / "api").read_text().strip()
            self.api_url = _url_of(self.api_multiaddr)
            self.gateway_url = (self.repo / "gateway").read_text().strip()
            self.timings["daemon"] = time.monotonic() - mark
            info = self.rpc("id", timeout=max(1.0, deadline - time.monotonic()))
            self._identify(info["ID"], info.get("Addresses") or [])
        except BaseException:
            self._proc.close(grace=1.0)
            raise
        self.start_seconds = time.monotonic() - started

    def _write_config(self) -> None:
        path = self.repo / "config"
        config = json.loads(path.read_text())
        for key, value in self._config.items():
            set_dotted(config, key, value)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(config, indent=2))
        tmp.replace(path)

    def config(self) -> dict[str, Any]:
        """The repo's config file as it is now."""
        return json.loads((self.repo / "config").read_text())

    def stop(self) -> None:
        """Stop the daemon (SIGTERM, then kill) but keep the repo, so :meth:`start` can
        bring the same node back."""
        self._proc.close(grace=10.0)

    def kill(self) -> None:
        """Sudden death (SIGKILL): for tests of a daemon that dies mid-operation."""
        self._proc.kill()

    # -- talking to it --------------------------------------------------------------------
    def rpc(self, path: str, *, timeout: float = 30.0, files: Any = None,
            **params: Any) -> Any:
        """POST ``/api/v0/<path>`` with ``params``; the JSON answer (a list when the daemon
        streams one object per line), or the raw bytes when it is not JSON.

        Raises:
            InteropError: a non-200 answer (with Kubo's message).
        """
        headers = {"Authorization": self.authorization} if self.authorization else {}
        query = {k.replace("_", "-"): (str(v).lower() if isinstance(v, bool) else v)
                 for k, v in params.items()}
        try:
            response = httpx.post(f"{self.api_url}/api/v0/{path}", params=query, files=files,
                                  headers=headers, timeout=timeout)
        except httpx.HTTPError as exc:
            raise InteropError(f"{self.name}: {path} failed: {exc!r}") from exc
        if response.status_code != 200:
            raise InteropError(f"{self.name}: {path} answered {response.status_code}: "
                               f"{response.text.strip()[:500]}")
        if "json" not in response.headers.get("content-type", ""):
            return response.content
        lines = [json.loads(line) for line in response.text.splitlines() if line.strip()]
        return lines[0] if len(lines) == 1 else lines

    @property
    def cli_command(self) -> list[str]:
        return [str(self.binary)]

    @property
    def cli_env(self) -> dict[str, str]:
        """The environment for :attr:`cli_command`: this one's repo, telemetry off."""
        return {**os.environ, **self.env}

    def cli(self, *args: str, input: bytes | None = None, timeout: float = 60.0,
            daemon: bool = True) -> bytes:
        """Run ``ipfs ARGS`` on this repo (through the running daemon); its stdout.

        Raises:
            InteropTimeout: it took longer than ``timeout`` (it is killed).
            InteropError: it exited non-zero (with its stderr).
        """
        argv = [str(self.binary), *args]
        if daemon and self.authorization:
            argv.insert(1, f"--api-auth={_cli_auth(self.authorization)}")
        try:
            done = subprocess.run(argv, input=input or b"", capture_output=True,
                                  timeout=timeout, env=self.cli_env, check=False)
        except subprocess.TimeoutExpired as exc:
            raise InteropTimeout(f"`ipfs {' '.join(args)}` took more than {timeout:g} s"
                                 ) from exc
        if done.returncode != 0:
            raise InteropError(f"`ipfs {' '.join(args)}` failed ({done.returncode}): "
                               f"{done.stderr.decode(errors='replace').strip()[-2000:]}")
        return done.stdout

    # -- conveniences the tests share -----------------------------------------------------
    def add_bytes(self, data: bytes, *flags: str) -> str:
        """``ipfs add -Q FLAGS`` of ``data`` (stdin); the root CID."""
        return self.cli("add", "-Q", *flags, input=data).decode().strip()

    def add_path(self, path: Path, *flags: str) -> str:
        """``ipfs add -Q -r FLAGS -- PATH``; the root CID."""
        return self.cli("add", "-Q", "-r", *flags, "--", str(path)).decode().strip()

    def connect(self, multiaddr: str, *, timeout: float = 15.0) -> None:
        self.rpc("swarm/connect", arg=multiaddr, timeout=timeout)

    def peer_ids(self, *, timeout: float = 10.0) -> list[str]:
        answer = self.rpc("swarm/peers", timeout=timeout)
        return [str(p.get("Peer")) for p in (answer.get("Peers") or [])]

    def dht_peers(self, *, timeout: float = 10.0) -> dict[str, set[str]]:
        """The peers in Kubo's routing tables, ``{"wan": {...}, "lan": {...}}``."""
        tables: dict[str, set[str]] = {}
        for table in self.rpc("stats/dht", timeout=timeout):
            tables[table["Name"]] = {peer["ID"] for bucket in table.get("Buckets") or []
                                     for peer in bucket.get("Peers") or []}
        return tables

    def wait_for_dht_peer(self, peer_id: str, *, table: str = "lan",
                          timeout: float = 20.0) -> None:
        """Wait until ``peer_id`` is in Kubo's ``table`` DHT routing table (Kubo adds a
        peer only after it answered a query, some time after the connection)."""
        deadline = time.monotonic() + timeout
        while peer_id not in self.dht_peers(timeout=timeout).get(table, set()):
            if time.monotonic() >= deadline:
                raise InteropTimeout(f"{self.name}: {peer_id} not in its {table} DHT within "
                                     f"{timeout:.1f} s")
            time.sleep(0.1)

    def find_providers(self, cid: str, *, seconds: float = 10.0, limit: int = 20) -> list[str]:
        """``ipfs routing findprovs`` (Kubo asks its LAN and WAN DHTs): provider peer ids."""
        out = self.cli("routing", "findprovs", f"--num-providers={limit}",
                       f"--timeout={seconds:g}s", "--", cid, timeout=seconds + 30)
        return [line.strip() for line in out.decode().splitlines() if line.strip()]

    def __repr__(self) -> str:
        return f"KuboDaemon(peer_id={getattr(self, 'peer_id', None)!r}, " \
               f"api={getattr(self, 'api_url', None)!r})"


def _url_of(multiaddr: str) -> str:
    parts = multiaddr.strip("/").split("/")
    if len(parts) < 4 or parts[0] != "ip4" or parts[2] != "tcp":
        raise InteropError(f"unexpected API address {multiaddr!r}")
    return f"http://{parts[1]}:{parts[3]}"


def _cli_auth(header: str) -> str:
    """An ``Authorization`` header as the CLI's ``--api-auth`` wants it (``bearer:T``)."""
    scheme, _, secret = header.partition(" ")
    return f"{scheme.lower()}:{secret}"  # Kubo takes basic:<base64> as well as basic:u:p
