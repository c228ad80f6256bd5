"""Calling tools through the SDK client: a result that must succeed, or a clear tool error."""

from __future__ import annotations

from typing import Any

from mcp import Client


async def call(client: Client, name: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(name, args)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def call_error(client: Client, name: str, args: dict[str, Any]) -> str:
    """The error text of a call that must fail as a tool error (not a protocol error)."""
    result = await client.call_tool(name, args)
    assert result.is_error, (args, result.structured_content)
    text = " ".join(getattr(c, "text", "") for c in result.content)
    assert text and "Traceback" not in text
    return text
