"""Each package's public surface, locked: adding, removing or renaming a public name is a change
to make on purpose, here as well as in the code.

A package's public names are its ``__all__`` when it declares one (the names it promises), else
its public modules and sub-packages (those whose names do not start with ``_``): the packages
without an ``__all__`` are imported module by module, so the modules are what they export.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import pytest

EXPORTED: dict[str, set[str]] = {
    "ipfs_mcp.backends": {
        "backend", "cancel", "core", "errors", "fetcher", "hf_cache", "http_answers", "hub",
        # the seed API under the name the replaced router's guide imports
        "ipfs_backend_router", "names", "network", "remote", "repo", "retrieval", "router",
        "settings",
    },
    "ipfs_mcp.backends.core": {
        "car", "cbor", "chunkers", "cids", "dag", "dagjson", "dagpb", "exporter", "hamt", "importer",
        "ip_scope", "ipns", "ipns_store", "limits", "protobuf", "reputation", "rooted", "trickle", "unixfs", "varint",
    },
    "ipfs_mcp.backends.repo": {
        "atomic", "blockstore", "eviction", "filestore", "memory_tier", "pins", "placement",
        "prefetch", "receiver", "repository",
    },
    "ipfs_mcp.backends.retrieval": {
        "address_scope", "car_stream", "delegated_routing", "dnslink", "sources",
        "trustless_gateway",
    },
    "ipfs_mcp.backends.hub": {"layout", "models", "receive"},
    "ipfs_mcp.backends.remote": {"cluster", "ipfs_kit", "kubo"},
    "ipfs_mcp.backends.remote.kubo": {
        "backend", "cli_transport", "factory", "http_transport", "names", "network",
        "transport", "upload", "verified",
    },
    "ipfs_mcp.p2p": {
        "Bitswap", "BitswapConfig", "ContentRouting", "FetchReport", "KadContentRouting",
        "Ledger", "NodeConfig", "NodeFetcher", "NodeStats", "P2PNode", "PeerStat",
        "ProviderInfo", "ProviderReputation", "ROLE_PROFILES", "Role", "RoleProfile", "Session",
        "build_host", "load_or_create_identity", "open_node",
    },
    # Circuit Relay v2 both sides, and hole punching over what it relays.
    "ipfs_mcp.p2p.relay": {
        "accounting", "circuit_dial", "client", "holepunch", "limits", "service", "wire",
    },
    "ipfs_mcp.tools": {
        "content", "health", "import_options", "listings", "models", "names", "network",
        "paging", "progress", "pubsub", "roots",
    },
    "ipfs_mcp.server": {
        "app", "cli", "cli_errors", "cli_fetch", "cli_names", "cli_output", "cli_progress",
        "cli_pubsub", "config",
        "daemon", "daemon_file", "gateway", "http",
        "hypercorn_worker", "logs", "metrics",
        "node_names", "node_network", "prompts", "serve", "state", "stdio", "tool_args",
        "answers", "tool_list", "version",
    },
}


def public_names(package: ModuleType) -> set[str]:
    """The package's ``__all__`` if it has one, else its public modules and sub-packages."""
    declared = getattr(package, "__all__", None)
    if declared is not None:
        return set(declared)
    return {info.name for info in pkgutil.iter_modules(package.__path__)
            if not info.name.startswith("_")}


@pytest.mark.parametrize("name", sorted(EXPORTED))
def test_exported_members(name: str) -> None:
    package = importlib.import_module(name)
    found = public_names(package)
    assert found == EXPORTED[name], (
        f"{name}: new {sorted(found - EXPORTED[name])}, gone {sorted(EXPORTED[name] - found)}; "
        "if that is meant, say so in EXPORTED")


@pytest.mark.parametrize("name", sorted(EXPORTED))
def test_every_exported_name_resolves(name: str) -> None:
    """An ``__all__`` entry with nothing behind it, or a public module that fails to import,
    is caught here rather than by its first caller."""
    package = importlib.import_module(name)
    for member in sorted(public_names(package)):
        if hasattr(package, "__all__"):
            assert hasattr(package, member), f"{name}.__all__ names {member}, which is not there"
        else:
            importlib.import_module(f"{name}.{member}")
