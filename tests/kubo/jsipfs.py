"""A real js-ipfs 0.66 daemon for the Kubo backend tests: Kubo's RPC API and a CLI.

js-ipfs is the only implementation of Kubo's HTTP RPC API and ``ipfs`` CLI that installs
offline here (npm ``ipfs``; the npm project is ``tests/interop/jsipfs``, installed with
``npm ci --prefix tests/interop/jsipfs --no-audit --no-fund``). INTEROP.md lists where its
dialect differs from Kubo's.

:class:`JsIpfsDaemon` runs one daemon on a temporary repo:

* ``init --empty-repo --profile test``: no bootstrap peers, no mDNS, every address on
  127.0.0.1 with port 0 (the config is then edited so that the gRPC port is 0 too);
* ``daemon --enable-preload=false``; its stdout reports the ports it bound, and "Daemon is
  ready" ends the (bounded) wait;
* :meth:`JsIpfsDaemon.stop` sends SIGTERM, waits a bounded time, then kills; a finalizer
  kills it if a test forgot. :meth:`JsIpfsDaemon.kill` is the sudden death some failure
  tests need.

Its CLI (:attr:`JsIpfsDaemon.cli_command`, with ``IPFS_PATH`` in :attr:`cli_env`) talks to
the running daemon through the repo's ``api`` file, as ``jsipfs`` does.

Start-up, measured here (2 cores): ``init`` about 2 s, the daemon about 3 s, nearly all of
it Node loading js-ipfs.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
import weakref
from pathlib import Path

__all__ = ["JSIPFS_DIR", "JsIpfsDaemon", "JsIpfsError", "jsipfs_skip_reason",
           "jsipfs_base_command"]

JSIPFS_DIR = Path(__file__).resolve().parents[1] / "interop" / "jsipfs"
_NODE_MODULES = JSIPFS_DIR / "node_modules"
_CLI = _NODE_MODULES / "ipfs" / "src" / "cli.js"
_POLYFILL = JSIPFS_DIR / "polyfill.mjs"
_INSTALL = "npm ci --prefix tests/interop/jsipfs --no-audit --no-fund"
_READY = "Daemon is ready"
_API_LINE = re.compile(r"HTTP API listening on (/ip4/\S+)")
_SWARM_LINE = re.compile(r"Swarm listening on (/ip4/\S+)")


class JsIpfsError(RuntimeError):
    """The js-ipfs daemon could not be set up, or did not come up in time."""


def jsipfs_skip_reason() -> str | None:
    """Why js-ipfs cannot run here (a sentence for ``pytest.skip``), or None."""
    node = shutil.which("node")
    if node is None:
        return "Node.js is not installed (js-ipfs 0.66 needs node >= 20 on PATH)"
    try:
        version = subprocess.run([node, "--version"], capture_output=True, text=True,
                                 timeout=20, check=True).stdout.strip()
        major = int(version.lstrip("v").split(".")[0])
    except (OSError, subprocess.SubprocessError, ValueError):
        return "cannot run `node --version`"
    if major < 20:
        return f"Node.js {version} is too old for js-ipfs 0.66 here (need >= 20)"
    package = _NODE_MODULES / "ipfs" / "package.json"
    if not package.is_file():
        return f"js-ipfs is not installed ({package} is missing); run `{_INSTALL}`"
    try:
        installed = json.loads(package.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return f"{package} is unreadable; run `{_INSTALL}`"
    if not installed.startswith("0.66."):
        return f"js-ipfs {installed} is installed, the tests need 0.66; run `{_INSTALL}`"
    return None


def jsipfs_base_command() -> list[str]:
    """``node --import polyfill.mjs .../ipfs/src/cli.js``: the ``jsipfs`` CLI on Node 20."""
    node = shutil.which("node")
    if node is None:
        raise JsIpfsError("Node.js is not installed")
    return [node, "--import", _POLYFILL.as_uri(), str(_CLI)]


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - cannot reap
        pass


class JsIpfsDaemon:
    """One js-ipfs daemon on a fresh repo under ``base_dir`` (see the module docstring).

    Attributes:
        api_multiaddr: the HTTP API address it bound (``/ip4/127.0.0.1/tcp/N/http``).
        api_url: the same as ``http://127.0.0.1:N``.
        swarm_addrs: its libp2p listen addresses (with ``/p2p/<id>``).
        peer_id: its peer id (``12D3KooW…``).
        cli_command / cli_env: run its CLI against this daemon.
        start_seconds: from spawning ``daemon`` to "Daemon is ready".
    """

    def __init__(self, base_dir: Path, *, start_timeout: float = 30.0) -> None:
        self.base_dir = Path(base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.repo = self.base_dir / "repo"
        self.log_path = self.base_dir / "daemon.log"
        self.cli_command = jsipfs_base_command()
        self.cli_env = {**os.environ, "IPFS_PATH": str(self.repo)}
        self._init_repo(start_timeout)
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._output: list[str] = []
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [*self.cli_command, "daemon", "--enable-preload=false"],
            stdout=subprocess.PIPE, stderr=self._log, stdin=subprocess.DEVNULL,
            env=self.cli_env, cwd=str(self.base_dir), start_new_session=True)
        self._finalizer = weakref.finalize(self, _kill, self.proc)
        self._reader = threading.Thread(target=self._read, name="jsipfs-stdout", daemon=True)
        self._reader.start()
        try:
            self._wait_ready(start_timeout)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started

    # -- start-up -----------------------------------------------------------------------
    def _init_repo(self, timeout: float) -> None:
        try:
            done = subprocess.run([*self.cli_command, "init", "--empty-repo", "--profile", "test"],
                                  env=self.cli_env, cwd=str(self.base_dir), capture_output=True,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise JsIpfsError(f"`jsipfs init` took longer than {timeout:.0f} s") from exc
        if done.returncode != 0:
            raise JsIpfsError(f"`jsipfs init` failed: {done.stderr.decode(errors='replace')}")
        config_path = self.repo / "config"
        config = json.loads(config_path.read_text())
        # The test profile leaves the gRPC API on a fixed port (5003): two daemons, or one
        # beside another program, would collide. Its gateway, once bound, fails on a
        # multiaddr type mismatch and leaves the daemon hanging short of "ready": no
        # gateway (the tests use the RPC API). Everything else the profile already sets to
        # 127.0.0.1 port 0 with no bootstrap peers and no mDNS; make sure of it.
        config["Addresses"].update({"RPC": "/ip4/127.0.0.1/tcp/0",
                                    "API": "/ip4/127.0.0.1/tcp/0",
                                    "Gateway": "",
                                    "Swarm": ["/ip4/127.0.0.1/tcp/0"], "Delegates": []})
        config["Bootstrap"] = []
        config.setdefault("Discovery", {}).setdefault("MDNS", {})["Enabled"] = False
        config_path.write_text(json.dumps(config, indent=2))

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            self._output.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        api = None
        swarm: list[str] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise JsIpfsError(f"js-ipfs not ready within {timeout:.0f} s:\n{self.output()}")
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise JsIpfsError(f"js-ipfs exited with {self.proc.wait(timeout=10)} before it "
                                  f"was ready:\n{self.output()}")
            if match := _API_LINE.search(line):
                api = match.group(1)
            if match := _SWARM_LINE.search(line):
                swarm.append(match.group(1))
            if _READY in line:
                break
        if api is None:
            raise JsIpfsError(f"js-ipfs did not say where its API listens:\n{self.output()}")
        self.api_multiaddr = api
        port = api.split("/tcp/")[1].split("/")[0]
        self.api_url = f"http://127.0.0.1:{port}"
        self.swarm_addrs = swarm
        self.peer_id = swarm[0].rsplit("/p2p/", 1)[1] if swarm else ""

    def output(self) -> str:
        """What the daemon printed so far (stdout, then the end of its log)."""
        try:
            log = self.log_path.read_bytes()[-4000:].decode("utf-8", "replace")
        except OSError:
            log = ""
        return "\n".join(self._output) + ("\n--- log ---\n" + log if log else "")

    # -- stopping -----------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """Sudden death (SIGKILL), as when a daemon crashes mid-operation."""
        _kill(self.proc)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, a bounded wait for a clean shutdown, then SIGKILL."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=grace)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                pass
        self._finalizer()
        self._reader.join(timeout=grace)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()

    def __enter__(self) -> JsIpfsDaemon:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
