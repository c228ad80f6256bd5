"""Kubo commands through its CLI (``KUBO_CMD``, default ``ipfs``), one process per command.

* ``ipfs <cmd> [--option=value ...] --enc=json -- <args>``: arguments always go after
  ``--``, so a CID or path can never be read as a flag.
* Three commands print text whatever ``--enc`` says (their CLI output is written for
  people): ``add`` and ``ls`` are read back into the records the RPC gives; ``stats bw``
  prints rounded numbers ("1.2 kB"), so it gives no record rather than a wrong one.
* Output streams: ``cat`` and ``dag export`` are read in 1 MiB pieces as the process
  writes them (into a temporary file that is read as it grows), and a streamed body is fed
  to stdin from a thread. Errors go to a temporary file too, so a chatty process can never
  block on a full pipe.
* Every process has a deadline; past it, it is killed and the call fails.
* A missing binary is :class:`BackendUnavailable` with a hint, never a raw
  ``FileNotFoundError``.

The commands and flags are Kubo's (tested against Kubo 0.43); no other CLI dialect is
guessed at.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ipfs_mcp.backends.core.cids import parse_cid
from ipfs_mcp.backends.errors import (
    BackendUnavailable,
    BlockNotFound,
    InvalidCID,
    InvalidInput,
    IpfsMcpError,
    NotFound,
    PinNotFound,
    Timeout,
)
from ipfs_mcp.backends.http_answers import json_lines
from ipfs_mcp.backends.remote.kubo.transport import Body, Options, Search, option_text
from ipfs_mcp.backends.remote.kubo.upload import PIECE, LocalTree

__all__ = ["CLITransport"]

_POLL = 0.05  # how long one wait for more output may last (the process exit ends it early)
_PROBE_TIMEOUT = 30.0  # a CLI on Node needs a few seconds just to load
_TREE_TIMEOUT = 3600.0  # the CLI reads a folder itself, at the disk's pace
_SEARCH_MARGIN = 30.0  # the process outlives the node's own search by this much
_NOT_FOUND_HINTS = ("not found", "could not find", "no such file")
# The node's own --timeout ran out: it did not find it in time, which is not "absent".
_TIMEOUT_HINTS = ("context deadline exceeded", "request timed out", "timed out")
_UNREACHABLE_HINTS = ("connection refused", "cannot connect", "econnrefused",
                      "api not running", "no ipfs repo", "repo.lock",
                      "someone else has the lock")
_LS_LINE = re.compile(r"(?P<size>\d+|-)\s+(?P<name>.*)$")


class CLITransport:
    """Kubo's CLI as a :class:`~.transport.KuboTransport` (see the module docstring).

    Args:
        cmd: the command, split (``["ipfs"]``, or ``["node", "cli.js"]``).
        env: the environment of every process (default: this process's), e.g. with
            ``IPFS_PATH`` pointing at the node's repo.
        timeout: seconds one command may take.
    """

    node = "the Kubo node"

    def __init__(self, cmd: list[str], *, env: Mapping[str, str] | None = None,
                 timeout: float = 60.0) -> None:
        if not cmd:
            raise InvalidInput("the Kubo CLI command is empty (KUBO_CMD)")
        self.cmd = list(cmd)
        self.env = dict(env) if env is not None else None
        self.timeout = timeout
        self.label = f"kubo CLI {' '.join(self.cmd)}"
        self.summary = f"CLI {' '.join(self.cmd)}"
        self.probe_timeout = max(_PROBE_TIMEOUT, min(timeout, 60.0))

    @classmethod
    def find(cls, command: str | list[str], *, env: Mapping[str, str] | None = None,
             timeout: float = 60.0) -> CLITransport:
        """The CLI named by ``command`` (a string is split as a shell would).

        Raises:
            BackendUnavailable: no such binary on PATH.
        """
        cmd = shlex.split(command) if isinstance(command, str) else list(command)
        cmd = cmd or ["ipfs"]
        if shutil.which(cmd[0]) is None:
            raise BackendUnavailable(f"Kubo CLI {cmd[0]!r} not found on PATH; install Kubo "
                                     "(https://docs.ipfs.tech/install/) or set KUBO_CMD to "
                                     "its path")
        return cls(cmd, env=env, timeout=timeout)

    def __repr__(self) -> str:
        return f"CLITransport({' '.join(self.cmd)!r})"

    def not_kubo(self, exc: Exception) -> str:
        return (f"`{' '.join(self.cmd)} id` failed: {exc}; is the node initialised "
                "(`ipfs init`)?")

    def close(self) -> None:
        """Nothing is held between processes."""

    # -- the protocol -------------------------------------------------------------------
    def records(self, cmd: str, *args: str, options: Options | None = None,
                body: Body | None = None, subject: str | None = None,
                search: Search = False, wait: float | None = None) -> list[dict[str, Any]]:
        flags = ["--enc=json"]
        if isinstance(body, LocalTree):
            flags += self._tree_flags(body)
            args = (*args, str(body.top.absolute()))  # absolute: it starts with "/"
        argv, limit = self._argv(cmd, args, options, search, flags)
        data = None if body is None or isinstance(body, LocalTree) else body.data
        if isinstance(body, LocalTree):
            out = self._run(argv, subject=subject, timeout=max(limit, _TREE_TIMEOUT))
            body.read_elsewhere()
        elif data is None or isinstance(data, bytes):
            out = self._run(argv, data=data, subject=subject, timeout=wait or limit)
        else:  # a streamed body: fed to stdin as the process reads it
            out = b"".join(self._stream(argv, stdin=data, subject=subject, deadline=limit))
        text = out.decode(errors="replace")
        decode = _TEXT_ANSWERS.get(cmd)
        if decode is not None:
            return decode(text)
        return list(json_lines(text.splitlines(), lambda line: IpfsMcpError(
            f"`{cmd.replace('/', ' ')}` printed {line[:200]!r}, not JSON")))

    def stream(self, cmd: str, *args: str, options: Options | None = None,
               subject: str | None = None, search: Search = False) -> Iterator[bytes]:
        argv, limit = self._argv(cmd, args, options, search, [])
        return self._stream(argv, subject=subject, deadline=limit)

    # -- commands -----------------------------------------------------------------------
    def _argv(self, cmd: str, args: tuple[str, ...], options: Options | None, search: Search,
              flags: list[str]) -> tuple[list[str], float]:
        """The arguments after the binary, and how long the process may take."""
        argv = [*cmd.split("/"), *flags]
        argv += [f"--{key}={option_text(value)}" for key, value in (options or {}).items()
                 if value is not None]
        limit = self.timeout
        if search is True:
            # The node's own deadline, slightly inside ours, so it reports "not found"
            # before we have to kill the process.
            argv.append(f"--timeout={max(1.0, self.timeout - 2):.0f}s")
        elif search is not False:
            argv.append(f"--timeout={search:g}s")
            limit = search + _SEARCH_MARGIN
        if args:
            argv += ["--", *args]
        return argv, limit

    @staticmethod
    def _tree_flags(tree: LocalTree) -> list[str]:
        """Raises: InvalidInput: ``follow_symlinks`` for a folder (the CLI keeps them)."""
        folder = tree.top.is_dir()
        if tree.options.follow_symlinks and folder:
            raise InvalidInput("the Kubo CLI adds symlinks as symlinks; use the RPC backend "
                               "(IPFS_API) to add a folder with its symlinks followed")
        return [*(["-r"] if folder else []), *(["--hidden"] if tree.options.hidden else [])]

    # -- processes ----------------------------------------------------------------------
    def _label(self, args: list[str]) -> str:
        return f"`{Path(self.cmd[-1]).name} {' '.join(a for a in args if a != '--')}`"

    def _popen(self, args: list[str], stdin: Any, stdout: Any, stderr: Any
               ) -> subprocess.Popen[bytes]:
        try:
            return subprocess.Popen([*self.cmd, *args], stdin=stdin, stdout=stdout,
                                    stderr=stderr, env=self.env)
        except FileNotFoundError as exc:
            raise BackendUnavailable(f"Kubo CLI {self.cmd[0]!r} is gone; install Kubo or set "
                                     "KUBO_CMD to its path") from exc
        except OSError as exc:
            raise BackendUnavailable(f"cannot run Kubo CLI {self.cmd[0]!r}: {exc}") from exc

    def _failure(self, args: list[str], code: int, message: str,
                 subject: str | None) -> IpfsMcpError:
        lowered = message.lower()
        label = self._label(args)
        if "not pinned" in lowered:
            return PinNotFound(f"{subject} is not pinned ({label}: {message})")
        if "no link named" in lowered or "no such link" in lowered:
            return NotFound(f"{subject}: {message}")
        if any(h in lowered for h in _TIMEOUT_HINTS):
            return Timeout(f"{label} did not finish within {self.timeout:g} s "
                           f"(IPFS_API_TIMEOUT): {message}")
        if subject is not None and any(h in lowered for h in _NOT_FOUND_HINTS):
            return BlockNotFound(subject, f"the Kubo node ({label}: {message})")
        if any(h in lowered for h in _UNREACHABLE_HINTS):
            return BackendUnavailable(f"{label} cannot reach its node: {message}")
        return IpfsMcpError(f"{label} failed (exit {code}): {message}")

    def _run(self, args: list[str], *, data: bytes | None = None, subject: str | None = None,
             timeout: float) -> bytes:
        """Run to completion and return stdout (for answers that are small)."""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                done = subprocess.run([*self.cmd, *args],
                                      input=data if data is not None else b"", stdout=out,
                                      stderr=err, timeout=timeout, check=False, env=self.env)
            except FileNotFoundError as exc:
                raise BackendUnavailable(f"Kubo CLI {self.cmd[0]!r} is gone; install Kubo or "
                                         "set KUBO_CMD to its path") from exc
            except subprocess.TimeoutExpired as exc:
                raise Timeout(f"{self._label(args)} took longer than {timeout:g} s "
                              "(IPFS_API_TIMEOUT); is the node running?") from exc
            out.seek(0)
            stdout = out.read()
            err.seek(0)
            stderr = err.read()
        if done.returncode != 0:
            message = stderr.decode(errors="replace").strip() or \
                stdout.decode(errors="replace").strip()[-2000:]
            raise self._failure(args, done.returncode, message, subject)
        return stdout

    def _stream(self, args: list[str], *, stdin: Iterator[bytes] | None = None,
                subject: str | None = None, deadline: float) -> Iterator[bytes]:
        """Stream stdout in pieces; feed ``stdin`` from a thread. The process is killed if
        ``deadline`` seconds pass or the consumer stops early."""
        ends = time.monotonic() + deadline
        # stdout goes to a file that we read as it grows, so the process never blocks on
        # a full pipe while the consumer is busy with the previous piece.
        with tempfile.NamedTemporaryFile(prefix="kubo-cli-") as out, \
                open(out.name, "rb") as reading, tempfile.TemporaryFile() as err:
            proc = self._popen(args, subprocess.PIPE if stdin is not None else
                               subprocess.DEVNULL, out, err)
            feeder = None
            feed_error: list[BaseException] = []
            if stdin is not None:
                feeder = threading.Thread(target=_feed, args=(proc, stdin, feed_error),
                                          name="kubo-cli-stdin", daemon=True)
                feeder.start()
            try:
                while True:
                    piece = reading.read(PIECE)
                    if piece:
                        yield piece
                        continue
                    if proc.poll() is not None:
                        if tail := reading.read():  # written between the read and the exit
                            yield tail
                        break
                    remaining = ends - time.monotonic()
                    if remaining <= 0:
                        raise Timeout(f"{self._label(args)} took longer than "
                                      f"{deadline:g} s and was stopped (IPFS_API_TIMEOUT)")
                    try:  # wakes at once when the process exits
                        proc.wait(timeout=min(_POLL, remaining))
                    except subprocess.TimeoutExpired:
                        pass
                code = proc.returncode
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait(timeout=10)
                if feeder is not None:
                    feeder.join(timeout=10)
            if feed_error:
                raise feed_error[0]
            if code != 0:
                err.seek(0)
                message = err.read()[-4000:].decode(errors="replace").strip()
                raise self._failure(args, code, message or f"killed (exit {code})", subject)


def _feed(proc: subprocess.Popen[bytes], pieces: Iterator[bytes],
          errors: list[BaseException]) -> None:
    assert proc.stdin is not None
    try:
        for piece in pieces:
            proc.stdin.write(piece)
    except BrokenPipeError:
        pass  # the process died; its exit status says why
    except BaseException as exc:  # e.g. a corrupt CAR: stop the import, report it
        errors.append(exc)
        proc.kill()
    finally:
        try:
            proc.stdin.close()
        except OSError:
            pass


# -- the commands whose CLI output is text whatever --enc says ------------------------------
def _added(text: str) -> list[dict[str, Any]]:
    """``added <cid> <name>`` lines, root last, as the RPC's ``{"Name", "Hash"}`` records."""
    out = []
    for line in text.splitlines():
        parts = line.strip().split(" ", 2)
        if len(parts) >= 2 and parts[0] == "added":
            out.append({"Name": parts[2] if len(parts) == 3 else "", "Hash": parts[1]})
    return out


def _listing(text: str) -> list[dict[str, Any]]:
    """``ls`` lines (``CID SIZE NAME``; folders end in ``/`` and may have ``-`` as SIZE) as
    the RPC's one ``{"Objects": [{"Links": [...]}]}`` record."""
    links = [link for line in text.splitlines() if (link := _ls_link(line)) is not None]
    return [{"Objects": [{"Links": links}]}]


def _ls_link(line: str) -> dict[str, Any] | None:
    tokens = line.split()
    for i, token in enumerate(tokens):
        try:
            parse_cid(token)
        except InvalidCID:
            continue
        match = _LS_LINE.match(line.split(token, 1)[1].strip())
        if match is None or i + 1 >= len(tokens):
            return None
        name = match.group("name")
        size = match.group("size")
        return {"Name": name.rstrip("/"), "Hash": token, "Size": int(size) if size.isdigit()
                else 0, "Type": 1 if name.endswith("/") else 2}  # UnixFS: 1 dir, 2 file
    return None


def _no_records(text: str) -> list[dict[str, Any]]:
    return []


_TEXT_ANSWERS: dict[str, Callable[[str], list[dict[str, Any]]]] = {
    "add": _added, "ls": _listing, "stats/bw": _no_records}
