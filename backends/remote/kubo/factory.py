"""Which Kubo transport to use: the RPC client when ``IPFS_API`` is set, else the CLI."""

from __future__ import annotations

from ipfs_mcp.backends.remote.kubo.cli import KuboCLIBackend
from ipfs_mcp.backends.remote.kubo.rpc import KuboRPCBackend
from ipfs_mcp.backends.settings import BackendSettings


def make_kubo_backend(settings: BackendSettings) -> object:
    """The Kubo backend the settings ask for: RPC when ``IPFS_API`` is set, else the CLI.

    Raises:
        BackendUnavailable: the daemon does not answer, or the CLI is missing (with a hint).
    """
    if settings.ipfs_api:
        return KuboRPCBackend.connect(settings.ipfs_api,
                                      authorization=settings.ipfs_api_authorization,
                                      timeout=settings.ipfs_api_timeout)
    return KuboCLIBackend.connect(settings.kubo_cmd, timeout=settings.ipfs_api_timeout)
