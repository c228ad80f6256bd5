"""Go-built peers for the tests: Kubo v0.43.1 and IPFS Cluster v1.1.6, built once and cached.

Kubo cannot be built with ``go install github.com/ipfs/kubo/cmd/ipfs@v0.43.1``: Go refuses
``pkg@version`` for a module whose go.mod has ``exclude`` or ``replace`` lines. So Kubo is a
dependency of a tiny main module of ours, ``go/kubo/`` (its go.mod repeats Kubo's excludes,
its main.go is Kubo's own entry point). Everything else is built as ``go install
pkg@version`` would build it (:func:`go_install` says why not by ``go install`` itself).

Binaries are cached in an ignored folder, one sub-folder per binary and version::

    tests/interop/.gobin/
        .lock                              flock held while anything is built
        kubo-v0.43.1-<hash>/ipfs           <hash>: our go.mod, go.sum and main.go
        ipfs-cluster-service-v1.1.6/ipfs-cluster-service
        ipfs-cluster-ctl-v1.1.6/ipfs-cluster-ctl

A binary is built into a temporary sibling folder and renamed into place, under the lock, so
two pytest processes never race and a half-built binary is never seen; once a folder exists
nothing is rebuilt. Go's own module and build caches (GOPATH, GOMODCACHE, GOCACHE, GOFLAGS:
whatever the environment says, else Go's defaults) are left alone, so a fresh clone on a
machine that built these before rebuilds from cache in seconds.

Tests call :func:`interop_skip` when a peer cannot be built: a skip that says why, or a
failure when ``IPFS_MCP_REQUIRE_INTEROP=1`` (CI sets it, so nothing is silently skipped).

Build everything up front (``.ci/run`` does)::

    python -m tests.interop.gobuild
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

__all__ = [
    "CLUSTER_VERSION", "KUBO_VERSION", "GoBuildError", "GoMissing", "cluster_binaries",
    "go_install", "interop_required", "interop_skip", "kubo_binary", "main",
]

KUBO_VERSION = "v0.43.1"
CLUSTER_VERSION = "v1.1.6"
CLUSTER_MODULE = "github.com/ipfs-cluster/ipfs-cluster"

_HERE = Path(__file__).resolve().parent
KUBO_MODULE_DIR = _HERE / "go" / "kubo"
GOBIN_DIR = _HERE / ".gobin"

# Read once: whether a missing peer fails the run instead of skipping it.
_REQUIRE_INTEROP = os.environ.get("IPFS_MCP_REQUIRE_INTEROP", "").strip() == "1"

# Bounds: a cold Kubo build on 2 cores takes minutes, a cached one seconds.
BUILD_TIMEOUT = 3600.0
LOCK_TIMEOUT = BUILD_TIMEOUT + 60.0


class GoBuildError(RuntimeError):
    """A Go binary could not be built (the message has the command and Go's output)."""


class GoMissing(GoBuildError):
    """No ``go`` command on PATH."""


def interop_required() -> bool:
    """True when missing interop peers must fail the run (``IPFS_MCP_REQUIRE_INTEROP=1``)."""
    return _REQUIRE_INTEROP


def interop_skip(reason: str) -> NoReturn:
    """Skip the test with ``reason``, or fail it when interop is required (CI)."""
    import pytest

    if _REQUIRE_INTEROP:
        pytest.fail(f"{reason} (IPFS_MCP_REQUIRE_INTEROP=1 turns this skip into a failure)",
                    pytrace=False)
    pytest.skip(reason)


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise GoMissing("Go is not installed (no `go` on PATH): the Kubo 0.43 and IPFS "
                        "Cluster tests need Go >= 1.26 to build their peers")
    return go


@contextmanager
def _build_lock() -> Iterator[None]:
    """Hold the cache's flock (bounded wait) so only one process builds at a time."""
    GOBIN_DIR.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + LOCK_TIMEOUT
    with open(GOBIN_DIR / ".lock", "a+b") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise GoBuildError(f"another process held {GOBIN_DIR / '.lock'} for "
                                       f"{LOCK_TIMEOUT:.0f} s") from None
                time.sleep(0.5)  # polling a lock another process holds for minutes
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(argv: Sequence[str], *, cwd: Path, env: dict[str, str]) -> None:
    try:
        proc = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True,
                              timeout=BUILD_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        raise GoBuildError(f"{' '.join(argv)} did not finish in {BUILD_TIMEOUT:.0f} s") from exc
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).decode("utf-8", "replace")[-6000:]
        raise GoBuildError(f"{' '.join(argv)} (in {cwd}) failed with code "
                           f"{proc.returncode}:\n{output}")


