"""The write attacks of the security issue, through the SDK's in-memory client.

A prompt-injected agent tries to poison the cached model ``victim/m`` (overwrite a blob, add
one, reach ``blobs/`` through a symlink, move ``refs/main``), to plant a file in the IPFS repo
and to overwrite the user's notes. Every attempt must fail as a clear tool error and leave
the whole hub cache and the user's file byte for byte as they were, also when the user
allowed a parent folder of the hub cache, and also through roots that the client declares.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from huggingface_hub import hf_hub_download
from mcp import Client
from mcp_types import ListRootsResult, Root

from ipfs_mcp.backends.core.cids import parse_cid
from ipfs_mcp.backends.hub.layout import commit_for
from ipfs_mcp.server.app import build_server
from ipfs_mcp.server.config import ServerSettings
from tests.elicitation import scripted_answers

from .mcp_calls import call, call_error
from .scene import ATTACKER_TEXT, NOTES, VICTIM, VICTIM_COMMIT, Scene, tree_digest, write_attacks

pytestmark = pytest.mark.anyio
TIMEOUT = 60

# Which folders the user allowed: the project only, or the home folder that also holds the
# HuggingFace home (``--allow-root ~``), the case that the old checks let through.
ALLOW = {"project": lambda s: [s.work], "home": lambda s: [s.home]}
REFUSALS = ("protected folder", "outside the writable roots")


def settings_for(scene: Scene, allow: list[Path]) -> ServerSettings:
    return ServerSettings.load(scene.env(allow), p2p=False)


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _seed(client: Client, scene: Scene) -> tuple[str, str]:
    """The attacker's file CID and model folder CID, added through the tools."""
    cid = (await call(client, "add_content", {"text": ATTACKER_TEXT}))["cid"]
    folder = (await call(client, "add_content", {"path": str(scene.evil_model)}))["cid"]
    return cid, folder


async def run_attacks(client: Client, scene: Scene, first_root: Path, *,
                      parent_allowed: bool) -> None:
    """Every attack, each a clear tool error, and nothing changed on disk."""
    cid, folder = await _seed(client, scene)
    before = tree_digest(scene.hub)
    for name, args in write_attacks(scene, cid, first_root).items():
        text = await call_error(client, "fetch_cid", args)
        if name == "the user's file":
            assert "already exists" in text and "overwrite=true" in text, text
        elif parent_allowed:
            assert "protected folder" in text, (name, text)
        else:
            assert any(r in text for r in REFUSALS), (name, text)
    # Attack 4: moving refs/main of a cached repo. The error names both commits.
    text = await call_error(client, "fetch_cid", {"cid": folder, "into_hf_cache": VICTIM})
    assert VICTIM_COMMIT in text and commit_for(parse_cid(folder)) in text, text
    assert "replace=true" in text
    # Reading the repo (the node's private key lives there) through a path.
    text = await call_error(client, "add_content", {"path": str(scene.repo / "identity.key")})
    assert ("not readable" if parent_allowed else "outside the allowed roots") in text, text
    assert tree_digest(scene.hub) == before
    assert scene.notes.read_bytes() == NOTES
    assert not (scene.repo / "planted").exists()
    # The server keeps serving.
    assert (await call(client, "fetch_cid", {"cid": cid}))["text"] == ATTACKER_TEXT


@pytest.mark.parametrize("allow", sorted(ALLOW))
async def test_write_attacks_fail_and_change_nothing(scene: Scene, mode: str,
                                                     allow: str) -> None:
    roots = ALLOW[allow](scene)
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(settings_for(scene, roots)), mode=mode) as client:
            await run_attacks(client, scene, roots[0], parent_allowed=allow == "home")


@pytest.mark.parametrize("declared", ["hub", "blobs", "home"])
async def test_write_attacks_through_roots_the_client_declares(scene: Scene, mode: str,
                                                               declared: str) -> None:
    """The client shares the hub cache itself, a folder inside it, or a parent of it: that
    makes them readable and writable roots, but the hub cache stays protected."""
    folder = {"hub": scene.hub, "blobs": scene.victim / "blobs", "home": scene.home}[declared]
    shared = [folder, scene.work]

    async def list_roots(_: Any) -> ListRootsResult:
        return ListRootsResult(roots=[Root(uri=p.as_uri(), name=p.name) for p in shared])

    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(settings_for(scene, [])), mode=mode,
                          list_roots_callback=list_roots) as client:
            await run_attacks(client, scene, folder, parent_allowed=declared == "home")
            # The declared project root is writable: the roots were really applied.
            cid = (await call(client, "add_content", {"text": "fine"}))["cid"]
            await call(client, "fetch_cid", {"cid": cid, "output_path": str(scene.work / "ok")})
            assert (scene.work / "ok").read_text() == "fine"


