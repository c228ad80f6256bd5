"""Attacks 3 and 4 of the security issue, and the empty folders a refused write left, through
the SDK's in-memory client.

A prompt-injected agent holds a folder CID of its own and tries to make ``huggingface_hub``
load it in place of the cached model ``victim/m``:

- by naming a ref after the cached commit (``hf_revision=<commit>``), which
  ``try_to_load_from_cache(revision=<commit>)`` reads before the snapshot of that commit;
- by giving one revision in ``into_hf_cache="victim/m@main"`` and another in
  ``hf_revision``, so that the user is asked about one (or, as it was, not at all) while
  the other moves;
- by having the ref move between the user's answer and the write.

After each, the offline view of the victim is checked with ``huggingface_hub`` itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from huggingface_hub import hf_hub_download, try_to_load_from_cache
from mcp import Client
from mcp.client.session import ElicitationFnT
from mcp_types import ElicitResult

from ipfs_mcp.backends.core import unixfs
from ipfs_mcp.backends.core.cids import cid_of_block, cid_str, parse_cid
from ipfs_mcp.backends.core.dagpb import encode_link, encode_node
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.server.app import build_server
from ipfs_mcp.server.config import ServerSettings
from tests.elicitation import scripted_answers

from .mcp_calls import call, call_error
from .scene import VICTIM, VICTIM_COMMIT, VICTIM_FILES, Scene, tree_digest

pytestmark = pytest.mark.anyio
TIMEOUT = 60
OTHER_COMMIT = "b" * 40


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def server(scene: Scene) -> Any:
    return build_server(ServerSettings.load(scene.env([scene.work]), p2p=False))


async def attacker_folder(client: Client, scene: Scene) -> str:
    return str((await call(client, "add_content", {"path": str(scene.evil_model)}))["cid"])


def assert_victim_loads_as_before(scene: Scene, commit: str = VICTIM_COMMIT) -> None:
    """``huggingface_hub`` offline finds the victim's own bytes by branch and by commit."""
    hub = str(scene.hub)
    for revision in (None, "main", commit):
        for name, data in VICTIM_FILES.items():
            found = try_to_load_from_cache(VICTIM, name, cache_dir=hub, revision=revision)
            assert isinstance(found, str) and Path(found).read_bytes() == data, (revision, name)
            got = hf_hub_download(VICTIM, name, cache_dir=hub, revision=revision,
                                  local_files_only=True)
            assert Path(got).read_bytes() == data, (revision, name)


def models_folders(scene: Scene) -> list[str]:
    return sorted(p.name for p in scene.hub.iterdir() if p.name.startswith("models--"))


@pytest.mark.parametrize("how", ["hf_revision", "@commit", "upper case", "abbreviated"])
async def test_a_ref_named_like_a_cached_commit_is_refused(scene: Scene, mode: str,
                                                           how: str) -> None:
    """Attack 3: ``refs/<commit>`` would shadow the cached snapshot of that commit."""
    named = {"hf_revision": {"into_hf_cache": VICTIM, "hf_revision": VICTIM_COMMIT},
             "@commit": {"into_hf_cache": f"{VICTIM}@{VICTIM_COMMIT}"},
             "upper case": {"into_hf_cache": VICTIM, "hf_revision": VICTIM_COMMIT.upper()},
             "abbreviated": {"into_hf_cache": VICTIM, "hf_revision": VICTIM_COMMIT[:7]}}[how]
    with anyio.fail_after(TIMEOUT):
        async with Client(server(scene), mode=mode) as client:
            folder = await attacker_folder(client, scene)
            before = tree_digest(scene.hub)
            text = await call_error(client, "fetch_cid", {"cid": folder, **named})
            assert "commit" in text and "branch or tag" in text, text
            text = await call_error(client, "fetch_cid", {"cid": folder, "replace": True,
                                                          **named})
            assert "commit" in text, text
            assert tree_digest(scene.hub) == before
    assert_victim_loads_as_before(scene)


async def test_a_commit_named_ref_is_refused_for_a_new_repo_and_leaves_no_folder(
        scene: Scene, mode: str) -> None:
    """No repo of that name yet: still refused, and no empty ``models--*`` is left."""
    with anyio.fail_after(TIMEOUT):
        async with Client(server(scene), mode=mode) as client:
            folder = await attacker_folder(client, scene)
            text = await call_error(client, "fetch_cid", {
                "cid": folder, "into_hf_cache": "acme/new", "hf_revision": OTHER_COMMIT})
            assert "commit" in text, text
    assert models_folders(scene) == ["models--victim--m"]


