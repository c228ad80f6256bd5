"""Answers sized for a model's context, through the SDK's in-memory client: a small tool
list, listings a page at a time with a cursor that walks every entry once and refuses what
it did not issue, results whose text is one sentence, and a user's "no" told as such."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp_types import CallToolResult, ElicitResult, ListToolsResult, TextContent

from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.server.app import build_server
from ipfs_mcp.server.config import ServerSettings
from ipfs_mcp.server.tool_list import compact_tool
from tests.elicitation import scripted_answers
from tests.security.test_small_attacks import block_reads  # noqa: F401 (a fixture)

pytestmark = pytest.mark.anyio

TIMEOUT = 120
FILES = 3000
TOOL_LIST_BOUND = 12_000
PAGE_BOUND = 20_000
MAX_PAGES = 100  # every cursor walk below ends well before this


def sent_size(result: Any) -> int:
    """Bytes of a result as a transport writes it (compact JSON, wire names)."""
    return len(result.model_dump_json(by_alias=True, exclude_none=True))


def text_of(result: CallToolResult) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


async def ok(client: Client, name: str, args: dict[str, Any]) -> CallToolResult:
    result = await client.call_tool(name, args)
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return result


async def refused(client: Client, name: str, args: dict[str, Any]) -> str:
    result = await client.call_tool(name, args)
    assert result.is_error, result.structured_content
    text = text_of(result)
    assert "Traceback" not in text, text
    return text


def assert_one_sentence(result: CallToolResult) -> str:
    """The text is one short line, not the data again as JSON."""
    texts = [c.text for c in result.content if isinstance(c, TextContent)]
    assert len(texts) == 1, result.content
    text = texts[0]
    assert "\n" not in text and len(text) < 300 and not text.lstrip().startswith("{"), text
    return text


@pytest.fixture
def folder(work: Path) -> Path:
    site = work / "many"
    site.mkdir()
    for i in range(FILES):
        (site / f"file-{i:04d}.txt").write_text(f"entry {i}\n")
    return site


async def walk(client: Client, tool: str, args: dict[str, Any], first: CallToolResult,
               key: str, name: str, first_key: str | None = None,
               first_name: str | None = None) -> list[str]:
    """Every entry's ``name`` over the pages from ``first`` on, following the cursor (the
    first page may list them under other names: store_model's ``files`` and ``path``)."""
    data = first.structured_content
    assert data is not None
    seen = [e[first_name or name] for e in data[first_key or key]]
    cursor = data.get("cursor")
    for _ in range(MAX_PAGES):
        if cursor is None:
            return seen
        page = await ok(client, tool, {**args, "cursor": cursor})
        seen += [e[name] for e in page.structured_content[key]]
        cursor = page.structured_content.get("cursor")
    raise AssertionError(f"{tool}: the cursor did not end in {MAX_PAGES} pages")


# -- tools/list ------------------------------------------------------------------------------
async def test_the_tool_list_is_small_and_its_import_knobs_are_one_object(
        settings: ServerSettings) -> None:
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(settings)) as client:
            listed = await client.list_tools()
    size = sent_size(listed)
    assert size < TOOL_LIST_BOUND, size
    tools = {t.name: t for t in listed.tools}
    for name in ("store_model", "add_content"):
        schema = tools[name].input_schema
        props = schema["properties"]
        assert "import" in props, name
        for knob in ("chunker", "raw_leaves", "cid_version", "trickle", "profile",
                     "replication_min", "replication_max"):
            assert knob not in props, (name, knob)
        defs = json.dumps(schema.get("$defs", {}))
        assert "unixfs-v1-2025" in defs and "unixfs-v0-2015" in defs and "chunker" in defs
    assert "replication_min" not in tools["pin"].input_schema["properties"]
    for tool in tools.values():
        description = tool.description or ""
        assert not any(line.startswith(" ") for line in description.splitlines()), tool.name


