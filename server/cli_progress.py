"""The CLI's progress bars: one look for every command (``add``, ``get``, a network ``get``).

A bar shows bytes done of the total when the DAG declares it (a file's root block does),
the rate, and the time left; without a total it is drawn as indeterminate: a short segment
moving along an empty track, visible without colour (rich's own pulse is a full-width bar
told apart only by colour) and the bytes alone, not "5.0/? MB". Bars appear only on a
terminal, on stderr, and vanish when done (``transient``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TextIO

from rich import filesize
from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

WIDTH = 40  # rich's default bar width
SEGMENT = 8  # the moving part of an indeterminate bar
STEPS_PER_SECOND = 12


class Bar(ProgressColumn):
    """rich's bar when the total is known; a moving segment on a track when it is not."""

    def __init__(self) -> None:
        super().__init__()
        self.known = BarColumn(bar_width=WIDTH)

    def render(self, task: Task) -> RenderableType:
        if task.total is not None:
            return self.known.render(task)
        travel = WIDTH - SEGMENT
        step = int(task.get_time() * STEPS_PER_SECOND) % (2 * travel)
        start = step if step < travel else 2 * travel - step  # there and back
        return Text.assemble(("─" * start, "bar.back"), ("━" * SEGMENT, "bar.pulse"),
                             ("─" * (travel - start), "bar.back"))


class Bytes(DownloadColumn):
    """Bytes done of the total; the bytes alone while there is no total."""

    def render(self, task: Task) -> Text:
        if task.total is None:
            return Text(filesize.decimal(int(task.completed)), style="progress.download")
        return super().render(task)


@contextlib.contextmanager
def progress_bars(stream: TextIO, *extra: ProgressColumn,
                  get_time: Callable[[], float] | None = None,
                  console: Console | None = None) -> Iterator[Progress]:
    """Rich progress bars on ``stream``: description, bar, bytes of total, rate, time
    left, then ``extra`` columns. ``get_time`` and ``console`` let a caller (a test) render
    them on its own clock and console."""
    with Progress(TextColumn("{task.description}"), Bar(), Bytes(),
                  TransferSpeedColumn(), TimeRemainingColumn(), *extra,
                  console=console or Console(file=stream), transient=True,
                  get_time=get_time) as bars:
        yield bars