async def test_overwrite_true_replaces_the_users_file_and_says_so(scene: Scene,
                                                                  mode: str) -> None:
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(settings_for(scene, [scene.work])), mode=mode) as client:
            cid, folder = await _seed(client, scene)
            text = await call_error(client, "fetch_cid", {
                "cid": folder, "output_path": str(scene.evil_model)})
            assert "already exists" in text and "folder with 2 entries" in text
            text = await call_error(client, "fetch_cid", {
                "cid": folder, "output_path": str(scene.work), "overwrite": True})
            assert "allowed root itself" in text and scene.notes.read_bytes() == NOTES
            done = await call(client, "fetch_cid", {"cid": cid, "output_path": str(scene.notes),
                                                    "overwrite": True})
            assert done["replaced"] == str(scene.notes)
            assert scene.notes.read_text() == ATTACKER_TEXT
            fresh = await call(client, "fetch_cid", {"cid": cid, "overwrite": True,
                                                     "output_path": str(scene.work / "new")})
            assert "replaced" not in fresh  # nothing was there


async def test_replace_true_moves_the_revision_and_fetching_again_is_idempotent(
        scene: Scene, mode: str) -> None:
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(settings_for(scene, [scene.work])), mode=mode) as client:
            _, folder = await _seed(client, scene)
            new_commit = commit_for(parse_cid(folder))
            first = await call(client, "fetch_cid", {"cid": folder, "into_hf_cache": "acme/new"})
            assert first["hf_commit"] == new_commit and "replaced" not in first
            before = tree_digest(scene.hub)
            again = await call(client, "fetch_cid", {"cid": folder, "into_hf_cache": "acme/new"})
            assert again["hf_commit"] == new_commit
            assert tree_digest(scene.hub) == before  # a repeated fetch changes nothing

            moved = await call(client, "fetch_cid", {"cid": folder, "into_hf_cache": VICTIM,
                                                     "replace": True})
            assert moved["replaced"] == VICTIM_COMMIT and moved["hf_commit"] == new_commit
            assert (scene.victim / "refs" / "main").read_text() == new_commit
    got = hf_hub_download(VICTIM, "model.safetensors", cache_dir=str(scene.hub),
                          local_files_only=True)
    assert Path(got).read_bytes() == (scene.evil_model / "model.safetensors").read_bytes()


async def test_replacing_asks_the_user_first_when_the_client_can(scene: Scene,
                                                                 mode: str) -> None:
    asked: list[str] = []
    elicit = scripted_answers(["decline", "accept-no", "accept", "decline", "accept"], asked)

    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(settings_for(scene, [scene.work])), mode=mode,
                          elicitation_callback=elicit) as client:
            cid, folder = await _seed(client, scene)
            overwrite = {"cid": cid, "output_path": str(scene.notes), "overwrite": True}
            assert "declin" in await call_error(client, "fetch_cid", overwrite)
            assert "not confirmed" in await call_error(client, "fetch_cid", overwrite)
            assert scene.notes.read_bytes() == NOTES
            await call(client, "fetch_cid", overwrite)
            assert scene.notes.read_text() == ATTACKER_TEXT
            assert len(asked) == 3 and str(scene.notes) in asked[0]

            # Nothing to replace: no question.
            await call(client, "fetch_cid", {"cid": cid, "overwrite": True,
                                             "output_path": str(scene.work / "fresh")})
            assert len(asked) == 3

            replace = {"cid": folder, "into_hf_cache": VICTIM, "replace": True}
            hub_before = tree_digest(scene.hub)
            assert "declin" in await call_error(client, "fetch_cid", replace)
            assert tree_digest(scene.hub) == hub_before
            assert VICTIM_COMMIT in asked[3]
            await call(client, "fetch_cid", replace)
            assert (scene.victim / "refs" / "main").read_text() == commit_for(parse_cid(folder))
            assert len(asked) == 5


async def test_annotations_say_which_tools_replace_and_which_talk_to_the_network(
        scene: Scene) -> None:
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(settings_for(scene, [scene.work]))) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
    destructive = {n for n, t in tools.items() if t.annotations.destructive_hint}
    assert destructive == {"fetch_cid", "unpin", "repo_gc", "publish_name"}
    for name in destructive:
        assert not tools[name].annotations.read_only_hint
    assert "overwrite=true" in tools["fetch_cid"].description
    assert "replace=true" in tools["fetch_cid"].description
    network = {n for n, t in tools.items() if t.annotations.open_world_hint}
    assert network == {"store_model", "fetch_cid", "pin", "ls", "find_providers",
                       "connect_peer", "announce", "publish_name", "resolve_name"}
