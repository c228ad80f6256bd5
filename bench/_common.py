"""Helpers shared by the bench scripts: temp files of random bytes, sha256, timing, MB/s.

The real programs they measure are started by :mod:`_programs`."""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

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


def mbps(size: int, seconds: float) -> float:
    return size / MIB / seconds if seconds > 0 else float("inf")


def import_test_harness() -> None:
    """Make ``tests.interop`` importable (the benches reuse the real-Kubo harness)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