async def test_cluster_options_are_listed_only_on_the_cluster_backend(
        settings: ServerSettings) -> None:
    """The list a cluster server would send (read from the server: starting it would dial
    the cluster), still under the bound."""
    from dataclasses import replace

    cluster = replace(settings, backend=replace(settings.backend, backend="cluster"))
    tools = await build_server(cluster).list_tools()
    by_name = {t.name: t for t in tools}
    for name in ("store_model", "add_content", "pin"):
        assert "replication_min" in by_name[name].input_schema["properties"], name
    # As the server's middleware sends it.
    sent = [compact_tool(t.model_dump(mode="json", by_alias=True, exclude_none=True))
            for t in tools]
    size = sent_size(ListToolsResult.model_validate({"tools": sent}))
    assert size < TOOL_LIST_BOUND, size


async def test_import_profiles_and_overrides_travel_in_the_import_object(
        settings: ServerSettings) -> None:
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(settings)) as client:
            default = await ok(client, "add_content", {"text": "hello"})
            v1 = await ok(client, "add_content", {"text": "hello",
                                                  "import": {"profile": "unixfs-v1-2025"}})
            dagpb = await ok(client, "add_content", {
                "text": "hello", "import": {"profile": "unixfs-v1-2025", "raw_leaves": False}})
            wrong = await client.call_tool("add_content", {"text": "hello",
                                                           "import": {"chunkr": "size-10"}})
    assert default.structured_content["cid"].startswith("Qm")
    assert v1.structured_content["cid"].startswith("bafkrei")
    assert dagpb.structured_content["cid"].startswith("bafybei")
    assert wrong.is_error and "chunkr" in text_of(wrong)


async def test_an_argument_the_tool_does_not_take_is_refused_not_dropped(
        settings: ServerSettings) -> None:
    """The SDK drops unknown arguments: a knob passed flat, as before the import object,
    would silently give another CID."""
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(settings)) as client:
            flat = await refused(client, "add_content", {"text": "x", "chunker": "size-10"})
            assert "chunker" in flat and "import object" in flat, flat
            factor = await refused(client, "pin", {"cid": "x", "replication_min": 2})
            assert "cluster backend" in factor, factor
            other = await refused(client, "ls", {"cid": "x", "bogus": 1})
            assert "bogus" in other and "cursor" in other, other
            pins = await ok(client, "list_pins", {})  # the refused add added nothing
            assert pins.structured_content is not None
            assert pins.structured_content["total"] == 0


# -- pages and cursors -----------------------------------------------------------------------
async def test_a_3000_entry_folder_comes_a_page_at_a_time_and_the_cursor_walks_it_once(
        settings: ServerSettings, folder: Path) -> None:
    names = {f"file-{i:04d}.txt" for i in range(FILES)}
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(settings)) as client:
            stored = await ok(client, "store_model", {"source": str(folder), "announce": False})
            data = stored.structured_content
            assert data is not None
            root = data["root_cid"]
            assert sent_size(stored) < PAGE_BOUND, sent_size(stored)
            assert len(data["files"]) == 100 and data["total"] == FILES + 1
            sentence = assert_one_sentence(stored)
            assert sentence.startswith(f"Stored {FILES:,} files") and "page 1 of 31" in sentence
            # store_model's file list goes on through ls, with its cursor.
            paths = await walk(client, "ls", {"cid": root}, stored, "entries", "name",
                               first_key="files", first_name="path")
            assert sorted(paths) == sorted(["", *names])

            listed = await ok(client, "ls", {"cid": root})
            assert sent_size(listed) < PAGE_BOUND, sent_size(listed)
            assert listed.structured_content["total"] == FILES
            assert len(listed.structured_content["entries"]) == 100
            assert "3,000 entries; showing 100" in assert_one_sentence(listed)
            entries = await walk(client, "ls", {"cid": root}, listed, "entries", "name")
            assert len(entries) == FILES and set(entries) == names

            fetched = await ok(client, "fetch_cid", {"cid": root})
            assert sent_size(fetched) < PAGE_BOUND, sent_size(fetched)
            assert fetched.structured_content["delivery"] == "listing"
            entries = await walk(client, "fetch_cid", {"cid": root}, fetched, "entries", "name")
            assert len(entries) == FILES and set(entries) == names


