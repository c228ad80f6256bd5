"""Fixtures for tests against real third-party IPFS implementations.

Every test in ``tests/interop`` is marked ``interop`` (deselect with ``-m "not interop"``).

Fixtures (each node is closed, and its process killed, at teardown):

* ``kubo_node`` / ``helia_node``: one fresh node in ``tmp_path``;
* ``kubo_factory`` / ``helia_factory``: call ``factory(**kwargs)`` for as many nodes as a
  test needs (keyword arguments go to :class:`KuboNode` / :class:`HeliaNode`);
* ``js_tools``: skips unless Node and ``tests/interop/js/node_modules`` are there.

A missing implementation skips the test with the reason and the install command:
``pip install -e '.[test]'`` for Kubo, ``npm ci --prefix tests/interop/js`` for JS.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from .helia import HeliaNode, helia_skip_reason
from .jsenv import js_skip_reason
from .kubo import KuboNode, kubo_skip_reason

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
        node = cls(base / f"{cls.name}-{len(nodes)}", **kwargs)  # type: ignore[call-arg]
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
