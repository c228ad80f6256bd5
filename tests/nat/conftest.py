"""The ``internet`` fixture: a fresh simulated internet per test (see :mod:`.lab`).

It skips, saying why, where the lab cannot be built (no root, no ``ip`` or ``iptables``),
and fails instead under ``IPFS_MCP_REQUIRE_INTEROP=1``. When a test fails, the log tails
of every program it started in the lab are added to its report. What the tests measured
(``record_property``, which reaches the main process under xdist too) is printed at the
end of the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def pytest_terminal_summary(terminalreporter: Any) -> None:
    lines = [f"{report.nodeid.rpartition('::')[2]}: {name} = {value}"
             for outcome in ("passed", "failed")
             for report in terminalreporter.stats.get(outcome, [])
             if getattr(report, "when", "") == "call" and "tests/nat/" in report.nodeid
             for name, value in report.user_properties]
    if lines:
        terminalreporter.write_sep("-", "NAT lab figures")
        for line in lines:
            terminalreporter.write_line(line)
