"""Fixtures for the Kubo backends, against a real daemon on 127.0.0.1.

By default the daemon is js-ipfs 0.66 (:mod:`.jsipfs`), started once per session on a
temporary repo and stopped at the end; tests that need it skip, saying why, when Node or
``tests/interop/jsipfs/node_modules`` is missing (``npm ci --prefix tests/interop/jsipfs
--no-audit --no-fund``).

**Running the suite against a real Kubo daemon** (the documented switch): set, in the
environment pytest starts with,

* ``IPFS_API`` to the daemon's RPC address (``http://127.0.0.1:5001`` or
  ``/ip4/127.0.0.1/tcp/5001``) for the RPC tests,
* ``KUBO_CMD`` to its CLI (``ipfs``, with ``IPFS_PATH`` set if its repo is not the
  default) for the CLI tests, and
* ``IPFS_API_AUTHORIZATION`` if its API requires a token (``API.Authorizations``); then
  the wrong-token test runs against it too.

Either one alone switches that half; the other half is skipped rather than mixed with
js-ipfs. The values are read when this file is imported, before the project-wide fixture
clears them for isolation. Tests that depend on js-ipfs's dialect say so and check the
Kubo behaviour instead when the daemon is Kubo.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ipfs_mcp.backends.kubo_cli import KuboCLIBackend
from ipfs_mcp.backends.kubo_rpc import KuboRPCBackend

from .jsipfs import JsIpfsDaemon, jsipfs_skip_reason

_HERE = Path(__file__).resolve().parent
EXTERNAL_API = (os.environ.get("IPFS_API") or "").strip() or None
EXTERNAL_CMD = (os.environ.get("KUBO_CMD") or "").strip() or None
EXTERNAL_AUTH = (os.environ.get("IPFS_API_AUTHORIZATION") or "").strip() or None
EXTERNAL = bool(EXTERNAL_API or EXTERNAL_CMD)


@dataclass
class Target:
    """Where the backends under test point."""

    dialect: str  # "js-ipfs" or "kubo"
    api: str | None
    cli: list[str] | None
    cli_env: dict[str, str] | None = None
    authorization: str | None = None
    daemon: JsIpfsDaemon | None = field(default=None, repr=False)

    @property
    def is_jsipfs(self) -> bool:
        return self.dialect == "js-ipfs"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.interop)


def skip_without_jsipfs() -> None:
    reason = jsipfs_skip_reason()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    if EXTERNAL:
        yield Target("kubo", EXTERNAL_API, shlex.split(EXTERNAL_CMD) if EXTERNAL_CMD else None,
                     None, EXTERNAL_AUTH)
        return
    skip_without_jsipfs()
    daemon = JsIpfsDaemon(tmp_path_factory.mktemp("jsipfs"))
    try:
        yield Target("js-ipfs", daemon.api_url, daemon.cli_command, daemon.cli_env, None,
                     daemon)
    finally:
        daemon.stop()


@pytest.fixture
def rpc(target: Target) -> Iterator[KuboRPCBackend]:
    if target.api is None:
        pytest.skip("KUBO_CMD points at a real Kubo but IPFS_API is not set: RPC tests skipped")
    backend = KuboRPCBackend.connect(target.api, authorization=target.authorization,
                                     timeout=30)
    try:
        yield backend
    finally:
        backend.close()


@pytest.fixture
def cli(target: Target) -> KuboCLIBackend:
    if target.cli is None:
        pytest.skip("IPFS_API points at a real Kubo but KUBO_CMD is not set: CLI tests skipped")
    return KuboCLIBackend.connect(target.cli, env=target.cli_env, timeout=60)


@pytest.fixture
def own_daemon(tmp_path: Path) -> Iterator[JsIpfsDaemon]:
    """A js-ipfs daemon of this test's own, for tests that stop or kill it."""
    skip_without_jsipfs()
    daemon = JsIpfsDaemon(tmp_path / "own-jsipfs")
    try:
        yield daemon
    finally:
        daemon.stop()
