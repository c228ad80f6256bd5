"""resolve_name, publish_name and the ipns:// resources through an MCP client, with DNSLink
answered by a DNS server on 127.0.0.1 (the server is configured with it as Kubo's
DNS.Resolvers would be)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from ipfs_mcp.server.app import build_server
from ipfs_mcp.server.config import ServerSettings
from tests.retrieval import dns_server
from tests.retrieval.dns_server import DnsZone

pytestmark = pytest.mark.anyio
dns_zone = dns_server.dns_zone  # the fixture, used by name
TIMEOUT = 30


def _settings(work: Path, address: str) -> ServerSettings:
    return ServerSettings.load({"IPFS_MCP_DNS_RESOLVERS": f".={address}"},
                               allow_roots=[str(work)], p2p=False)


async def _call(client: Client, tool: str, args: dict[str, Any]) -> Any:
    return await client.call_tool(tool, args)


async def test_a_dnslink_domain_resolves_and_reads_as_an_ipns_resource(
        work: Path, dns_zone: tuple[DnsZone, str]) -> None:
    served, address = dns_zone
    (work / "site").mkdir()
    (work / "site" / "index.txt").write_text("latest weights are here\n")
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(_settings(work, address))) as client:
            added = await _call(client, "add_content", {"path": str(work / "site")})
            root = added.structured_content["cid"]
            served.link("_dnslink.models.example.org", f"dnslink=/ipfs/{root}")
            resolved = await _call(client, "resolve_name",
                                   {"name": "/ipns/models.example.org/index.txt"})
            page = await client.read_resource("ipns://models.example.org/index.txt")
    assert not resolved.is_error
    assert resolved.structured_content["path"] == f"/ipfs/{root}/index.txt"
    assert resolved.structured_content["cid"] == root
    assert resolved.content[0].text == f"/ipns/models.example.org/index.txt is /ipfs/{root}/index.txt."
    assert page.contents[0].text == "latest weights are here\n"  # type: ignore[union-attr]


async def test_an_unknown_domain_is_a_clear_error_result(
        work: Path, dns_zone: tuple[DnsZone, str]) -> None:
    _, address = dns_zone
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(_settings(work, address))) as client:
            missing = await _call(client, "resolve_name", {"name": "nothing.example.org"})
    assert missing.is_error
    assert "has no DNSLink" in missing.content[0].text


async def test_publishing_without_a_name_system_says_why_and_publishes_nothing(
        work: Path, dns_zone: tuple[DnsZone, str]) -> None:
    _, address = dns_zone
    cid = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(_settings(work, address))) as client:
            refused = await _call(client, "publish_name", {"value": cid})
    assert refused.is_error
    assert "IPNS names" in refused.content[0].text
