"""Fixtures for tests against real third-party IPFS implementations.

Every test in ``tests/interop`` is marked ``interop`` (deselect with ``-m "not interop"``).

Fixtures (each node is closed, and its process killed, at teardown):

* ``kubo_node`` / ``helia_node``: one fresh node in ``tmp_path``;
* ``kubo_factory`` / ``helia_factory``: call ``factory(**kwargs)`` for as many nodes as a
  test needs (keyword arguments go to :class:`KuboNode` / :class:`HeliaNode`);
* ``js_tools``: skips unless Node and ``tests/interop/js/node_modules`` are there.

Kubo 0.43 and IPFS Cluster 1.1.6 (built by :mod:`.gobuild` on first use, then cached):

* ``kubo043_binary`` / ``cluster_binaries`` (session): the binaries;
* ``kubo043`` (module): one daemon shared by a test module; ``kubo043_factory``: fresh
  daemons for one test (keyword arguments go to :class:`KuboDaemon`);
* ``cluster3`` (module): a 3-peer CRDT cluster, each peer with its own Kubo 0.43.

A missing implementation skips the test with the reason and the install command:
``pip install -e '.[test]'`` for Kubo, ``npm ci --prefix tests/interop/js`` for JS, Go for
Kubo 0.43 and the cluster (with ``IPFS_MCP_REQUIRE_INTEROP=1`` those skips fail instead).
Start-up times of the Go daemons are printed at the end of the run (``-s`` not needed; the
root conftest gathers them from every worker).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from .cluster import Cluster, cluster_service_binaries
from .helia import HeliaNode, helia_skip_reason
from .jsenv import js_skip_reason
from .kubo import KuboNode, kubo_skip_reason
from .kubo_daemon import KuboDaemon, kubo_daemon_binary
from .startup import record_start

N = TypeVar("N", KuboNode, HeliaNode)

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.interop)


@pytest.fixture
def js_tools() -> None:
    reason = js_skip_reason()
    if reason is not None:
        pytest.skip(reason)


def _factory(cls: type[N], skip_reason: str | None, base: Path) -> Iterator[Callable[..., N]]:
    """Start nodes of one kind on demand; every one is closed when the test ends."""
    if skip_reason is not None:
        pytest.skip(skip_reason)
    nodes: list[N] = []

    def start(**kwargs: Any) -> N:
        node = cls(base / f"{cls.name}-{len(nodes)}", **kwargs)
        nodes.append(node)
        return node

    try:
        yield start
    finally:
        for node in nodes:
            node.close()


@pytest.fixture
def kubo_factory(tmp_path: Path) -> Iterator[Callable[..., KuboNode]]:
    yield from _factory(KuboNode, kubo_skip_reason(), tmp_path)


@pytest.fixture
def helia_factory(tmp_path: Path) -> Iterator[Callable[..., HeliaNode]]:
    yield from _factory(HeliaNode, helia_skip_reason(), tmp_path)


@pytest.fixture
def kubo_node(kubo_factory: Callable[..., KuboNode]) -> KuboNode:
    return kubo_factory()


@pytest.fixture
def helia_node(helia_factory: Callable[..., HeliaNode]) -> HeliaNode:
    return helia_factory()


# -- Kubo 0.43 and IPFS Cluster (Go, built on demand) ---------------------------------------
@pytest.fixture(scope="session")
def kubo043_binary() -> Path:
    return kubo_daemon_binary()


@pytest.fixture(scope="session")
def cluster_binaries() -> tuple[Path, Path]:
    return cluster_service_binaries()


@pytest.fixture(scope="module")
def kubo043(kubo043_binary: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[KuboDaemon]:
    with KuboDaemon(tmp_path_factory.mktemp("kubo043"), binary=kubo043_binary) as daemon:
        record_start("kubo 0.43 daemon", daemon.start_seconds)
        yield daemon


@pytest.fixture
def kubo043_factory(kubo043_binary: Path, tmp_path: Path) -> Iterator[Callable[..., KuboDaemon]]:
    daemons: list[KuboDaemon] = []

    def start(**kwargs: Any) -> KuboDaemon:
        kwargs.setdefault("binary", kubo043_binary)
        daemon = KuboDaemon(tmp_path / f"kubo043-{len(daemons)}", **kwargs)
        daemons.append(daemon)
        record_start("kubo 0.43 daemon", daemon.start_seconds)
        return daemon

    try:
        yield start
    finally:
        for daemon in daemons:
            daemon.close()


@pytest.fixture(scope="module")
def cluster3(kubo043_binary: Path, cluster_binaries: tuple[Path, Path],
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster(tmp_path_factory.mktemp("cluster3"), peers=3) as cluster:
        record_start("3-peer cluster (with its 3 Kubo daemons)", cluster.start_seconds)
        yield cluster
