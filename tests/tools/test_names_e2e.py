"""End to end with our node's NameSystem: two servers, each with its own repo and a real
libp2p node on 127.0.0.1. One publishes the latest version of a model under its IPNS name;
the other resolves that name through the DHT and reads the model by it."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest
from mcp import Client

from ipfs_mcp.server.app import build_server
from ipfs_mcp.server.config import ServerSettings
from tests.elicitation import scripted_answers

pytestmark = pytest.mark.anyio
TIMEOUT = 90


def _settings(home: Path, root: Path) -> ServerSettings:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_CACHE", "IPFS_MCP_P2P")}
    env["HF_HOME"] = str(home)
    return ServerSettings.load(env, allow_roots=[str(root)], role="worker")


def _ok(result: object) -> dict:
    assert not result.is_error, result.content  # type: ignore[attr-defined]
    return result.structured_content  # type: ignore[attr-defined]


async def test_publish_the_latest_model_on_one_node_and_read_it_by_name_on_another(
        tmp_path: Path) -> None:
    model = tmp_path / "share" / "tiny-model"
    model.mkdir(parents=True)
    (model / "config.json").write_text('{"version": 1}\n')
    asked: list[str] = []
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(_settings(tmp_path / "a", tmp_path / "share")),
                          elicitation_callback=scripted_answers([], asked)) as a, \
                Client(build_server(_settings(tmp_path / "b", tmp_path / "share"))) as b:
            a_addr = _ok(await a.call_tool("peer_stats", {}))["network"]["listen_addrs"][0]
            _ok(await b.call_tool("connect_peer", {"multiaddr": a_addr}))

            v1 = _ok(await a.call_tool("store_model", {"source": str(model)}))["root_cid"]
            first = _ok(await a.call_tool("publish_name", {"value": v1}))
            (model / "config.json").write_text('{"version": 2}\n')
            v2 = _ok(await a.call_tool("store_model", {"source": str(model)}))["root_cid"]
            latest = _ok(await a.call_tool("publish_name", {"value": v2}))

            resolved = _ok(await b.call_tool("resolve_name",
                                             {"name": f"{latest['name']}/config.json"}))
            page = await b.read_resource(f"ipns://{latest['name'][6:]}/config.json")
    assert latest["name"] == first["name"] and latest["sequence"] == first["sequence"] + 1
    assert asked == []  # our own earlier record is not "newer": nothing to confirm
    assert resolved["path"] == f"/ipfs/{v2}/config.json"
    assert page.contents[0].text == '{"version": 2}\n'  # type: ignore[union-attr]


async def test_a_newer_record_from_another_machine_is_replaced_only_when_confirmed(
        tmp_path: Path) -> None:
    """One key on two nodes (copied, as a team shares it): B publishes first, so A's
    publish would replace a newer record than A ever published. A's client is asked; a
    decline changes nothing, a yes publishes past B's sequence."""
    from ipfs_mcp.p2p.identity import load_or_create_identity
    from ipfs_mcp.p2p.keys import KEYS_FOLDER, KeyStore

    repo_a, repo_b = tmp_path / "a" / "ipfs", tmp_path / "b" / "ipfs"
    for repo in (repo_a, repo_b):
        repo.mkdir(parents=True)
    shared = KeyStore(repo_a, load_or_create_identity(repo_a)).generate("team")
    (repo_b / KEYS_FOLDER).mkdir(mode=0o700)
    key_file = repo_a / KEYS_FOLDER / "team.key"
    (repo_b / KEYS_FOLDER / "team.key").write_bytes(key_file.read_bytes())
    ours, theirs = ("bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4",
                    "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")
    asked: list[str] = []
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(_settings(tmp_path / "a", tmp_path)),
                          elicitation_callback=scripted_answers(["decline", "accept"],
                                                                asked)) as a, \
                Client(build_server(_settings(tmp_path / "b", tmp_path))) as b:
            b_addr = _ok(await b.call_tool("peer_stats", {}))["network"]["listen_addrs"][0]
            _ok(await a.call_tool("connect_peer", {"multiaddr": b_addr}))
            by_b = _ok(await b.call_tool("publish_name", {"value": theirs, "key": "team"}))
            declined = await a.call_tool("publish_name", {"value": ours, "key": "team"})
            still = _ok(await a.call_tool("resolve_name", {"name": shared.ipns_name}))
            replaced = _ok(await a.call_tool("publish_name", {"value": ours, "key": "team"}))
            now = _ok(await b.call_tool("resolve_name", {"name": shared.ipns_name}))
    assert by_b["name"] == shared.ipns_name
    said = " ".join(getattr(c, "text", "") for c in declined.content)
    assert declined.is_error and "declined" in said and "nothing was changed" in said
    assert still["path"] == f"/ipfs/{theirs}"
    assert len(asked) == 2 and theirs in asked[0]
    assert replaced["sequence"] > by_b["sequence"]
    assert replaced["replaced_sequence"] == by_b["sequence"]
    assert now["path"] == f"/ipfs/{ours}"
