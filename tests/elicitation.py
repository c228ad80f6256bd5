"""A client's answers to the server's questions (MCP elicitation), scripted for tests."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mcp.client.session import ElicitationFnT
from mcp_types import ElicitResult

__all__ = ["scripted_answers"]


def scripted_answers(answers: Iterable[str], asked: list[str]
                     ) -> ElicitationFnT:
    """An ``elicitation_callback`` that answers each question with the next of ``answers``:
    "decline" declines, "accept" accepts and confirms, anything else (say "accept-no")
    accepts without confirming. Each question's message is appended to ``asked``.

    Raises:
        RuntimeError: asked more questions than there are answers (a coroutine reports
            the exhausted script's StopIteration so).
    """
    script = iter(answers)

    async def elicit(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        answer = next(script)
        if answer == "decline":
            return ElicitResult(action="decline")
        return ElicitResult(action="accept", content={"confirm": answer == "accept"})

    return elicit
