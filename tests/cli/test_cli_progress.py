"""The CLI's progress bars, rendered by rich on a recording console and a stepped clock: the
total when the DAG declares it, a rate and the time left; no total, an indeterminate bar."""

from __future__ import annotations

import io

from rich.console import Console
from rich.progress import Progress

from ipfs_mcp.server.cli_fetch import Display, Transfer
from ipfs_mcp.server.cli_progress import progress_bars

MB = 1_000_000


class Clock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def recording() -> Console:
    return Console(file=io.StringIO(), record=True, force_terminal=True, width=140,
                   color_system=None)


def shown(bars: Progress) -> str:
    """The bars as one frame of plain text, a line per task (without colour: what shows
    must show in the characters)."""
    console = recording()
    console.print(bars.make_tasks_table(bars.tasks))
    return console.export_text()


def test_a_bar_with_a_total_shows_it_with_rate_and_time_left() -> None:
    clock, console = Clock(), recording()
    with progress_bars(Terminal(), get_time=clock, console=console) as bars:
        task = bars.add_task("fetching", total=200 * MB)
        for _ in range(5):  # 10 MB a second, five seconds
            clock.now += 1
            bars.advance(task, 10 * MB)
        text = shown(bars)
    assert "50.0/200.0 MB" in text
    assert "10.0 MB/s" in text
    assert "0:00:15" in text  # 150 MB left at 10 MB/s


def test_a_bar_without_a_total_is_indeterminate_not_full() -> None:
    clock, console = Clock(), recording()
    with progress_bars(Terminal(), get_time=clock, console=console) as bars:
        known = bars.add_task("known", total=100)
        bars.update(known, completed=100)
        bars.add_task("unknown", total=None, completed=5 * MB)
        lines = shown(bars).splitlines()
    full, unknown = (next(line for line in lines if line.startswith(name))
                     for name in ("known", "unknown"))
    assert "━" * 20 in full  # a finished bar is drawn whole
    assert "━" * 20 not in unknown and "5.0 MB" in unknown and "/" not in unknown


def test_the_network_get_bar_takes_the_total_the_root_block_declares() -> None:
    clock, console = Clock(), recording()
    transfer = Transfer(total=None)
    display = Display(transfer, json_lines=False, label="bafy...", stream=Terminal(),
                      get_time=clock, console=console)
    with display.shown():
        transfer.phase, transfer.total = "fetching", 4 * MB  # the stat of the root block
        clock.now += 2
        transfer.received = MB
        display.update()
        text = shown(display._bar)
    assert "1.0/4.0 MB" in text and "?/" not in text
