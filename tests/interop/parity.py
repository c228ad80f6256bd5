"""What the importer parity tests share: our import's listing of a folder, Kubo 0.43's
``ipfs`` run offline (no daemon) on a repo of its own, its ``add -r`` output read back,
and the bookkeeping that reports every mismatch of a comparison at once."""

from __future__ import annotations

import ast
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.core.importer import ImportResult

__all__ = ["KUBO_TIMEOUT", "Mismatches", "added_entries", "entries_of", "run_ipfs"]

KUBO_TIMEOUT = 300.0  # one `ipfs` command; an `add` of a whole batch takes well under a second


def entries_of(result: ImportResult) -> dict[str, str]:
    """``{relative path: CID}`` of every entry an import listed ("" is the root)."""
    entries = {e.path: cid_str(e.cid) for e in result.entries}
    entries[""] = cid_str(result.root)
    return entries


def run_ipfs(binary: Path, repo: Path, argv: Sequence[str], *, cwd: Path | None = None,
             check: bool = True) -> str:
    """``ipfs ARGV`` with ``IPFS_PATH=repo``; its stdout.

    Raises:
        AssertionError: it ran over :data:`KUBO_TIMEOUT`, or (with ``check``) it failed;
            the message has the command and the end of its stderr.
    """
    env = {**os.environ, "IPFS_PATH": str(repo)}
    try:
        proc = subprocess.run([str(binary), *argv], env=env, capture_output=True,
                              timeout=KUBO_TIMEOUT, check=False, cwd=cwd)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"ipfs {' '.join(argv)} took over {KUBO_TIMEOUT} s") from exc
    if check:
        assert proc.returncode == 0, (f"ipfs {' '.join(argv)} failed ({proc.returncode}): "
                                      f"{proc.stderr.decode(errors='replace')[-2000:]}")
    return proc.stdout.decode()


def added_entries(out: str, folder: Path) -> dict[str, str]:
    """``{relative path: CID}`` from the "added CID PATH" lines of ``ipfs add -r FOLDER``
    ("" is the folder)."""
    entries = {}
    for line in out.splitlines():  # "added CID PATH" (PATH may hold spaces)
        word, cid, name = line.split(" ", 2)
        assert word == "added", line
        if "\\" in name:  # Kubo's EscNonPrint: Go's strconv.Quote, quotes kept bare
            name = ast.literal_eval('"' + name.replace('"', '\\"') + '"')
        rel = "" if name == folder.name else name.removeprefix(folder.name + "/")
        entries[rel] = cid
    return entries


@dataclass
class Mismatches:
    """Every difference of one comparison, reported at once by :meth:`assert_none`.

    ``what`` names the comparison (and, for random inputs, how to replay them).
    """

    what: str
    cases: list[str] = field(default_factory=list)
    compared: int = 0

    def check(self, label: str, expected: str, got: str) -> None:
        self.compared += 1
        if expected != got:
            self.cases.append(f"{label}: expected {expected}, ours {got}")

    def assert_none(self, shown: int = 60) -> None:
        """Fail, listing the first ``shown`` differences, if any; also fail if nothing was
        compared (a comparison of nothing proves nothing).

        Raises:
            AssertionError: as said.
        """
        assert self.compared > 0, f"{self.what}: nothing was compared"
        assert not self.cases, (f"{self.what}: {len(self.cases)} of {self.compared} differ:\n"
                                + "\n".join(self.cases[:shown]))