async def test_list_pins_pages_3000_pins_and_the_cursor_walks_them_once(
        settings: ServerSettings) -> None:
    """Pins made beforehand through the repo (the setup, fast); listed through MCP."""
    backend = HFCacheBackend(Repo(settings.backend.repo_path, fsync=False),
                             hub_cache=settings.backend.hf_hub_cache)
    made = {backend.add_stream(io.BytesIO(f"pin {i}".encode()), pin=True, name=f"p{i}")
            for i in range(FILES)}
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(settings)) as client:
            first = await ok(client, "list_pins", {})
            assert sent_size(first) < PAGE_BOUND, sent_size(first)
            assert first.structured_content["total"] == FILES
            assert len(first.structured_content["pins"]) == 100
            # Larger pages after the first keep the test quick; the cursor is the same.
            cids = await walk(client, "list_pins", {"limit": 1000}, first, "pins", "cid")
            assert len(cids) == FILES and set(cids) == made
            # A filter is part of the listing: its cursor does not continue another filter.
            some = await ok(client, "list_pins", {"name_contains": "p1", "limit": 5})
            text = await refused(client, "list_pins", {
                "cursor": some.structured_content["cursor"]})
            assert "another listing" in text


async def test_a_cursor_not_issued_for_this_listing_is_refused_clearly(
        settings: ServerSettings, work: Path) -> None:
    """Garbage, an altered cursor, another folder's, another tool's, and one from before a
    restart: each a clear error, before any walk."""
    for i in range(3):
        (work / "a").mkdir(exist_ok=True)
        (work / "a" / f"{i}.txt").write_text(str(i))
        (work / "b").mkdir(exist_ok=True)
        (work / "b" / f"{i}.txt").write_text(f"b{i}")
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(settings)) as client:
            a = (await ok(client, "add_content", {"path": str(work / "a")})).structured_content
            b = (await ok(client, "add_content", {"path": str(work / "b")})).structured_content
            page = await ok(client, "ls", {"cid": a["cid"], "limit": 1})
            cursor = page.structured_content["cursor"]
            flipped = cursor[:-3] + ("A" if cursor[-3] != "A" else "B") + cursor[-2:]
            for bad in ("garbage", "", "x" * 5000, "a.b", flipped, cursor + "A",
                        cursor.split(".")[0] + ".", json.dumps({"offset": 10**9})):
                text = await refused(client, "ls", {"cid": a["cid"],
                                                    "cursor": bad})
                assert "cursor" in text, (bad, text)
            other = await refused(client, "ls", {"cid": b["cid"],
                                                 "cursor": cursor})
            assert "another listing" in other
            assert "another listing" in await refused(client, "list_pins", {"cursor": cursor})
            # The same cursor still works where it belongs.
            await ok(client, "ls", {"cid": a["cid"], "cursor": cursor})
        async with Client(build_server(settings)) as restarted:
            text = await refused(restarted, "ls", {"cid": a["cid"],
                                                   "cursor": cursor})
            assert "start the listing again" in text


# -- sentences, confirmations, hints ---------------------------------------------------------
async def test_results_say_one_sentence_and_carry_the_data_once(
        settings: ServerSettings) -> None:
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(settings)) as client:
            added = await ok(client, "add_content", {"text": "hello world"})
            cid = added.structured_content["cid"]
            assert assert_one_sentence(added).startswith("Added a file (11 bytes) as Qm")
            for name, args in (("fetch_cid", {"cid": cid}), ("pin", {"cid": cid}),
                               ("list_pins", {}), ("ls", {"cid": cid}), ("peer_stats", {}),
                               ("unpin", {"cid": cid}), ("repo_gc", {})):
                result = await ok(client, name, args)
                assert_one_sentence(result)


