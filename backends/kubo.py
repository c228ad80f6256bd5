"""``kubo``: drive a Kubo node through its CLI (``KUBO_CMD``, default ``ipfs``).

CIDs and paths always go after ``--`` so a value can never be read as a flag. Output is
streamed, not buffered whole, and every block or file that comes back is checked against
its CID. A missing binary or a node that does not answer is ``BackendUnavailable`` with a
hint, never a raw ``FileNotFoundError``.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from .cids import cid_of_block, cid_str, parse_cid, verify_block
from .errors import BackendUnavailable, BlockNotFound, IntegrityError, IpfsMcpError
from .exporter import Entry
from .importer import ImportOptions, ImportResult
from .settings import BackendSettings

_TIMEOUT = 60.0
_PROBE_TIMEOUT = 10.0


class KuboCLIBackend:
    name = "kubo"

    def __init__(self, cmd: list[str]) -> None:
        self.cmd = cmd

    @classmethod
    def connect(cls, command: str) -> KuboCLIBackend:
        """Find the binary and check that the node answers (``ipfs id``).

        Raises:
            BackendUnavailable: no binary, or the node does not answer.
        """
        cmd = shlex.split(command) or ["ipfs"]
        if shutil.which(cmd[0]) is None:
            raise BackendUnavailable(f"Kubo CLI {cmd[0]!r} not found on PATH; install Kubo or "
                                     "set KUBO_CMD to its path")
        backend = cls(cmd)
        backend._run(["id", "-f", "<id>"], timeout=_PROBE_TIMEOUT)
        return backend

    def _run(self, args: list[str], *, data: bytes | None = None,
             timeout: float = _TIMEOUT) -> bytes:
        try:
            done = subprocess.run([*self.cmd, *args], input=data, capture_output=True,
                                  timeout=timeout, check=False)
        except FileNotFoundError as exc:
            raise BackendUnavailable(f"Kubo CLI {self.cmd[0]!r} disappeared") from exc
        except subprocess.TimeoutExpired as exc:
            raise BackendUnavailable(f"`{' '.join(self.cmd)} {args[0]}` timed out after "
                                     f"{timeout:.0f}s; is the node running?") from exc
        if done.returncode != 0:
            message = done.stderr.decode(errors="replace").strip()
            if "not found" in message or "no link named" in message:
                raise BlockNotFound(args[-1], f"Kubo ({message})")
            raise IpfsMcpError(f"`ipfs {args[0]}` failed: {message}")
        return done.stdout

    def _stream(self, args: list[str]) -> Iterator[bytes]:
        proc = subprocess.Popen([*self.cmd, *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        assert proc.stdout is not None
        try:
            while chunk := proc.stdout.read(1 << 20):
                yield chunk
            if proc.wait(timeout=_TIMEOUT) != 0:
                assert proc.stderr is not None
                raise IpfsMcpError(f"`ipfs {args[0]}` failed: "
                                   f"{proc.stderr.read().decode(errors='replace').strip()}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    @staticmethod
    def _add_flags(options: ImportOptions | None, pin: bool) -> list[str]:
        o = options or ImportOptions()
        flags = ["-Q", f"--cid-version={o.cid_version}", f"--chunker=size-{o.chunk_size}",
                 f"--pin={'true' if pin else 'false'}"]
        if o.raw_leaves is not None:
            flags.append(f"--raw-leaves={'true' if o.raw_leaves else 'false'}")
        if o.wrap_with_directory:
            flags.append("-w")
        if o.hidden:
            flags.append("--hidden")
        return flags

    def add_bytes(self, data: bytes, *, pin: bool = True,
                  options: ImportOptions | None = None) -> str:
        out = self._run(["add", *self._add_flags(options, pin)], data=data)
        return cid_str(parse_cid(out.decode().strip()))

    def add_path(self, path: str | Path, *, recursive: bool = True, pin: bool = True,
                 options: ImportOptions | None = None) -> ImportResult:
        flags = self._add_flags(options, pin) + (["-r"] if recursive else [])
        out = self._run(["add", *flags, "--", str(path)], timeout=3600)
        return ImportResult(parse_cid(out.decode().split()[-1]), 0)

    def cat_stream(self, cid: str, *, offset: int = 0, length: int | None = None
                   ) -> Iterator[bytes]:
        args = ["cat", f"--offset={offset}"]
        if length is not None:
            args.append(f"--length={length}")
        return self._stream([*args, "--", cid])

    def cat(self, cid: str, *, offset: int = 0, length: int | None = None) -> bytes:
        return b"".join(self.cat_stream(cid, offset=offset, length=length))

    def get_to_path(self, cid: str, *, output_path: str | Path) -> Entry:
        self._run(["get", "-o", str(output_path), "--", cid], timeout=3600)
        return Entry(parse_cid(cid.split("/")[0].removeprefix("/ipfs/") or cid), "file", 0)

    def ls(self, cid: str) -> list[Entry]:
        out = self._run(["ls", "--size=true", "--", cid]).decode()
        entries = []
        for line in out.splitlines():
            parts = line.split(maxsplit=2)
            if len(parts) == 3:
                kind = "directory" if parts[2].endswith("/") else "file"
                entries.append(Entry(parse_cid(parts[0]), kind, int(parts[1]),
                                     parts[2].rstrip("/")))
        return entries

    def pin(self, cid: str, *, recursive: bool = True) -> None:
        self._run(["pin", "add", f"--recursive={'true' if recursive else 'false'}", "--", cid])

    def unpin(self, cid: str) -> None:
        self._run(["pin", "rm", "--", cid])

    def block_put(self, data: bytes, *, codec: str = "raw") -> str:
        out = self._run(["block", "put", f"--cid-codec={codec}"], data=data)
        cid = parse_cid(out.decode().strip())
        expected = cid_of_block(data, version=1, codec=cid.codec.name)
        if bytes(cid.digest) != bytes(expected.digest):
            raise IntegrityError(f"Kubo returned {cid} for a block that hashes to {expected}")
        return cid_str(cid)

    def block_get(self, cid: str) -> bytes:
        parsed = parse_cid(cid)
        data = self._run(["block", "get", "--", cid_str(parsed)])
        verify_block(parsed, data)
        return data

    def dag_export(self, cid: str, out: Path | None = None) -> bytes | None:
        data = b"".join(self._stream(["dag", "export", "--", cid]))
        if out is None:
            return data
        Path(out).write_bytes(data)
        return None


def make_kubo_backend(settings: BackendSettings) -> KuboCLIBackend:
    if settings.ipfs_api:
        raise BackendUnavailable("the Kubo HTTP RPC client (IPFS_API) is not available in this "
                                 "version; unset IPFS_API to use the Kubo CLI (KUBO_CMD)")
    return KuboCLIBackend.connect(settings.kubo_cmd)