# build(go, out_folder, env) puts the binary into out_folder.
_Build = Callable[[str, Path, dict[str, str]], None]


def _cached(key: str, binary: str, build: _Build) -> Path:
    """``GOBIN_DIR/key/binary``, built by ``build`` if it is not there yet."""
    final = GOBIN_DIR / key / binary
    if final.is_file():
        return final
    go = _go()
    with _build_lock():
        if final.is_file():  # another process built it while we waited
            return final
        if final.parent.exists():  # a folder without its binary: not ours to trust
            shutil.rmtree(final.parent)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=GOBIN_DIR))
        try:
            env = dict(os.environ)
            env["CGO_ENABLED"] = "0"
            started = time.monotonic()
            build(go, tmp, env)
            if not (tmp / binary).is_file():
                raise GoBuildError(f"the build of {key} produced no {binary}")
            os.replace(tmp, final.parent)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        print(f"built {key}/{binary} in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return final


def _kubo_key() -> str:
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update((KUBO_MODULE_DIR / name).read_bytes())
    return f"kubo-{KUBO_VERSION}-{digest.hexdigest()[:12]}"


def kubo_binary() -> Path:
    """The ``ipfs`` binary of Kubo v0.43.1, built from ``go/kubo/`` on first use.

    Raises:
        GoMissing: no Go toolchain.
        GoBuildError: the build failed.
    """
    def build(go: str, out: Path, env: dict[str, str]) -> None:
        _run([go, "build", "-trimpath", "-o", str(out / "ipfs"), "."], cwd=KUBO_MODULE_DIR,
             env=env)

    return _cached(_kubo_key(), "ipfs", build)


def go_install(package: str, version: str, binary: str) -> Path:
    """What ``go install package@version`` builds, into the cache; returns ``binary``'s path.

    Not ``go install`` itself: it first asks the module proxy for the module's version list
    (to check for a deprecation notice) and gives up when the proxy refuses that list,
    which proxies that serve only pinned versions do. So the package becomes the one
    ``tool`` of a throwaway main module (``go get -tool package@version``), which selects
    exactly the versions ``go install`` would (the tool module's own requirements, nothing
    else), and ``go build`` builds it.

    Raises:
        GoMissing: no Go toolchain.
        GoBuildError: the build failed.
    """
    def build(go: str, out: Path, env: dict[str, str]) -> None:
        module = out / "module"
        module.mkdir()
        _run([go, "mod", "init", "ipfs-mcp.test/tool"], cwd=module, env=env)
        _run([go, "get", "-tool", f"{package}@{version}"], cwd=module, env=env)
        _run([go, "build", "-trimpath", "-o", str(out / binary), package], cwd=module, env=env)
        shutil.rmtree(module)

    return _cached(f"{binary}-{version}", binary, build)


def cluster_binaries() -> tuple[Path, Path]:
    """``(ipfs-cluster-service, ipfs-cluster-ctl)`` of IPFS Cluster v1.1.6."""
    service = go_install(f"{CLUSTER_MODULE}/cmd/ipfs-cluster-service", CLUSTER_VERSION,
                         "ipfs-cluster-service")
    ctl = go_install(f"{CLUSTER_MODULE}/cmd/ipfs-cluster-ctl", CLUSTER_VERSION,
                     "ipfs-cluster-ctl")
    return service, ctl


def main(argv: Sequence[str] | None = None) -> int:
    """Build (or find cached) every Go peer; print each path and how long it took."""
    del argv
    builders = {"kubo": kubo_binary, "ipfs-cluster": cluster_binaries}
    for name, builder in builders.items():
        started = time.monotonic()
        try:
            result = builder()
        except GoBuildError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            return 1
        paths = result if isinstance(result, tuple) else (result,)
        for path in paths:
            print(f"{name}: {path} ({time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
