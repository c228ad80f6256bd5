"""The compacted tools/list schemas accept and refuse exactly what the full ones do."""

from __future__ import annotations

from dataclasses import replace

import jsonschema  # type: ignore[import-untyped]
import pytest

from ipfs_mcp.server.app import build_server
from ipfs_mcp.server.config import ServerSettings
from ipfs_mcp.server.tool_list import compact, compact_tool

pytestmark = pytest.mark.anyio

# Values around every bound, enum and type the tools' arguments have.
PROBES: list[object] = [None, -2, -1, 0, 1, 7, 8, 174, 1024, 1025, 1.5, "", "x", "size-1024", True, False,
          "unixfs-v1-2025", "legacy-cid-v0", [], {}]


async def test_every_argument_validates_the_same_after_compaction() -> None:
    settings = ServerSettings.load({})
    cluster = replace(settings, backend=replace(settings.backend, backend="cluster"))
    tools = [*await build_server(settings).list_tools(), *await build_server(cluster).list_tools()]
    checked = 0
    for tool in tools:
        full = tool.input_schema
        small = compact(full)
        defs = {"$defs": full.get("$defs", {})}
        small_defs = {"$defs": small.get("$defs", {})}
        schemas = [(full["properties"][name], small["properties"][name], defs, small_defs)
                   for name in full["properties"]]
        for name, sub in full.get("$defs", {}).items():
            for prop in sub.get("properties", {}):
                schemas.append((sub["properties"][prop], small["$defs"][name]["properties"][prop],
                                defs, small_defs))
        for before, after, d1, d2 in schemas:
            for value in PROBES:
                ok_before = jsonschema.Draft202012Validator({**before, **d1}).is_valid(value)
                ok_after = jsonschema.Draft202012Validator({**after, **d2}).is_valid(value)
                assert ok_before == ok_after, (tool.name, before, after, value)
                checked += 1
    assert checked > 1000


async def test_read_only_tools_send_only_the_hints_that_mean_something() -> None:
    tools = await build_server(ServerSettings.load({})).list_tools()
    for tool in tools:
        sent = compact_tool(tool.model_dump(mode="json", by_alias=True, exclude_none=True))
        hints = sent["annotations"]
        if hints["readOnlyHint"]:
            assert "destructiveHint" not in hints and "idempotentHint" not in hints, tool.name
        else:
            assert {"destructiveHint", "idempotentHint"} <= set(hints), tool.name
