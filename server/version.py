"""The installed distribution's version, read from its package metadata (not a copy of it):
for `--version`, the MCP server's name and the gateway's pages."""

from __future__ import annotations

from importlib import metadata


def installed_version() -> str:
    try:
        return metadata.version("ipfs-mcp")
    except metadata.PackageNotFoundError:
        return "0+unknown"
