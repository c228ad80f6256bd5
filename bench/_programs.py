"""The real programs the bench scripts measure: ``ipfs-mcp serve`` in a child process over
an embedded repo, and Kubo 0.43 as the test harness builds and runs it."""

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from _common import import_test_harness, random_file, sha256_file

from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.repo.repository import Repo

if TYPE_CHECKING:
    from tests.interop._process import DaemonProcess
    from tests.interop.kubo_daemon import KuboDaemon


class RepoFile(NamedTuple):
    work: Path  # a temporary folder, removed at the end
    path: Path  # the file, in ``work``
    home: Path  # the HF_HOME whose embedded repo holds it
    cid: str


@contextmanager
def random_file_in_repo(size: int) -> Iterator[RepoFile]:
    """A temporary folder with a file of ``size`` random bytes, read once (so every
    contender finds it in the page cache) and added to the embedded repo of
    ``HF_HOME=work/hf`` (no fsync: the benches that use this measure reads). The repo is
    closed again, for a server to open; the folder is removed on exit."""
    with tempfile.TemporaryDirectory() as name:
        work = Path(name)
        data = random_file(work / "data.bin", size)
        sha256_file(data)
        home = work / "hf"
        backend = HFCacheBackend(Repo(home / "ipfs", fsync=False))
        try:
            cid = str(backend.add_path(data).root)
        finally:
            backend.close()
        yield RepoFile(work, data, home, cid)


def start_serve(work: Path, home: Path, *flags: str, ready_marker: str) -> DaemonProcess:
    """``ipfs-mcp serve FLAGS`` in a child process over the embedded repo of ``HF_HOME=home``
    (log in ``work/serve.log``); its ``wait_ready`` waits for ``ready_marker``."""
    import_test_harness()
    from tests.interop._process import DaemonProcess

    return DaemonProcess([sys.executable, "-m", "ipfs_mcp.server.cli", "serve", *flags],
                         name="ipfs-mcp serve", cwd=work, log_path=work / "serve.log",
                         ready_marker=ready_marker, env={"HF_HOME": str(home)})


def gateway_url(server: DaemonProcess) -> str | None:
    """The gateway address a running ``ipfs-mcp serve --gateway`` logged, if it has yet."""
    match = re.search(r"serving gateway at (http://[\d.:]+)/ipfs/", server.log_tail())
    return match.group(1) if match else None


def kubo043_binary() -> Path | None:
    """Kubo 0.43's ``ipfs``, built by the test harness; None (said on stderr) if it cannot
    be built."""
    import_test_harness()
    from tests.interop.gobuild import GoBuildError, kubo_binary

    try:
        return kubo_binary()
    except GoBuildError as exc:
        print(f"cannot build Kubo 0.43: {exc}", file=sys.stderr)
        return None


def kubo043_daemon(folder: Path) -> KuboDaemon | None:
    """A running Kubo 0.43 daemon on a fresh repo in ``folder`` (the caller closes it); None
    (said on stdout, as the bench's figures are) if Kubo cannot be built."""
    import_test_harness()
    from tests.interop.gobuild import GoBuildError
    from tests.interop.kubo_daemon import KuboDaemon

    try:
        return KuboDaemon(folder)
    except GoBuildError as exc:
        print(f"(Kubo skipped: {exc})")
        return None
