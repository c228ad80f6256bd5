"""Every tool, resource, prompt and completion through the SDK's in-memory client, in both
protocol modes, checking structured results against the published models."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import (
    ListRootsResult,
    PromptReference,
    ResourceLink,
    ResourceTemplateReference,
    Root,
)

from ipfs_mcp.server.app import build_server
from ipfs_mcp.server.config import ServerSettings
from ipfs_mcp.tools import models

pytestmark = pytest.mark.anyio

TOOLS = {"store_model", "fetch_cid", "pin", "unpin", "list_pins", "find_providers",
         "peer_stats", "add_content", "ls", "connect_peer", "announce", "repo_gc",
         "publish_name", "resolve_name"}
HELLO_V0 = "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD"
TIMEOUT = 30


def make_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text("# tiny\n")
    (folder / "weights.bin").write_bytes(os.urandom(20_000))
    (folder / "sub").mkdir()
    (folder / "sub" / "notes.txt").write_text("notes\n")
    return folder


async def call(client: Client, name: str, args: dict[str, Any] | None = None,
               model: type[Any] | None = None) -> Any:
    result = await client.call_tool(name, args or {})
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return model.model_validate(result.structured_content) if model else result


async def call_error(client: Client, name: str, args: dict[str, Any]) -> str:
    result = await client.call_tool(name, args)
    assert result.is_error, result.structured_content
    text = " ".join(getattr(c, "text", "") for c in result.content)
    assert "Traceback" not in text
    return text


async def test_server_metadata_and_tool_list(settings: ServerSettings, mode: str) -> None:
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(settings), mode=mode) as client:
            assert client.server_info is not None and client.server_info.name == "ipfs-mcp"
            assert "store_model" in (client.instructions or "")
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert set(tools) == TOOLS
            for tool in tools.values():
                assert tool.title and tool.description and tool.annotations
                # Results are checked against their models on the server; the schemas
                # are not sent, to keep the list small (tests/server/test_answer_sizes.py).
                assert tool.output_schema is None, tool.name
            ann = {n: t.annotations for n, t in tools.items()}
            assert ann["unpin"].destructive_hint and ann["repo_gc"].destructive_hint
            for reader in ("list_pins", "peer_stats", "find_providers", "ls"):
                assert ann[reader].read_only_hint, reader
            assert ann["find_providers"].open_world_hint
            assert not ann["add_content"].open_world_hint
            assert not ann["store_model"].destructive_hint
            # Resolved parameters (client roots) are not part of what the model sees.
            assert "client_roots" not in json.dumps(tools["store_model"].input_schema)


async def test_every_tool(settings: ServerSettings, work: Path, mode: str) -> None:
    folder = make_folder(work / "model")
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(settings), mode=mode) as client:
            added = await call(client, "add_content", {"text": "hello world", "name": "greeting"},
                               models.AddResult)
            assert added.cid == HELLO_V0 and added.pinned

            stored = await call(client, "store_model", {"source": str(folder)},
                                models.StoreResult)
            assert stored.file_count == 3 and stored.pinned and not stored.announced
            assert "P2P node is not running" in stored.announce_note
            root = stored.root_cid

            fetched = await call(client, "fetch_cid", {"cid": f"{root}/README.md"},
                                 models.FetchResult)
            assert fetched.delivery == "text" and fetched.text == "# tiny\n"

            big = await client.call_tool("fetch_cid", {"cid": f"{root}/weights.bin"})
            parsed = models.FetchResult.model_validate(big.structured_content)
            assert parsed.delivery == "resource_link" and parsed.size == 20_000
            links = [c for c in big.content if isinstance(c, ResourceLink)]
            assert links and str(links[0].uri) == f"ipfs://{root}/weights.bin"

            page = await call(client, "fetch_cid", {"cid": f"{root}/weights.bin",
                                                    "offset": 100, "length": 50},
                              models.FetchResult)
            raw = (folder / "weights.bin").read_bytes()
            assert page.delivery == "base64" and base64.b64decode(page.base64 or "") == \
                raw[100:150]

            out = work / "restored"
            written = await call(client, "fetch_cid", {"cid": root, "output_path": str(out)},
                                 models.FetchResult)
            assert written.delivery == "file"
            assert (out / "weights.bin").read_bytes() == raw

            listing = await call(client, "ls", {"cid": root}, models.LsResult)
            assert {e.name for e in listing.entries} == {"README.md", "weights.bin", "sub"}

            pins = await call(client, "list_pins", {}, models.PinList)
            assert {p.cid for p in pins.pins} == {HELLO_V0, root}
            assert {p.name for p in pins.pins} == {"greeting", str(folder)}

            pinned = await call(client, "pin", {"cid": f"{root}/sub"}, models.PinResult)
            assert pinned.pinned and pinned.recursive
            unpinned = await call(client, "unpin", {"cid": HELLO_V0}, models.UnpinResult)
            assert unpinned.removed == ["recursive"]
            gc = await call(client, "repo_gc", {}, models.GCResult)
            assert gc.removed_blocks == 1 and gc.missing_pinned == []

            stats = await call(client, "peer_stats", {}, models.PeerStatsResult)
            assert stats.backend == "hf_cache" and stats.network is None
            assert stats.network_status.startswith("not running: disabled")
            assert stats.cache is not None and stats.cache.hits > 0

            for name, args in (("find_providers", {"cid": root}),
                               ("announce", {"cid": root}),
                               ("connect_peer", {"multiaddr": "/ip4/127.0.0.1/tcp/1/p2p/"
                                                 "12D3KooWLeX3U6LJNU2Yw5dEPzQPLUBHyyf3p65S8Gwx"
                                                 "Umw8mDbE"})):
                text = await call_error(client, name, args)
                assert "P2P node is not running (disabled" in text and "--listen" in text


async def test_progress_notifications(settings: ServerSettings, work: Path, mode: str) -> None:
    folder = work / "p"
    folder.mkdir()
    (folder / "a.bin").write_bytes(os.urandom(600_000))
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        seen.append((done, total, message))

    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(settings), mode=mode) as client:
            result = await client.call_tool("store_model", {"source": str(folder)},
                                            progress_callback=on_progress)
            assert not result.is_error
    assert seen and seen[0][1] == 600_000 and "storing" in (seen[0][2] or "")


async def test_bad_input_gets_clear_errors_and_server_stays_up(
        settings: ServerSettings, work: Path, tmp_path: Path, mode: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    os.symlink(outside, work / "escape")
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(settings), mode=mode) as client:
            for bad in ("notacid", "Qm", "bafy/../x", "ipfs://", "z" * 200):
                text = await call_error(client, "fetch_cid", {"cid": bad})
                assert "invalid CID" in text and "Qm..." in text
            missing = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
            text = await call_error(client, "fetch_cid", {"cid": missing})
            assert "not found" in text and "find_providers" in text
            for path in ("../outside", str(outside), str(outside / "secret.txt"),
                         str(work / "escape"), str(work / "escape" / "secret.txt"),
                         "/etc/passwd"):
                text = await call_error(client, "store_model", {"source": path})
                assert "allowed roots" in text and str(work.resolve()) in text, text
                text = await call_error(client, "add_content", {"path": path})
                assert "allowed roots" in text
            added = await call(client, "add_content", {"text": "x"}, models.AddResult)
            for dest in ("/etc/x", str(work / "escape" / "x"), "../x"):
                text = await call_error(client, "fetch_cid", {"cid": added.cid,
                                                              "output_path": dest})
                assert "allowed roots" in text
            text = await call_error(client, "fetch_cid", {"cid": added.cid, "length": 10**6})
            assert "inline cap of 4096" in text
            text = await call_error(client, "add_content", {"text": "x" * 70_000})
            assert "inline cap" in text and "path=" in text
            text = await call_error(client, "add_content", {"data_base64": "!!"})
            assert "base64" in text
            text = await call_error(client, "unpin", {"cid": HELLO_V0})
            assert "not pinned" in text
            text = await call_error(client, "store_model", {"source": "acme/not-cached"})
            assert "not in the HuggingFace cache" in text
            text = await call_error(client, "connect_peer", {"multiaddr": "/ip4/1.2.3.4"})
            assert "has no peer id" in text  # the caller's mistake is named first
            text = await call_error(client, "connect_peer", {
                "multiaddr": "/ip4/127.0.0.1/tcp/4001/p2p/"
                             "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"})
            assert "P2P node is not running" in text
            # Still up and answering.
            assert (await call(client, "list_pins", {}, models.PinList)).total == 1
            health = json.loads((await client.read_resource("ipfs-mcp://health"))
                                .contents[0].text)  # type: ignore[union-attr]
            assert len(health["recent_errors"]) == 20  # bounded: the latest ones
            assert "connect_peer: " in health["recent_errors"][-1]


async def test_client_roots_extend_the_allowed_roots(settings: ServerSettings,
                                                     tmp_path: Path, mode: str) -> None:
    shared = make_folder(tmp_path / "client-project")

    async def list_roots(_: Any) -> ListRootsResult:
        return ListRootsResult(roots=[Root(uri=shared.as_uri(), name="project")])

    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(settings), mode=mode) as client:
            await call_error(client, "store_model", {"source": str(shared)})
        async with Client(build_server(settings), mode=mode,
                          list_roots_callback=list_roots) as client:
            stored = await call(client, "store_model", {"source": str(shared)},
                                models.StoreResult)
            assert stored.file_count == 3


async def test_resources(settings: ServerSettings, work: Path, mode: str) -> None:
    folder = make_folder(work / "r")
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(settings), mode=mode) as client:
            stored = await call(client, "store_model", {"source": str(folder)},
                                models.StoreResult)
            root = stored.root_cid
            listed = {str(r.uri) for r in (await client.list_resources()).resources}
            assert listed == {"ipfs-mcp://pins", "ipfs-mcp://health"}
            templates = {t.uri_template for t in
                         (await client.list_resource_templates()).resource_templates}
            assert templates == {"ipfs://{cid}", "ipfs://{cid}/{+path}", "ipns://{name}",
                                 "ipns://{name}/{+path}"}

            pins = models.PinList.model_validate_json(
                (await client.read_resource("ipfs-mcp://pins")).contents[0].text)  # type: ignore[union-attr]
            assert [p.cid for p in pins.pins] == [root]
            health = models.Health.model_validate_json(
                (await client.read_resource("ipfs-mcp://health")).contents[0].text)  # type: ignore[union-attr]
            assert health.status == "ok" and health.backend.backend == "hf_cache"
            probes = {b.name: b for b in health.backends}
            assert set(probes) == {"ipfs_kit", "hf_cache", "kubo", "cluster"} and probes["hf_cache"].ok
            assert not probes["ipfs_kit"].ok and probes["ipfs_kit"].detail
            assert health.repo is not None and health.repo.pins == 1
            assert health.repo.free_disk > 0 and health.uptime_s >= 0
            assert health.network_status.startswith("not running")
            assert str(work.resolve()) in health.allowed_roots

            text = await client.read_resource(f"ipfs://{root}/README.md")
            assert text.contents[0].text == "# tiny\n"  # type: ignore[union-attr]
            nested = await client.read_resource(f"ipfs://{root}/sub/notes.txt")
            assert nested.contents[0].text == "notes\n"  # type: ignore[union-attr]
            meta = json.loads((await client.read_resource(f"ipfs://{root}"))
                              .contents[0].text)  # type: ignore[union-attr]
            assert meta["kind"] == "directory" and len(meta["entries"]) == 3
            binary = json.loads((await client.read_resource(f"ipfs://{root}/weights.bin"))
                                .contents[0].text)  # type: ignore[union-attr]
            assert binary["size"] == 20_000 and "fetch_cid" in binary["hint"]
            if mode == "auto":  # cache hints exist from 2026-07-28 on
                assert text.ttl_ms is not None and text.ttl_ms > 3600_000
                assert text.cache_scope == "public"
                fresh = await client.read_resource("ipfs-mcp://health")
                assert fresh.ttl_ms == 0
            with pytest.raises(MCPError, match="invalid CID"):
                await client.read_resource("ipfs://notacid")
            with pytest.raises(MCPError):
                await client.read_resource(f"ipfs://{root}/../etc/passwd")


async def test_prompts_and_completions(settings: ServerSettings, work: Path,
                                       mode: str) -> None:
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(settings), mode=mode) as client:
            prompts = {p.name: p for p in (await client.list_prompts()).prompts}
            assert set(prompts) == {"share_model", "fetch_and_verify", "diagnose",
                                    "publish_latest"}
            latest = await client.get_prompt("publish_latest", {"source": "acme/tiny"})
            body = latest.messages[0].content.text  # type: ignore[union-attr]
            assert "publish_name" in body and 'key="self"' in body and "resolve_name" in body
            assert all(p.title for p in prompts.values())
            share = await client.get_prompt("share_model", {"source": "acme/tiny"})
            body = share.messages[0].content.text  # type: ignore[union-attr]
            assert "store_model" in body and 'into_hf_cache="acme/tiny"' in body
            fetch = await client.get_prompt("fetch_and_verify", {"cid": HELLO_V0})
            body = fetch.messages[0].content.text  # type: ignore[union-attr]
            assert f'cid="{HELLO_V0}"' in body and "fetch_cid" in body and "pin" in body
            diag = await client.get_prompt("diagnose", {})
            body = diag.messages[0].content.text  # type: ignore[union-attr]
            assert "ipfs-mcp://health" in body and "find_providers" in body

            added = await call(client, "add_content", {"text": "hello world"},
                               models.AddResult)
            done = await client.complete(
                ResourceTemplateReference(type="ref/resource", uri="ipfs://{cid}"),
                {"name": "cid", "value": "Qmf4"})
            assert done.completion.values == [added.cid]
            none = await client.complete(
                PromptReference(type="ref/prompt", name="fetch_and_verify"),
                {"name": "cid", "value": "bafy"})
            assert none.completion.values == []
            hub = settings.backend.hf_hub_cache
            (hub / "models--acme--tiny").mkdir(parents=True)
            models_done = await client.complete(
                PromptReference(type="ref/prompt", name="share_model"),
                {"name": "source", "value": "ac"})
            assert models_done.completion.values == ["acme/tiny"]


async def test_cancelling_store_model_stops_it_and_pins_nothing(
        settings: ServerSettings, work: Path, mode: str) -> None:
    folder = work / "big"
    folder.mkdir()
    for i in range(8):
        (folder / f"part{i}.bin").write_bytes(os.urandom(1_000_000))
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(settings), mode=mode) as client:
            with anyio.CancelScope() as scope:
                async def on_progress(done: float, total: float | None, _: str | None) -> None:
                    scope.cancel()  # cancel as soon as the work is under way

                await client.call_tool("store_model", {"source": str(folder)},
                                       progress_callback=on_progress)
            assert scope.cancelled_caught
            # GC takes the repo's exclusive lock, so it runs once the cancelled import has
            # let go of it; then nothing is pinned and the partial blocks are garbage.
            gc = await call(client, "repo_gc", {}, models.GCResult)
            assert gc.kept_blocks == 0
            assert (await call(client, "list_pins", {}, models.PinList)).total == 0
            assert await call(client, "add_content", {"text": "still up"}, models.AddResult)


async def test_destructive_tools_ask_first_when_the_client_can(settings: ServerSettings,
                                                              mode: str) -> None:
    from tests.elicitation import scripted_answers

    asked: list[str] = []
    elicit = scripted_answers(["decline", "accept-no", "accept"], asked)

    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(settings), mode=mode,
                          elicitation_callback=elicit) as client:
            added = await call(client, "add_content", {"text": "precious"}, models.AddResult)
            assert "declin" in await call_error(client, "unpin", {"cid": added.cid})
            assert "not confirmed" in await call_error(client, "unpin", {"cid": added.cid})
            await call(client, "unpin", {"cid": added.cid}, models.UnpinResult)
            assert len(asked) == 3 and added.cid in asked[0]
        async with Client(build_server(settings), mode=mode) as client:  # no elicitation
            gc = await call(client, "repo_gc", {}, models.GCResult)
            assert gc.removed_blocks == 1