async def test_two_different_revisions_in_one_call_are_refused_before_asking(
        scene: Scene, mode: str) -> None:
    """Attack 4: ``victim/m@main`` and ``hf_revision="no-such-rev"``: the user was asked
    about ``no-such-rev`` (so not at all) while ``refs/main`` moved."""
    asked: list[str] = []
    elicit = scripted_answers(["decline"] * 4, asked)
    with anyio.fail_after(TIMEOUT):
        async with Client(server(scene), mode=mode, elicitation_callback=elicit) as client:
            folder = await attacker_folder(client, scene)
            before = tree_digest(scene.hub)
            text = await call_error(client, "fetch_cid", {
                "cid": folder, "into_hf_cache": f"{VICTIM}@main", "replace": True,
                "hf_revision": "no-such-rev"})
            assert "'main'" in text and "'no-such-rev'" in text, text
            assert asked == [] and tree_digest(scene.hub) == before
            # The revision named either way (or both ways, the same) is the one asked about.
            for named in ({"into_hf_cache": f"{VICTIM}@main"},
                          {"into_hf_cache": VICTIM, "hf_revision": "main"},
                          {"into_hf_cache": f"{VICTIM}@main", "hf_revision": "main"}):
                text = await call_error(client, "fetch_cid", {"cid": folder, "replace": True,
                                                              **named})
                assert "declin" in text, text
                assert f"{VICTIM}@main" in asked[-1] and VICTIM_COMMIT in asked[-1], asked
            assert len(asked) == 3 and tree_digest(scene.hub) == before
            assert (scene.victim / "refs" / "main").read_text() == VICTIM_COMMIT
    assert_victim_loads_as_before(scene)


def accepting_while_the_ref_moves(scene: Scene, asked: list[str]
                                  ) -> ElicitationFnT:
    """The user accepts; while the first question was open, another program (a download by
    huggingface_hub) moved ``refs/main`` to another commit."""

    async def elicit(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        if len(asked) == 1:
            (scene.victim / "refs" / "main").write_text(OTHER_COMMIT)
        return ElicitResult(action="accept", content={"confirm": True})

    return elicit


async def test_a_ref_moves_only_from_the_commit_the_user_was_shown(scene: Scene,
                                                                   mode: str) -> None:
    """The user agreed to move ``main`` from the commit the question named, not from the
    one it points to by the time the write comes. Over the legacy transport the answer
    comes mid-call and the write refuses; over the retried one (input_required) the call
    is planned again when it resumes, so the question changed and is asked again, about
    the commit ``main`` names now."""
    asked: list[str] = []
    with anyio.fail_after(TIMEOUT):
        async with Client(server(scene), mode=mode,
                          elicitation_callback=accepting_while_the_ref_moves(scene, asked)
                          ) as client:
            folder = await attacker_folder(client, scene)
            result = await client.call_tool("fetch_cid", {
                "cid": folder, "into_hf_cache": VICTIM, "replace": True})
    assert VICTIM_COMMIT in asked[0], asked
    if result.is_error:
        text = " ".join(getattr(c, "text", "") for c in result.content)
        assert VICTIM_COMMIT in text and OTHER_COMMIT in text, text
        assert (scene.victim / "refs" / "main").read_text() == OTHER_COMMIT
    else:
        assert result.structured_content is not None
        assert result.structured_content["replaced"] == OTHER_COMMIT
        assert len(asked) == 2 and OTHER_COMMIT in asked[1], asked
    assert (mode == "legacy") == result.is_error
    found = try_to_load_from_cache(VICTIM, "config.json", cache_dir=str(scene.hub),
                                   revision=VICTIM_COMMIT)
    assert isinstance(found, str) and Path(found).read_bytes() == VICTIM_FILES["config.json"]


def unsafe_folder(scene: Scene, names: list[str]) -> str:
    """A folder DAG (as a hostile provider would serve it) whose entries are ``names``, all
    naming one small file, put into the node's repo before the server starts."""
    backend = HFCacheBackend(Repo(scene.repo, fsync=False), hub_cache=scene.hub)
    file_cid = backend.add_bytes(b"attacker bytes")
    links = [encode_link(bytes(parse_cid(file_cid)), name, 14) for name in names]
    block = encode_node(links, unixfs.DIRECTORY_DATA)
    folder = cid_of_block(block, version=1, codec="dag-pb")
    backend.repo.blocks.put(folder, block)
    return cid_str(folder)


@pytest.mark.parametrize("names", [["a", ".."], ["a/b"], ["a", "a"]])
async def test_a_refused_folder_leaves_no_models_folder(scene: Scene, names: list[str]
                                                        ) -> None:
    """Item 11: a refused ``into_hf_cache`` left ``models--acme--new/{blobs,refs,snapshots}``
    behind, empty. Unsafe and repeated names are refused before anything is made."""
    folder = unsafe_folder(scene, names)
    with anyio.fail_after(TIMEOUT):
        async with Client(server(scene)) as client:
            text = await call_error(client, "fetch_cid", {"cid": folder,
                                                          "into_hf_cache": "acme/new"})
            assert "unsafe" in text or "twice" in text, text
    assert models_folders(scene) == ["models--victim--m"]
