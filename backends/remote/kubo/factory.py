"""Which Kubo transport to use: the RPC API when ``IPFS_API`` is set, else the CLI."""

from __future__ import annotations

from ipfs_mcp.backends.remote.kubo.backend import KuboBackend
from ipfs_mcp.backends.settings import BackendSettings


def make_kubo_backend(settings: BackendSettings) -> KuboBackend:
    """The Kubo backend the settings ask for: over HTTP when ``IPFS_API`` is set, else
    through the CLI named by ``KUBO_CMD``.

    Raises:
        BackendUnavailable: the daemon does not answer, or the CLI is missing (with a hint).
    """
    if settings.ipfs_api:
        return KuboBackend.over_http(settings.ipfs_api,
                                     authorization=settings.ipfs_api_authorization,
                                     timeout=settings.ipfs_api_timeout)
    return KuboBackend.over_cli(settings.kubo_cmd, timeout=settings.ipfs_api_timeout)
