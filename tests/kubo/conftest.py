"""Fixtures for the Kubo backends, against a real Kubo 0.43 daemon on 127.0.0.1.

The daemon is :class:`~interop.kubo_daemon.KuboDaemon`: Kubo v0.43.1 built from source by
``tests/interop/gobuild.py`` (once, then cached), on a temporary repo with the ``test``
profile, no bootstrap peers, no mDNS, random loopback ports. One daemon serves the whole
session (``kubo``); tests that stop, kill or reconfigure a daemon get their own
(``own_daemon``, ``auth_daemon``). Without Go the tests skip and say why; under CI
(``IPFS_MCP_REQUIRE_INTEROP=1``) that is a failure instead.

* ``backend``: :class:`KuboBackend` on the suite's daemon, once per transport (``http``:
  its RPC API; ``cli``: the built ``ipfs`` with the daemon's ``IPFS_PATH``, so it talks to
  the running daemon through the repo's ``api`` file); every test that takes it runs over
  both, so both must give the same answers;
* ``rpc`` / ``cli``: the same, over one transport, for tests about that transport.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from interop.kubo_daemon import KuboDaemon, kubo_daemon_binary
from interop.startup import record_start

from ipfs_mcp.backends.remote.kubo.backend import KuboBackend

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


TRANSPORTS = ["http", "cli"]


def backend_over(transport: str, daemon: KuboDaemon, *, timeout: float | None = None
                 ) -> KuboBackend:
    """A connected backend on ``daemon`` over ``transport`` (``http`` or ``cli``); the CLI
    gets longer by default, as each command starts a process."""
    if transport == "http":
        return KuboBackend.over_http(daemon.api_url, timeout=timeout or 30)
    return KuboBackend.over_cli(daemon.cli_command, env=daemon.cli_env, timeout=timeout or 60)


@pytest.fixture(params=TRANSPORTS)
def backend(request: pytest.FixtureRequest, kubo: KuboDaemon) -> Iterator[KuboBackend]:
    made = backend_over(request.param, kubo)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def rpc(kubo: KuboDaemon) -> Iterator[KuboBackend]:
    made = backend_over("http", kubo)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def cli(kubo: KuboDaemon) -> KuboBackend:
    return backend_over("cli", kubo)


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