class Answers:
    """An elicitation callback answering each question with the next of a script:
    "decline", "cancel" or "accept" (confirmed); the questions asked are kept."""

    def __init__(self, *script: str) -> None:
        self.script = list(script)
        self.asked: list[str] = []

    async def __call__(self, context: Any, params: Any) -> ElicitResult:
        self.asked.append(params.message)
        action = self.script.pop(0)
        if action == "accept":
            return ElicitResult(action="accept", content={"confirm": True})
        return ElicitResult(action=action)


async def test_a_declined_or_cancelled_confirmation_says_so_and_changes_nothing(
        settings: ServerSettings, work: Path) -> None:
    target = work / "keep.txt"
    target.write_text("precious")
    answers = Answers("decline", "cancel", "decline", "cancel")
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(settings), elicitation_callback=answers) as client:
            added = await ok(client, "add_content", {"text": "new bytes"})
            cid = added.structured_content["cid"]
            args = {"cid": cid, "output_path": str(target), "overwrite": True}
            declined = await refused(client, "fetch_cid", args)
            assert declined == (f"the user declined to replace {target}; nothing was changed")
            cancelled = await refused(client, "fetch_cid", args)
            assert cancelled.startswith("the user cancelled") and "nothing was changed" in cancelled
            assert target.read_text() == "precious"

            assert "declined to unpin" in await refused(client, "unpin", {"cid": cid})
            assert "cancelled" in await refused(client, "repo_gc", {})
            pins = await ok(client, "list_pins", {})
            assert [p["cid"] for p in pins.structured_content["pins"]] == [cid]
            read = await ok(client, "fetch_cid", {"cid": cid})
            assert read.structured_content["text"] == "new bytes"
    assert len(answers.asked) == 4 and str(target) in answers.asked[0]


async def test_the_scripted_no_of_the_shared_helper_reads_as_a_no(
        settings: ServerSettings) -> None:
    asked: list[str] = []
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(settings),
                          elicitation_callback=scripted_answers(["accept-no"], asked)) as client:
            added = await ok(client, "add_content", {"text": "x"})
            cid = added.structured_content["cid"]
            text = await refused(client, "unpin", {"cid": cid})
    assert text == f"the user did not agree to unpin {cid} (not confirmed); nothing was changed"


async def test_hints_fit_the_error(settings: ServerSettings) -> None:
    missing = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(settings)) as client:
            added = await ok(client, "add_content", {"text": "unpinned", "pin": False})
            cid = added.structured_content["cid"]
            not_pinned = await refused(client, "unpin", {"cid": cid})
            assert "not pinned" in not_pinned and "list_pins" in not_pinned
            assert "find_providers" not in not_pinned and "connect_peer" not in not_pinned
            not_here = await refused(client, "fetch_cid", {"cid": missing})
            assert "find_providers" in not_here


# -- the work of a page ----------------------------------------------------------------------
async def test_resuming_from_a_cursor_reads_the_page_not_what_came_before(
        settings: ServerSettings, work: Path, block_reads: list[object]  # noqa: F811
) -> None:
    """A deep tree (four levels of 60 entries): the file walk resumed at its last pages
    reads one entry per open folder and the page, whatever it skipped."""
    level = work / "deep"
    for depth in range(4):
        level.mkdir()
        for i in range(59):
            (level / f"f{i:02d}.txt").write_text(f"{depth}-{i}")
        level = level / "z"  # sorts after the files: the next level is walked last
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(settings)) as client:
            stored = await ok(client, "store_model", {"source": str(work / "deep"),
                                                      "announce": False})
            data = stored.structured_content
            assert data is not None
            root, cursor = data["root_cid"], data["cursor"]
            pages = 1
            for _ in range(MAX_PAGES):
                block_reads.clear()
                page = await ok(client, "ls", {"cid": root, "cursor": cursor})
                assert page.structured_content is not None
                # The stat of the root, one entry per open folder (four at most), the
                # listed folders' blocks and the page's entries.
                assert len(block_reads) <= 100 + 2 * 4 + 2, (pages, len(block_reads))
                pages += 1
                cursor = page.structured_content.get("cursor")
                if cursor is None:
                    break
            assert pages == 3  # 1 + 4 * 60 - 1 entries (the last level has no "z")
