"""The ``internet`` fixture: a fresh simulated internet per test (see :mod:`.lab`).

It skips, saying why, where the lab cannot be built (no root, no ``ip`` or ``iptables``),
and fails instead under ``IPFS_MCP_REQUIRE_INTEROP=1``. When a test fails, the log tails
of every program it started in the lab are added to its report.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .lab import Internet, require_lab


@pytest.fixture
def internet(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Internet]:
    require_lab()
    with Internet(tmp_path / "lab") as net:
        yield net
        report = getattr(request.node, "_nat_lab_call", None)
        if report is not None and report.failed:
            report.sections.append(("NAT lab logs", net.logs()))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Iterator[None]:
    report = yield
    if call.when == "call":
        item._nat_lab_call = report  # type: ignore[attr-defined]  # read at teardown above
    return report
