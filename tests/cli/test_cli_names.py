"""``ipfs-mcp key`` and ``ipfs-mcp name``: keys in the repo, DNSLink from a DNS server on
127.0.0.1, and a name published by one node resolved by the CLI's own node through it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client

from ipfs_mcp.server import cli
from ipfs_mcp.server.app import build_server
from ipfs_mcp.server.config import ServerSettings
from tests.retrieval.dns_server import DnsZone, dns_server

CID = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"


def test_keys_are_made_listed_and_never_replaced(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["key", "gen", "bert", "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert cli.main(["key", "gen", "bert"]) == 1
    refused = capsys.readouterr()
    assert cli.main(["key", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["keys"]
    assert made["name"] == "bert" and made["ipns_name"].startswith("/ipns/k51")
    assert "exists" in refused.err and len(refused.err.strip().splitlines()) == 1
    assert {k["name"] for k in listed} == {"self", "bert"}
    assert made in listed


def test_a_dnslink_domain_resolves_without_a_node(capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    zone = DnsZone()
    zone.link("_dnslink.docs.example.org", f"dnslink=/ipfs/{CID}")
    with dns_server(zone) as address:
        monkeypatch.setenv("IPFS_MCP_DNS_RESOLVERS", f".={address}")
        assert cli.main(["name", "resolve", "docs.example.org/a/b"]) == 0
        plain = capsys.readouterr().out
        assert cli.main(["name", "resolve", "/ipns/docs.example.org", "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert cli.main(["name", "resolve", "none.example.org"]) == 1
        missing = capsys.readouterr().err
    assert plain.strip() == f"/ipfs/{CID}/a/b"
    assert data["cid"] == CID and data["steps"] == ["/ipns/docs.example.org"]
    assert missing.startswith("Error: ") and "no DNSLink" in missing


@pytest.mark.anyio
async def test_a_name_published_by_one_node_resolves_in_the_cli_through_it(
        tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_CACHE", "IPFS_MCP_P2P")}
    settings = ServerSettings.load({**env, "HF_HOME": str(tmp_path / "a")},
                                   allow_roots=[str(tmp_path)], role="worker")
    with anyio.fail_after(90):
        async with Client(build_server(settings)) as a:
            addr = (await a.call_tool("peer_stats", {})).structured_content[
                "network"]["listen_addrs"][0]
            published = (await a.call_tool("publish_name", {"value": CID})).structured_content
            done = await anyio.run_process(
                [sys.executable, "-m", "ipfs_mcp.server.cli", "name", "resolve",
                 f"{published['name']}/x", "--peer", addr, "--json"],
                env={**env, "HF_HOME": str(tmp_path / "b")}, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout)["path"] == f"/ipfs/{CID}/x"
