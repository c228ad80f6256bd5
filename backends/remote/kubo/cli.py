"""``kubo`` through its CLI (``KUBO_CMD``, default ``ipfs``), one subprocess per operation.

* CIDs and paths always go after ``--``, so a value can never be read as a flag.
* Output streams: ``cat`` and ``dag export`` are read in 1 MiB pieces as the process
  writes them (into a temporary file that is read as it grows), and
  ``add`` of a stream feeds stdin from a thread. Errors go to a temporary file too, so a
  chatty process can never block on a full pipe.
* Every process has a deadline; past it, it is killed and the call fails.
* A missing binary is :class:`BackendUnavailable` with a hint, never a raw
  ``FileNotFoundError``.

What comes back is verified exactly as in the RPC client (:class:`.kubo.VerifiedReader`):
blocks against their CIDs, ``cat`` output leaf by leaf, listings against the directory.

The commands and flags are Kubo's (tested against Kubo 0.43); no other CLI dialect is
guessed at.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from multiformats import CID

from ipfs_mcp.backends.core import car
from ipfs_mcp.backends.core.cids import block_codec, cid_of_block, cid_str, parse_cid
from ipfs_mcp.backends.core.exporter import Entry
from ipfs_mcp.backends.core.importer import ImportOptions, ImportResult
from ipfs_mcp.backends.errors import (
    BackendUnavailable,
    BlockNotFound,
    IntegrityError,
    InvalidCID,
    InvalidInput,
    IpfsMcpError,
    NetworkError,
    NotFound,
    PinNotFound,
    Timeout,
)
from ipfs_mcp.backends.network import Network
from ipfs_mcp.backends.remote.kubo.common import (
    CountingCar,
    IterReader,
    Provider,
    VerifiedReader,
    VerifiedReads,
    add_flags,
    added_entries,
    check_add_options,
    check_car,
    verified_listing,
)
from ipfs_mcp.backends.remote.kubo.network import KuboNetwork

if TYPE_CHECKING:
    from ipfs_mcp.backends.backend import CacheCounters, Replication
    from ipfs_mcp.backends.repo.repository import Repo

__all__ = ["KuboCLIBackend"]

_PIECE = 1 << 20
_POLL = 0.05  # how long one wait for more output may last (the process exit ends it early)
_PROBE_TIMEOUT = 30.0  # a CLI on Node needs a few seconds just to load
_NOT_FOUND_HINTS = ("not found", "could not find", "no such file")
# The node's own --timeout ran out: it did not find it in time, which is not "absent".
_TIMEOUT_HINTS = ("context deadline exceeded", "request timed out", "timed out")
_LS_LINE = re.compile(r"(?P<size>\d+|-)\s+(?P<name>.*)$")


class KuboCLIBackend(VerifiedReads):
    """A Kubo node driven through its CLI (see the module docstring).

    Args:
        cmd: the command, split (``["ipfs"]``, or ``["node", "cli.js"]``).
        env: the environment of every process (default: this process's), e.g. with
            ``IPFS_PATH`` pointing at the node's repo.
        timeout: seconds one operation may take.
    """

    name = "kubo"
    repo: Repo | None = None  # the node keeps its own repo; no embedded one
    counters: CacheCounters | None = None
    replication: Replication | None = None  # one node: no replication factor

    def __init__(self, cmd: list[str], *, env: Mapping[str, str] | None = None,
                 timeout: float = 60.0) -> None:
        if not cmd:
            raise InvalidInput("the Kubo CLI command is empty (KUBO_CMD)")
        self.cmd = list(cmd)
        self.env = dict(env) if env is not None else None
        self.timeout = timeout
        self.reader = VerifiedReader(self._block_get_raw, self._cat_raw)
        # Where Kubo is the backend, Kubo is the node: the network tools speak for it.
        self.network: Network | None = KuboNetwork(self, f"kubo CLI {' '.join(self.cmd)}")

    @classmethod
    def connect(cls, command: str | list[str], *, env: Mapping[str, str] | None = None,
                timeout: float = 60.0) -> KuboCLIBackend:
        """Find the binary and check that the node answers (``id``).

        Raises:
            BackendUnavailable: no binary, or the node does not answer.
        """
        cmd = shlex.split(command) if isinstance(command, str) else list(command)
        cmd = cmd or ["ipfs"]
        if shutil.which(cmd[0]) is None:
            raise BackendUnavailable(f"Kubo CLI {cmd[0]!r} not found on PATH; install Kubo "
                                     "(https://docs.ipfs.tech/install/) or set KUBO_CMD to "
                                     "its path")
        backend = cls(cmd, env=env, timeout=timeout)
        try:
            backend.id(timeout=max(_PROBE_TIMEOUT, min(timeout, 60.0)))
        except BackendUnavailable:
            raise
        except IpfsMcpError as exc:
            raise BackendUnavailable(f"`{' '.join(cmd)} id` failed: {exc}; is the node "
                                     "initialised (`ipfs init`)?") from exc
        return backend

    def __repr__(self) -> str:
        return f"KuboCLIBackend({' '.join(self.cmd)!r})"

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
        if any(h in lowered for h in ("connection refused", "cannot connect", "econnrefused",
                                      "api not running", "no ipfs repo", "repo.lock",
                                      "someone else has the lock")):
            return BackendUnavailable(f"{label} cannot reach its node: {message}")
        return IpfsMcpError(f"{label} failed (exit {code}): {message}")

    def _run(self, args: list[str], *, data: bytes | None = None, subject: str | None = None,
             timeout: float | None = None) -> bytes:
        """Run to completion and return stdout (for answers that are small)."""
        limit = timeout or self.timeout
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                done = subprocess.run([*self.cmd, *args],
                                      input=data if data is not None else b"", stdout=out,
                                      stderr=err, timeout=limit, check=False, env=self.env)
            except FileNotFoundError as exc:
                raise BackendUnavailable(f"Kubo CLI {self.cmd[0]!r} is gone; install Kubo or "
                                         "set KUBO_CMD to its path") from exc
            except subprocess.TimeoutExpired as exc:
                raise Timeout(f"{self._label(args)} took longer than {limit:g} s "
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
                subject: str | None = None) -> Iterator[bytes]:
        """Stream stdout in pieces; feed ``stdin`` from a thread. The process is killed if
        the deadline passes or the consumer stops early."""
        deadline = time.monotonic() + self.timeout
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
                    piece = reading.read(_PIECE)
                    if piece:
                        yield piece
                        continue
                    if proc.poll() is not None:
                        if tail := reading.read():  # written between the read and the exit
                            yield tail
                        break
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise Timeout(f"{self._label(args)} took longer than "
                                      f"{self.timeout:g} s and was stopped (IPFS_API_TIMEOUT)")
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

    def _timeout_flag(self) -> str:
        # The node's own deadline, slightly inside ours, so it reports "not found" before
        # we have to kill the process.
        return f"--timeout={max(1.0, self.timeout - 2):.0f}s"

    # -- node primitives the verified reader builds on ----------------------------------
    def _block_get_raw(self, cid: CID) -> bytes:
        # Verified by the reader; Kubo's block get is binary-safe.
        text = cid_str(cid)
        return self._run(["block", "get", self._timeout_flag(), "--", text], subject=text)

    def _cat_raw(self, cid: CID, offset: int, length: int) -> Iterator[bytes]:
        text = cid_str(cid)
        return self._stream(["cat", f"--offset={offset}", f"--length={length}",
                             self._timeout_flag(), "--", text], subject=text)

    # -- adding -------------------------------------------------------------------------
    @staticmethod
    def _add_flags(options: ImportOptions | None, pin: bool, name: str = "", *,
                   directories: bool = False) -> list[str]:
        o = check_add_options(options, directories=directories)
        named = [f"--pin-name={name}"] if pin and name else []
        flags = [f"--{key}={str(value).lower() if isinstance(value, bool) else value}"
                 for key, value in add_flags(o).items()]
        return [*named, "--progress=false", *flags, f"--pin={'true' if pin else 'false'}"]

    @staticmethod
    def _added(out: bytes) -> list[tuple[str, CID]]:
        """``added <cid> <name>`` lines, root last, as ``ipfs add`` prints them."""
        added = []
        for line in out.decode(errors="replace").splitlines():
            parts = line.strip().split(" ", 2)
            if len(parts) >= 2 and parts[0] == "added":
                try:
                    added.append((parts[2] if len(parts) == 3 else "", parse_cid(parts[1])))
                except InvalidCID as exc:
                    raise IpfsMcpError(f"`add` printed {line!r}, not a CID") from exc
        if not added:
            raise IpfsMcpError(f"`add` printed no CID: {out[:200]!r}")
        return added

    def _root_of(self, out: bytes) -> CID:
        return self._added(out)[-1][1]

    def add_bytes(self, data: bytes, *, pin: bool = True, name: str = "",
                  options: ImportOptions | None = None) -> str:
        """Add one file's bytes (from stdin). ``wrap_with_directory`` does not apply."""
        return cid_str(self._root_of(self._run(["add", *self._add_flags(options, pin, name)],
                                               data=bytes(data))))

    def add_stream(self, stream: BinaryIO, *, pin: bool = True, name: str = "",
                   options: ImportOptions | None = None,
                   progress: Callable[[int], None] | None = None) -> str:
        """Add one file from a stream, fed to the CLI's stdin in pieces."""
        out = b"".join(self._stream(["add", *self._add_flags(options, pin, name)],
                                    stdin=_pieces(stream, progress)))
        return cid_str(self._root_of(out))

    def add_path(self, path: str | Path, *, recursive: bool = True, pin: bool = True,
                 name: str = "", options: ImportOptions | None = None,
                 progress: Callable[[int], None] | None = None) -> ImportResult:
        """``ipfs add [-r] [-H] [-w] -- PATH``; the CLI reads the files itself.

        Raises:
            NotFound: no such path.
            InvalidInput: a folder without ``recursive``, ``follow_symlinks`` (the CLI keeps
                symlinks as symlinks), or an option Kubo cannot honour.
        """
        top = Path(path)
        o = check_add_options(options, directories=top.is_dir())
        if not top.exists():
            raise NotFound(f"no such file or folder: {top}")
        if top.is_dir() and not recursive:
            raise InvalidInput(f"{top} is a folder; add it recursively (-r)")
        if o.follow_symlinks and top.is_dir():
            raise InvalidInput("the Kubo CLI adds symlinks as symlinks; use the RPC backend "
                               "(IPFS_API) to add a folder with its symlinks followed")
        label = top.resolve().name if top.name in ("", ".", "..") else top.name
        flags = self._add_flags(o, pin, name or label, directories=top.is_dir())
        if top.is_dir():
            flags.append("-r")
        if o.hidden:
            flags.append("--hidden")
        if o.wrap_with_directory:
            flags.append("--wrap-with-directory")
        # Absolute, so it starts with "/" and can never read as a flag, "--" or not.
        out = self._run(["add", *flags, "--", str(top.absolute())],
                        timeout=max(self.timeout, 3600))
        added = self._added(out)
        total = _tree_bytes(top, o)
        if progress is not None:
            progress(total)  # the CLI reads the files itself and reports nothing until done
        return ImportResult(added[-1][1], total, added_entries(top, label, added))

    # -- reading (verified) -------------------------------------------------------------
    def ls(self, cid: str) -> list[Entry]:
        """A directory's entries (names and CIDs verified), or the file itself."""
        root = cid_str(self.reader.resolve(cid))
        out = self._run(["ls", self._timeout_flag(), "--", root], subject=root)
        reported = []
        for line in out.decode(errors="replace").splitlines():
            entry = _parse_ls_line(line)
            if entry is not None:
                reported.append(entry)
        return verified_listing(self.reader, root, reported)

    def block_put(self, data: bytes, *, codec: str = "raw") -> str:
        """Store one block; the CID (v1, sha2-256) is computed here and checked.

        Raises:
            InvalidInput: an unsupported codec.
            IntegrityError: the node stored it under another hash.
        """
        codec_name = block_codec(codec)
        expected = cid_of_block(data, version=1, codec=codec_name)
        got = self._block_put(data, [f"--cid-codec={codec_name}", "--mhtype=sha2-256"])
        if bytes(got.digest) != bytes(expected.digest) or got.codec.name != codec_name:
            raise IntegrityError(f"the Kubo node stored the block as {got}, but it is "
                                 f"{cid_str(expected)}")
        return cid_str(expected)

    def _block_put(self, data: bytes, flags: list[str]) -> CID:
        out = self._run(["block", "put", *flags], data=bytes(data)).decode().strip()
        try:
            return parse_cid(out.split()[-1])
        except (InvalidCID, IndexError) as exc:
            raise IpfsMcpError(f"`block put` printed {out!r}, not a CID") from exc

    # -- pins ---------------------------------------------------------------------------
    def _pin_add(self, cid: CID, *, recursive: bool, name: str) -> None:
        target = cid_str(cid)
        named = [f"--name={name}"] if name else []
        self._run(["pin", "add", f"--recursive={'true' if recursive else 'false'}", *named,
                   self._timeout_flag(), "--", target], subject=target)

    def _pin_rm(self, cid: CID) -> None:
        target = cid_str(cid)
        self._run(["pin", "rm", "--", target], subject=target)

    def pin_listing(self) -> list[tuple[str, str, str]]:
        out = []
        text = self._run(["pin", "ls", "--type=all", "--names"]).decode(errors="replace")
        for line in text.splitlines():
            parts = line.split(None, 2)
            if len(parts) >= 2:
                try:
                    out.append((cid_str(parse_cid(parts[0])), parts[1],
                                parts[2].strip() if len(parts) == 3 else ""))
                except InvalidCID:
                    continue
        return out

    def swarm_connect(self, multiaddr: str) -> None:
        """Raises: NetworkError: the node could not connect (its message says why)."""
        try:
            self._run(["swarm", "connect", self._timeout_flag(), "--", multiaddr])
        except BackendUnavailable:
            raise
        except IpfsMcpError as exc:
            raise NetworkError(f"the Kubo node could not connect to {multiaddr}: {exc}"
                               ) from exc

    def provide(self, cid: str, *, recursive: bool = False) -> int:
        target = cid_str(parse_cid(cid))
        flags = ["--recursive"] if recursive else []
        self._run(["routing", "provide", *flags, self._timeout_flag(), "--", target],
                  subject=target)
        return 1

    def stats_bw(self) -> dict[str, Any]:
        return self._json_of(["stats", "bw", "--enc=json"])

    def bitswap_stat(self) -> dict[str, Any]:
        return self._json_of(["bitswap", "stat", "--enc=json"])

    def routing_table_size(self) -> int | None:
        try:
            info = self._json_of(["stats", "dht", "--enc=json"])
        except IpfsMcpError:
            return None
        return sum(len(b.get("Peers") or []) for b in info.get("Buckets") or [])

    def _json_of(self, args: list[str]) -> dict[str, Any]:
        out = self._run(args)
        try:
            first = out.decode(errors="replace").strip().splitlines()[0]
            value = json.loads(first)
        except (ValueError, IndexError) as exc:
            raise IpfsMcpError(f"`{' '.join(args)}` printed {out[:200]!r}, not JSON") from exc
        return value if isinstance(value, dict) else {}

    def pin_types(self, cid: str | None = None, *, type: str = "recursive") -> dict[str, str]:
        """Pinned CIDs with their pin type; ``cid`` limits the answer to that one.

        Raises:
            PinNotFound: ``cid`` was given and is not pinned.
        """
        args = ["pin", "ls", f"--type={type}"]
        if cid is not None:
            args += ["--", cid_str(parse_cid(cid))]
        out: dict[str, str] = {}
        for line in self._run(args, subject=cid).decode(errors="replace").splitlines():
            parts = line.split()
            if len(parts) >= 2:
                try:
                    out[cid_str(parse_cid(parts[0]))] = parts[1]
                except InvalidCID:
                    continue
        return out

    # -- CAR ----------------------------------------------------------------------------
    def _export_into(self, root: CID, out: BinaryIO) -> None:
        text = cid_str(root)
        chunks = self._stream(["dag", "export", self._timeout_flag(), "--", text], subject=text)
        check_car(root, IterReader(chunks, out))

    def dag_import(self, stream: BinaryIO, *, pin_roots: bool = True) -> car.CarImportReport:
        """``ipfs dag import`` from stdin, fed with a CAR that is verified as it is sent.

        Raises:
            IntegrityError: a block does not match its CID (the import stops).
            BlockNotFound: a root could not be pinned.
        """
        counted = CountingCar(stream)
        flag = f"--pin-roots={'true' if pin_roots else 'false'}"
        out = b"".join(self._stream(["dag", "import", flag], stdin=counted.pieces()))
        for line in out.decode(errors="replace").splitlines():
            parts = line.split("\t")
            if len(parts) >= 3 and parts[0].lower().startswith("pinned root") \
                    and parts[2].strip().lower() != "success":
                raise BlockNotFound(parts[1], f"the Kubo node (pinning the CAR's root: "
                                              f"{parts[2].strip()})")
        return car.CarImportReport(tuple(counted.roots), counted.blocks, counted.size)

    # -- node ---------------------------------------------------------------------------
    def id(self, *, timeout: float | None = None) -> dict[str, Any]:
        out = self._run(["id"], timeout=timeout)
        try:
            info = json.loads(out)
        except ValueError as exc:
            raise IpfsMcpError(f"`id` printed {out[:200]!r}, not JSON") from exc
        if not isinstance(info, dict) or "ID" not in info:
            raise IpfsMcpError(f"`id` printed {info!r}")
        return info

    def health(self) -> str:
        """One line for the health report; the daemon is asked now.

        Raises:
            BackendUnavailable: it does not answer.
        """
        info = self.id(timeout=min(self.timeout, 30.0))
        return (f"CLI {' '.join(self.cmd)}: {info.get('AgentVersion', '?')} "
                f"peer {info['ID']}")

    def swarm_peers(self) -> list[tuple[str, str]]:
        """Connected peers as ``(peer_id, multiaddr)``."""
        peers = []
        for line in self._run(["swarm", "peers"]).decode(errors="replace").splitlines():
            line = line.strip()
            if "/p2p/" in line:
                addr, _, pid = line.rpartition("/p2p/")
                peers.append((pid, addr))
        return peers

    def find_providers(self, cid: str, *, limit: int = 20, timeout: float | None = None
                       ) -> list[Provider]:
        target = cid_str(parse_cid(cid))
        seconds = timeout or self.timeout
        flags = [f"--num-providers={limit}", f"--timeout={seconds:g}s", "--", target]
        out = self._run(["routing", "findprovs", *flags], timeout=seconds + 30)
        found: dict[str, Provider] = {}
        for line in out.decode(errors="replace").splitlines():
            pid = line.strip()
            if pid and pid not in found and " " not in pid:
                found[pid] = Provider(pid, ())
        return list(found.values())[:limit]


# -- helpers -----------------------------------------------------------------------------
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


def _pieces(stream: BinaryIO, progress: Callable[[int], None] | None = None
            ) -> Iterator[bytes]:
    while piece := stream.read(_PIECE):
        if progress is not None:
            progress(len(piece))  # may raise OperationCancelled: the upload stops here
        yield piece


def _parse_ls_line(line: str) -> tuple[str, CID, str, int, str | None] | None:
    """One ``ls`` line: Kubo prints ``CID SIZE NAME``; folders end in ``/`` (and have ``-``
    or their size as SIZE)."""
    tokens = line.split()
    for i, token in enumerate(tokens):
        try:
            cid = parse_cid(token)
        except InvalidCID:
            continue
        rest = line.split(token, 1)[1].strip()
        match = _LS_LINE.match(rest)
        if match is None or i + 1 >= len(tokens):
            return None
        name = match.group("name")
        kind = "directory" if name.endswith("/") else "file"
        size = int(match.group("size")) if match.group("size").isdigit() else 0
        return name.rstrip("/"), cid, kind, size, None
    return None


def _tree_bytes(top: Path, o: ImportOptions) -> int:
    if not top.is_dir():
        return top.stat().st_size
    total = 0
    for folder, dirs, files in os.walk(top):
        if not o.hidden:
            dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            path = Path(folder) / name
            if (o.hidden or not name.startswith(".")) and not path.is_symlink():
                total += path.stat().st_size
    return total
