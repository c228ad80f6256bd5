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
from typing import Any

import pytest

from .helia import HeliaNode, helia_skip_reason
from .jsenv import js_skip_reason
from .kubo import KuboNode, kubo_skip_reason

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


@pytest.fixture
def kubo_factory(tmp_path: Path) -> Iterator[Callable[..., KuboNode]]:
    reason = kubo_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    nodes: list[KuboNode] = []

    def start(**kwargs: Any) -> KuboNode:
        node = KuboNode(tmp_path / f"kubo-{len(nodes)}", **kwargs)
        nodes.append(node)
        return node

    try:
        yield start
    finally:
        for node in nodes:
            node.close()


@pytest.fixture
def helia_factory(tmp_path: Path) -> Iterator[Callable[..., HeliaNode]]:
    reason = helia_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    nodes: list[HeliaNode] = []

    def start(**kwargs: Any) -> HeliaNode:
        node = HeliaNode(tmp_path / f"helia-{len(nodes)}", **kwargs)
        nodes.append(node)
        return node

    try:
        yield start
    finally:
        for node in nodes:
            node.close()


@pytest.fixture
def kubo_node(kubo_factory: Callable[..., KuboNode]) -> KuboNode:
    return kubo_factory()


@pytest.fixture
def helia_node(helia_factory: Callable[..., HeliaNode]) -> HeliaNode:
    return helia_factory()
