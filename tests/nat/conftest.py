"""The ``internet`` fixture: a fresh simulated internet per test (see :mod:`.lab`).

It skips, saying why, where the lab cannot be built (no root, no ``ip`` or ``iptables``),
and fails instead under ``IPFS_MCP_REQUIRE_INTEROP=1``. When a test fails, the log tails
of every program it started in the lab are added to its report. What the tests measured
(``record_property``, which reaches the main process under xdist too) is printed at the
end of the run.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from .lab import Internet, require_lab


@pytest.fixture
def internet(tmp_path: Path) -> Iterator[Internet]:
    require_lab()
    with Internet(tmp_path / "lab") as net:
        yield net


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    # Added to the call's own report, while the programs still run: under xdist a report
    # travels to the main process as soon as it is made, so a section added at teardown
    # would never be printed.
    net = getattr(item, "funcargs", {}).get("internet")
    if call.when == "call" and report.failed and isinstance(net, Internet):
        report.sections.append(("NAT lab logs", net.logs()))
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
