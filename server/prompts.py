"""Prompt texts, kept as Markdown in the ``ipfs_mcp.prompts`` package (``prompts/*.md``).

Texts use ``$name`` placeholders (``string.Template``), so Markdown braces stay literal.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from string import Template


@cache
def _template(name: str) -> Template:
    text = resources.files("ipfs_mcp.prompts").joinpath(f"{name}.md").read_text("utf-8")
    return Template(text)


def render(name: str, **values: str) -> str:
    """The prompt ``name`` with its placeholders filled.

    Raises:
        FileNotFoundError: no such prompt text (a packaging mistake).
        KeyError: a placeholder without a value.
    """
    return _template(name).substitute(values)
