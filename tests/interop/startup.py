"""Start-up times of the Go daemons in this run, printed in pytest's closing summary."""

from __future__ import annotations

START_TIMES: list[str] = []


def record_start(what: str, seconds: float) -> None:
    """Note that ``what`` took ``seconds`` to start (shown at the end of the run)."""
    START_TIMES.append(f"{what}: {seconds:.2f} s")
