"""Fixtures for the Kubo backends, against a real Kubo 0.43 daemon on 127.0.0.1.

The daemon is :class:`~interop.kubo_daemon.KuboDaemon`: Kubo v0.43.1 built from source by
``tests/interop/gobuild.py`` (once, then cached), on a temporary repo with the ``test``
profile, no bootstrap peers, no mDNS, random loopback ports. One daemon serves the whole
session (``kubo``); tests that stop, kill or reconfigure a daemon get their own
(``own_daemon``, ``auth_daemon``). Without Go the tests skip and say why; under CI
(``IPFS_MCP_REQUIRE_INTEROP=1``) that is a failure instead.

* ``rpc``: :class:`KuboRPCBackend` on the daemon's RPC API;
* ``cli``: :class:`KuboCLIBackend` running the built ``ipfs`` with the daemon's
  ``IPFS_PATH`` (so it talks to the running daemon through the repo's ``api`` file).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from interop.kubo_daemon import KuboDaemon, kubo_daemon_binary
from interop.startup import record_start

from ipfs_mcp.backends.remote.kubo.cli import KuboCLIBackend
from ipfs_mcp.backends.remote.kubo.rpc import KuboRPCBackend

_HERE = Path(__file__).resolve().parent

# API.Authorizations for ``auth_daemon``: the harness's own token may do anything; the
# reader's only what verified reads of a file need; basic auth may only ask ``id``.
ADMIN_TOKEN = "Bearer kubo-suite-admin"
READER_TOKEN = "Bearer kubo-suite-reader"
BASIC_USER = ("alice", "open sesame")
AUTHORIZATIONS = {
    "admin": {"AuthSecret": "bearer:kubo-suite-admin", "AllowedPaths": ["/api/v0"]},
    "reader": {"AuthSecret": "bearer:kubo-suite-reader",
               "AllowedPaths": ["/api/v0/id", "/api/v0/cat", "/api/v0/block/get"]},
    "basic": {"AuthSecret": "basic:alice:open sesame", "AllowedPaths": ["/api/v0/id"]},
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.interop)


@pytest.fixture(scope="session")
def kubo_bin() -> Path:
    return kubo_daemon_binary()


@pytest.fixture(scope="session")
def kubo(kubo_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KuboDaemon]:
    with KuboDaemon(tmp_path_factory.mktemp("kubo"), binary=kubo_bin) as daemon:
        record_start("kubo 0.43 daemon (backend suite)", daemon.start_seconds)
        yield daemon


@pytest.fixture
def rpc(kubo: KuboDaemon) -> Iterator[KuboRPCBackend]:
    backend = KuboRPCBackend.connect(kubo.api_url, timeout=30)
    try:
        yield backend
    finally:
        backend.close()


@pytest.fixture
def cli(kubo: KuboDaemon) -> KuboCLIBackend:
    return KuboCLIBackend.connect(kubo.cli_command, env=kubo.cli_env, timeout=60)


@pytest.fixture
def own_daemon(kubo_bin: Path, tmp_path: Path) -> Iterator[KuboDaemon]:
    """A daemon of this test's own, for tests that stop or kill it."""
    with KuboDaemon(tmp_path / "own-kubo", binary=kubo_bin) as daemon:
        yield daemon


@pytest.fixture
def auth_daemon(kubo_bin: Path, tmp_path: Path) -> Iterator[KuboDaemon]:
    """A daemon whose API requires a token (:data:`AUTHORIZATIONS`); the harness itself
    uses :data:`ADMIN_TOKEN`."""
    with KuboDaemon(tmp_path / "auth-kubo", binary=kubo_bin, authorization=ADMIN_TOKEN,
                    config={"API.Authorizations": AUTHORIZATIONS}) as daemon:
        yield daemon
