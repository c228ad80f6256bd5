"""Helpers shared by the bench scripts: temp files of random bytes, sha256, timing, MB/s.

The real programs they measure are started by :mod:`_programs`."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, TypeVar

T = TypeVar("T")
MIB = 1 << 20
ROOT = Path(__file__).resolve().parent.parent


def random_file(path: Path, size: int) -> Path:
    """Incompressible bytes, written in 64 MiB pieces so memory stays flat."""
    with open(path, "wb") as out:
        left = size
        while left:
            n = min(left, 64 * MIB)
            out.write(os.urandom(n))
            left -= n
    return path


def sha256_file(path: Path) -> str:
    """The file's sha256, read unbuffered: the floor of any verified read of it (and a way
    to bring it into the page cache)."""
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


class Measured(NamedTuple):
    out: str  # the last line of its stdout
    seconds: float  # wall time, start-up included
    peak_rss_mib: float  # the command's own peak resident set


# Runs the command in a small child of its own and reports what wait4 says of it. Forking it
# from the bench itself would count the bench's pages too: a child's peak RSS starts from
# its parent's when it is forked (or vforked) and exec'd.
_MEASURE = """
import os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
sys.stderr.write(f"\\nmeasured {time.perf_counter() - start} {usage.ru_maxrss}\\n")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(argv: list[str], env: dict[str, str]) -> Measured:
    """Run a command as a user would; its wall time and its own peak RSS (``wait4``).

    Raises:
        SystemExit: the command failed (its stderr's tail is shown).
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        done = subprocess.run([sys.executable, "-S", "-c", _MEASURE, *argv], stdout=out,
                              stderr=err, env=env, check=False)
        err.seek(0)
        report = err.read().decode()
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {report[-2000:]}")
        out.seek(0)
        last = out.read().decode().strip().splitlines()[-1].strip()
    _, seconds, maxrss_kib = report.strip().splitlines()[-1].split()
    return Measured(last, float(seconds), int(maxrss_kib) / 1024)  # ru_maxrss: KiB (Linux)


def mbps(size: int, seconds: float) -> float:
    return size / MIB / seconds if seconds > 0 else float("inf")


def import_test_harness() -> None:
    """Make ``tests.interop`` importable (the benches reuse the real-Kubo harness)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
