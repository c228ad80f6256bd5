"""The smaller attacks of the security issue (item 11), through the SDK's in-memory client.

- a write whose ``output_path`` is an allowed root itself (empty, so nothing seemed to be
  replaced) turned the root into a file;
- a path refused because its links lead outside the roots (``/proc/self/cwd/...``, a link
  planted in a root) named where those links point;
- ``ls(limit=1)`` on a 35,000-entry (HAMT-sharded) folder still read every entry's block;
- a refused ``into_hf_cache`` left an empty ``models--*`` folder behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from multiformats import CID

from ipfs_mcp.backends.core import limits, unixfs
from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.core.dagpb import decode as decode_node
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.server.app import build_server
from ipfs_mcp.server.config import ServerSettings

from .mcp_calls import call, call_error
from .scene import ATTACKER_TEXT, VICTIM_COMMIT, Scene, tree_digest

pytestmark = pytest.mark.anyio
TIMEOUT = 60
HUGE_FOLDER = 35_000  # the folder of the issue: Kubo's HAMT threshold makes it sharded


def server(scene: Scene, allow: list[Path]) -> Any:
    return build_server(ServerSettings.load(scene.env(allow), p2p=False))


# -- 11a: an allowed root is never replaced by a write ----------------------------------------
@pytest.mark.parametrize("overwrite", [False, True])
async def test_an_empty_allowed_root_is_not_replaced_by_a_file(scene: Scene, tmp_path: Path,
                                                               overwrite: bool) -> None:
    empty_root = tmp_path / "empty-root"
    empty_root.mkdir()
    nested = scene.work / "inner"  # a root inside another root
    nested.mkdir()
    allow = [scene.work, empty_root, nested]
    with anyio.fail_after(TIMEOUT):
        async with Client(server(scene, allow)) as client:
            cid = (await call(client, "add_content", {"text": ATTACKER_TEXT}))["cid"]
            folder = (await call(client, "add_content", {"path": str(scene.evil_model)}))["cid"]
            for root in (empty_root, nested):
                for what in (cid, folder):
                    text = await call_error(client, "fetch_cid", {
                        "cid": what, "output_path": str(root), "overwrite": overwrite})
                    assert "allowed root itself" in text, text
                    assert root.is_dir() and not any(root.iterdir())
            # A folder that holds another root is not replaced either (it would remove it).
            (nested / "kept").write_text("mine")
            text = await call_error(client, "fetch_cid", {
                "cid": cid, "output_path": str(scene.work / "inner"), "overwrite": True})
            assert "allowed root itself" in text, text
            # Writing into a root stays fine.
            done = await call(client, "fetch_cid", {
                "cid": cid, "output_path": str(empty_root / "inside.txt"), "overwrite": overwrite})
            assert Path(done["output_path"]) == (empty_root / "inside.txt").resolve()
    assert (empty_root / "inside.txt").read_text() == ATTACKER_TEXT
    assert (nested / "kept").read_text() == "mine"


async def test_a_protected_folder_is_not_replaced_even_when_empty(scene: Scene) -> None:
    """The user allowed the home folder, which holds the HuggingFace home; an empty hub
    cache (a fresh install) and the repo are still never replaced as a whole."""
    for child in scene.hub.iterdir():
        if child.is_dir():
            for path in sorted(child.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                path.unlink() if path.is_symlink() or path.is_file() else path.rmdir()
            child.rmdir()
    assert not any(scene.hub.iterdir())
    with anyio.fail_after(TIMEOUT):
        async with Client(server(scene, [scene.home])) as client:
            cid = (await call(client, "add_content", {"text": ATTACKER_TEXT}))["cid"]
            for folder in (scene.hub, scene.repo):
                text = await call_error(client, "fetch_cid", {
                    "cid": cid, "output_path": str(folder), "overwrite": True})
                assert "protected folder" in text, text
                assert folder.is_dir()


# -- 11b: a refused path does not say where its links lead --------------------------------
async def test_refused_paths_do_not_show_where_their_links_lead(
        scene: Scene, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "secret-place-0xa11"  # outside every root
    (secret / "deeper").mkdir(parents=True)
    (secret / "deeper" / "data.txt").write_text("private")
    (scene.work / "peek").symlink_to(secret / "deeper")
    (scene.work / "peek-file").symlink_to(secret / "deeper" / "data.txt")
    (scene.work / "peek-dangling").symlink_to(secret / "deeper" / "new.txt")
    cwd = tmp_path / "cwd-of-the-server-0xb22"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # in-process server: /proc/self/cwd is this folder
    given = [str(scene.work / "peek" / "data.txt"), str(scene.work / "peek-file"),
             str(scene.work / "peek-dangling"), "/proc/self/cwd/x.txt",
             "/proc/self/cwd", "/proc/self/root" + str(secret / "deeper" / "data.txt")]
    with anyio.fail_after(TIMEOUT):
        async with Client(server(scene, [scene.work])) as client:
            cid = (await call(client, "add_content", {"text": ATTACKER_TEXT}))["cid"]
            for path in given:
                for tool, args in (("fetch_cid", {"cid": cid, "output_path": path,
                                                  "overwrite": True}),
                                   ("add_content", {"path": path})):
                    if tool == "add_content" and "dangling" in path:
                        continue  # nothing to read there
                    text = await call_error(client, tool, args)
                    shown = text.replace(path, "<given>")
                    assert "secret-place" not in shown and "cwd-of-the-server" not in shown, (
                        tool, path, text)
                    assert path in text and str(scene.work.resolve()) in text, text
                    assert "outside the" in text, text
    assert not (secret / "deeper" / "new.txt").exists()
    assert (secret / "deeper" / "data.txt").read_text() == "private"


# -- 11c: ls bounds its work by limit and offset -------------------------------------------
@pytest.fixture
def huge_folder(scene: Scene) -> CID:
    """A folder of HUGE_FOLDER entries, made by the importer (sharded past Kubo's threshold)
    in the repo the server opens."""
    backend = HFCacheBackend(Repo(scene.repo, fsync=False), hub_cache=scene.hub)
    importer = backend.importer()
    leaf = importer.add_bytes(b"one small file")
    root = importer.add_directory([(f"file-{i:05d}.txt", leaf) for i in range(HUGE_FOLDER)])
    cid = CID.decode(root.cid)
    assert backend.exporter().stat(cid).kind == "directory"
    assert len(backend.exporter().load(cid)) < 64 * 1024  # a HAMT root, not one flat block
    return cid


def shard_blocks(scene: Scene, root: CID) -> int:
    """How many HAMT shard blocks the folder has, counted from its raw blocks."""
    blocks = Repo(scene.repo, fsync=False).blocks
    seen: set[CID] = set()
    stack = [root]
    while stack:
        cid = stack.pop()
        if cid.codec.name != "dag-pb":
            continue
        node = decode_node(blocks.get(cid))
        if unixfs.decode(node.data or b"").type != unixfs.NodeType.HAMT_SHARD or cid in seen:
            continue
        seen.add(cid)
        stack.extend(link.cid for link in node.links)
    return len(seen)


@pytest.fixture
def block_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[CID]]:
    """Every block the embedded backend reads, counted by wrapping its block getter."""
    reads: list[CID] = []
    real_load = HFCacheBackend.load

    def counting(self: HFCacheBackend, cid: CID, **kwargs: Any) -> bytes:
        reads.append(cid)
        return real_load(self, cid, **kwargs)

    monkeypatch.setattr(HFCacheBackend, "load", counting)
    yield reads


async def test_ls_reads_only_the_blocks_its_page_needs(scene: Scene, huge_folder: CID,
                                                       block_reads: list[CID]) -> None:
    root = cid_str(huge_folder)
    with anyio.fail_after(TIMEOUT):
        async with Client(server(scene, [scene.work])) as client:
            block_reads.clear()
            one = await call(client, "ls", {"cid": root, "limit": 1})
            # The root, a shard or two on the way down, and the one entry's block (which
            # tells its kind and size), with the stat of the root: a handful, not 35,000.
            assert len(block_reads) <= 8, len(block_reads)
            assert len(one["entries"]) == 1 and one["truncated"] is True, one
            assert one["next_offset"] == 1, one

            block_reads.clear()
            page = await call(client, "ls", {"cid": root, "limit": 1000})  # the tool's most
            assert len(page["entries"]) == 1000 and page["truncated"] is True
            assert len(block_reads) <= 1000 + 300, len(block_reads)  # entries + shards

            block_reads.clear()
            second = await call(client, "ls", {"cid": root, "offset": 1, "limit": 2})
            assert [e["name"] for e in second["entries"]] == [
                e["name"] for e in page["entries"][1:3]]
            assert len(block_reads) <= 10, len(block_reads)

            # The last page: the walk reaches the end, so the total is known. Skipping
            # entries reads the shards that hold them, never the entries' own blocks.
            block_reads.clear()
            last = await call(client, "ls", {"cid": root, "offset": HUGE_FOLDER - 5,
                                             "limit": 100})
            assert len(last["entries"]) == 5 and last["truncated"] is False, last
            assert last["total"] == HUGE_FOLDER and last["next_offset"] is None
            assert len(block_reads) <= shard_blocks(scene, huge_folder) + 5 + 3, len(block_reads)

            # fetch_cid of a folder lists it inline with the same bound.
            block_reads.clear()
            listed = await call(client, "fetch_cid", {"cid": root})
            assert listed["delivery"] == "listing" and len(listed["entries"]) == 100
            assert len(block_reads) <= 1000 + 300, len(block_reads)


async def test_a_listing_without_a_limit_stops_at_the_cap_and_says_so(
        scene: Scene, huge_folder: CID, block_reads: list[CID],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The exporter's listing with no limit examines at most ``limits.MAX_LISTED_ENTRIES``
    (lowered here so the test stays small) and says the folder goes on."""
    monkeypatch.setattr(limits, "MAX_LISTED_ENTRIES", 50)
    backend = HFCacheBackend(Repo(scene.repo, fsync=False), hub_cache=scene.hub)
    block_reads.clear()
    listing = backend.exporter().listing(huge_folder)
    assert len(listing.entries) == 50 and listing.more and listing.total is None
    assert len(block_reads) <= 50 + 20, len(block_reads)  # the entries and shards on the way
    with anyio.fail_after(TIMEOUT):
        async with Client(server(scene, [scene.work])) as client:
            answer = await call(client, "ls", {"cid": cid_str(huge_folder), "limit": 500})
    assert len(answer["entries"]) == 50 and answer["truncated"] is True, answer
    assert answer["next_offset"] == 50


# -- 11d: a refused into_hf_cache leaves no folder behind ---------------------------------
async def test_refused_hub_writes_leave_no_folder(scene: Scene) -> None:
    """Refused for a commit-like revision (a new repo), and refused with TargetExists
    without ``replace`` (a repo that has only a ref so far): no folder is made."""
    partial = scene.hub / "models--acme--partial"
    (partial / "refs").mkdir(parents=True)
    (partial / "refs" / "main").write_text("c" * 40)
    with anyio.fail_after(TIMEOUT):
        async with Client(server(scene, [scene.work])) as client:
            folder = (await call(client, "add_content", {"path": str(scene.evil_model)}))["cid"]
            before = tree_digest(scene.hub)
            text = await call_error(client, "fetch_cid", {
                "cid": folder, "into_hf_cache": "acme/new", "hf_revision": VICTIM_COMMIT})
            assert "commit" in text, text
            text = await call_error(client, "fetch_cid", {
                "cid": folder, "into_hf_cache": "acme/new@" + "d" * 40})
            assert "commit" in text, text
            text = await call_error(client, "fetch_cid", {"cid": folder,
                                                          "into_hf_cache": "acme/partial"})
            assert "replace=true" in text, text
            assert tree_digest(scene.hub) == before
    assert sorted(os.listdir(scene.hub)) == ["models--acme--partial", "models--victim--m"]
    assert sorted(os.listdir(partial)) == ["refs"]
