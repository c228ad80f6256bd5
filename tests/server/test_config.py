"""Settings: read once from the environment and the command line, validated, frozen."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from ipfs_mcp.backends.errors import InvalidInput
from ipfs_mcp.server.config import ServerSettings, is_loopback, parse_host_port
from ipfs_mcp.server.http import transport_security


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:8000", ("127.0.0.1", 8000)), (":9000", ("127.0.0.1", 9000)),
    ("[::1]:8000", ("::1", 8000)), ("localhost:0", ("localhost", 0)),
    ("0.0.0.0:80", ("0.0.0.0", 80))])
def test_host_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(text) == expected


@pytest.mark.parametrize("bad", ["8000", "host", "1.2.3.4:99999", "[::1]", "a:b"])
def test_bad_host_port(bad: str) -> None:
    with pytest.raises(InvalidInput, match="HOST:PORT|port"):
        parse_host_port(bad)


def test_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1")
    assert not is_loopback("example.com")


def test_environment_and_arguments(tmp_path: Path) -> None:
    env = {"HF_HOME": str(tmp_path / "hf"), "IPFS_MCP_HTTP": "127.0.0.1:8123",
           "IPFS_MCP_ALLOW_ROOTS": os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")]),
           "IPFS_MCP_LISTEN": "/ip4/0.0.0.0/tcp/4001, /ip4/0.0.0.0/tcp/4002",
           "IPFS_MCP_BOOTSTRAP": "/ip4/10.0.0.1/tcp/4001/p2p/12D3KooWA",
           "IPFS_MCP_ROLE": "Leecher", "IPFS_MCP_INLINE_MAX": "1000", "IPFS_MCP_P2P": "0",
           "IPFS_MCP_LOG_LEVEL": "debug", "IPFS_MCP_ALLOWED_HOSTS": "box.lan,box"}
    settings = ServerSettings.load(env)
    assert settings.http == ("127.0.0.1", 8123)
    assert settings.allow_roots == (tmp_path / "a", tmp_path / "b")
    assert settings.listen == ("/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/tcp/4002")
    assert settings.bootstrap == ("/ip4/10.0.0.1/tcp/4001/p2p/12D3KooWA",)
    assert settings.role == "leecher" and settings.inline_max == 1000
    assert not settings.start_p2p and settings.log_level == "DEBUG"
    assert settings.backend.hf_home == tmp_path / "hf"
    assert settings.token is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.role = "master"  # type: ignore[misc]
    # The command line replaces the environment's value, lists included.
    cli = ServerSettings.load(env, http="127.0.0.1:9", allow_roots=[str(tmp_path)],
                              role="master", listen=["/ip4/127.0.0.1/tcp/0"], p2p=True)
    assert cli.http == ("127.0.0.1", 9) and cli.allow_roots == (tmp_path,)
    assert cli.role == "master" and cli.listen == ("/ip4/127.0.0.1/tcp/0",) and cli.start_p2p
    security = transport_security(settings)
    assert "box.lan:*" in security.allowed_hosts and "127.0.0.1:*" in security.allowed_hosts
    assert "http://box.lan:*" in security.allowed_origins


@pytest.mark.parametrize(("env", "match"), [
    ({"IPFS_MCP_ROLE": "boss"}, "role"), ({"IPFS_MCP_INLINE_MAX": "lots"}, "whole number"),
    ({"IPFS_MCP_MAX_BODY": "-5"}, "positive"), ({"IPFS_MCP_LOG_LEVEL": "loud"}, "log level"),
    ({"IPFS_MCP_HTTP": "10.1.2.3:80"}, "IPFS_MCP_TOKEN")])
def test_bad_settings(env: dict[str, str], match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        ServerSettings.load(env)


def test_wildcard_bind_accepts_only_named_hosts() -> None:
    settings = ServerSettings.load({"IPFS_MCP_TOKEN": "t"}, http="0.0.0.0:8000")
    security = transport_security(settings)
    assert "0.0.0.0:*" not in security.allowed_hosts
    assert security.enable_dns_rebinding_protection
