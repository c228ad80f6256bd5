"""Writes that escape through links, raced or not, through the SDK's in-memory client.

Attack 1 of the security issue is two calls of one agent: A asks to write ``work/o/esc/NAME``
while ``work/o`` does not exist (nothing to confirm), and its content comes from a
deliberately slow trustless gateway (here one that holds the block until the test releases
it, an event, not a clock); meanwhile B writes at ``work/o`` a folder whose links
``s -> .`` and ``esc -> s/s/…/../../<absolute path>`` lead anywhere. A then must not write
through ``esc``: nothing outside the roots is created or changed, neither the user's file
outside them nor the cached model in the protected hub cache.

Attack 2: links that lead out of the output folder (to an outside folder, the hub's
``blobs/``, the IPFS repo) are refused, saying which link and why, and nothing is written.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from multiformats import CID

from ipfs_mcp.backends.core.cids import cid_str, parse_cid
from ipfs_mcp.backends.core.importer import Importer
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.server.app import build_server
from ipfs_mcp.server.config import ServerSettings

from .mcp_calls import call, call_error
from .scene import VICTIM_COMMIT, Scene, tree_digest

pytestmark = pytest.mark.anyio
TIMEOUT = 60
HOLD = 30.0  # the slow gateway's longest hold: the test releases it long before
OUTSIDE_TEXT = b"a file outside every root\n"
ATTACKER = b"attacker weights " * 50


def _escape(via: str, to: Path, below: Path) -> str:
    """A link target that stays inside the output folder as text but, through ``via``
    (a link to "."), climbs from ``below`` to the root and on to ``to``."""
    depth = len(below.parts)
    return f"{via}/" * depth + "../" * depth + str(to).lstrip("/")


class SlowGateway:
    """A trustless gateway on 127.0.0.1 serving ``blocks`` honestly, except that it holds
    each request for a held CID until :meth:`release` (deliberately slow)."""

    def __init__(self, repo: Repo, held: set[str]) -> None:
        self.repo = repo
        self.held = held
        self.asked = threading.Event()  # a held CID was asked for
        self.released = threading.Event()

    def answer(self, path: str) -> tuple[int, dict[str, str], bytes]:
        cid = path.split("?")[0].removeprefix("/ipfs/")
        if cid in self.held:
            self.asked.set()
            self.released.wait(HOLD)
        try:
            block = self.repo.blocks.get(parse_cid(cid))
        except Exception:  # noqa: BLE001 - anything we do not hold is a 404
            return 404, {}, b"not here"
        return 200, {"Content-Type": "application/vnd.ipld.raw"}, block

    def release(self) -> None:
        self.released.set()


def _settings(scene: Scene, gateway: str) -> ServerSettings:
    return ServerSettings.load(scene.env([scene.work]), allow_roots=[str(scene.work)],
                               p2p=False, trustless_gateways=[gateway])


def _outside(scene: Scene) -> Path:
    outside = scene.home / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "existing.txt").write_bytes(OUTSIDE_TEXT)
    return outside


async def test_two_call_race_through_a_slow_gateway_writes_nothing_outside(
        scene: Scene, tmp_path: Path, http_server_of_own: Callable[..., str]) -> None:
    outside = _outside(scene)
    snapshot = scene.victim / "snapshots" / VICTIM_COMMIT
    elsewhere = Repo(tmp_path / "elsewhere", fsync=False)
    importer = Importer(elsewhere.blocks)
    payload = importer.add_bytes(ATTACKER).cid_obj
    below = scene.work / "o"
    links = importer.add_directory([
        ("s", importer.add_symlink(".")),
        ("esc", importer.add_symlink(_escape("s", snapshot, below))),
        ("out", importer.add_symlink(_escape("s", outside, below))),
    ]).cid_obj
    slow = SlowGateway(elsewhere, {cid_str(payload)})
    url = http_server_of_own(slow.answer)
    hub_before, outside_before = tree_digest(scene.hub), tree_digest(outside)
    results: dict[str, Any] = {}

    async def call_a(name: str, target: str) -> None:
        results[name] = await client.call_tool("fetch_cid", {
            "cid": cid_str(payload), "output_path": target, "overwrite": True})

    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(_settings(scene, url))) as client:
            async with anyio.create_task_group() as tg:
                tg.start_soon(call_a, "hub", str(below / "esc" / "model.safetensors"))
                tg.start_soon(call_a, "outside", str(below / "out" / "existing.txt"))
                # A is past its path check and waiting on the network.
                assert await anyio.to_thread.run_sync(slow.asked.wait, HOLD)
                b = await client.call_tool("fetch_cid", {"cid": cid_str(links),
                                                         "output_path": str(below)})
                slow.release()
            b_text = " ".join(getattr(c, "text", "") for c in b.content)
    assert tree_digest(scene.hub) == hub_before  # the cached model is as it was
    assert (outside / "existing.txt").read_bytes() == OUTSIDE_TEXT
    assert tree_digest(outside) == outside_before
    assert sorted(p.name for p in scene.home.iterdir()) == [".cache", "outside", "work"]
    assert b.is_error, b.structured_content
    assert "'esc'" in b_text or "'out'" in b_text, b_text
    # A wrote where its path said, inside the root, through real folders only.
    for name, where in (("hub", below / "esc" / "model.safetensors"),
                        ("outside", below / "out" / "existing.txt")):
        result = results[name]
        if not result.is_error:
            assert not any(p.is_symlink() for p in (below, where.parent, where))
            assert where.read_bytes() == ATTACKER


async def _served(scene: Scene, tmp_path: Path, http_server_of_own: Callable[..., str],
                  links: list[tuple[str, str]]) -> tuple[CID, str]:
    elsewhere = Repo(tmp_path / "elsewhere", fsync=False)
    importer = Importer(elsewhere.blocks)
    folder = importer.add_directory(
        [(name, importer.add_symlink(target)) for name, target in links]
        + [("README", importer.add_bytes(b"looks harmless\n"))]).cid_obj
    url = http_server_of_own(SlowGateway(elsewhere, set()).answer)
    return folder, url


@pytest.mark.parametrize("where", ["outside", "blobs", "repo"])
async def test_links_leading_out_of_the_output_folder_are_refused(
        scene: Scene, tmp_path: Path, http_server_of_own: Callable[..., str],
        where: str) -> None:
    below = scene.work / "got"
    scene.repo.mkdir(parents=True, exist_ok=True)
    destination = {"outside": _outside(scene), "blobs": scene.victim / "blobs",
                   "repo": scene.repo}[where]
    # "s -> ." then "t -> s/s/../../<name>": as text it stays inside, for real it climbs
    # two levels (got/, then work/) and lands in the home folder.
    up = os.path.relpath(destination, scene.home)
    links = [("s", "."), ("t", f"s/s/../../{up}"), ("u", _escape("s", destination, below))]
    folder, url = await _served(scene, tmp_path, http_server_of_own, links)
    hub_before = tree_digest(scene.hub)
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(_settings(scene, url))) as client:
            text = await call_error(client, "fetch_cid", {"cid": cid_str(folder),
                                                          "output_path": str(below)})
            assert "'t'" in text or "'u'" in text, text
            assert "link" in text, text
    assert tree_digest(scene.hub) == hub_before
    assert not os.path.lexists(below)


async def test_links_that_stay_inside_are_written(
        scene: Scene, tmp_path: Path, http_server_of_own: Callable[..., str]) -> None:
    links = [("same", "README"), ("here", "."), ("sub", "./README")]
    folder, url = await _served(scene, tmp_path, http_server_of_own, links)
    below = scene.work / "fine"
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(_settings(scene, url))) as client:
            await call(client, "fetch_cid", {"cid": cid_str(folder), "output_path": str(below)})
    assert os.readlink(below / "same") == "README"
    assert (below / "sub").read_bytes() == b"looks harmless\n"


async def test_a_folder_swapped_for_a_link_while_the_write_waits_is_not_followed(
        scene: Scene, tmp_path: Path, http_server_of_own: Callable[..., str]) -> None:
    """The handle alone, without the link rule: while A waits on the slow gateway, its
    checked folder ``work/o`` is moved away and a link to the cached model's snapshot put in
    its place (as another program could). A writes into the folder it checked, by handle,
    wherever that folder now is, and the hub cache is untouched."""
    snapshot = scene.victim / "snapshots" / VICTIM_COMMIT
    elsewhere = Repo(tmp_path / "elsewhere", fsync=False)
    payload = Importer(elsewhere.blocks).add_bytes(ATTACKER).cid_obj
    slow = SlowGateway(elsewhere, {cid_str(payload)})
    url = http_server_of_own(slow.answer)
    checked = scene.work / "o"
    checked.mkdir()
    hub_before = tree_digest(scene.hub)
    results: dict[str, Any] = {}

    async def call_a() -> None:
        results["a"] = await client.call_tool("fetch_cid", {
            "cid": cid_str(payload), "output_path": str(checked / "model.safetensors"),
            "overwrite": True})

    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(_settings(scene, url))) as client:
            async with anyio.create_task_group() as tg:
                tg.start_soon(call_a)
                assert await anyio.to_thread.run_sync(slow.asked.wait, HOLD)
                os.rename(checked, scene.work / "moved")
                os.symlink(snapshot, checked)
                slow.release()
    assert tree_digest(scene.hub) == hub_before
    assert not results["a"].is_error, results["a"].content
    assert (scene.work / "moved" / "model.safetensors").read_bytes() == ATTACKER
