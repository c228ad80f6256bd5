"""The gateway ``ipfs-mcp serve --gateway`` runs, assembled from the server settings.

This is the one place that picks the gateway's block sources. Until the Router hands the
gateway an adapter of its own, it serves the embedded repo's blocks (verified on every
read) and refuses ``--gateway-recursive`` rather than pretending to fetch.
"""

from __future__ import annotations

import sys

import anyio
import trio

from ipfs_mcp.backends.errors import Unsupported
from ipfs_mcp.backends.repo import Repo

from ..config import ServerSettings
from .app import Gateway
from .serve import serve_gateway
from .source import BlockstoreSource


def gateway_from_settings(settings: ServerSettings) -> Gateway:
    """Raises: Unsupported: ``--gateway-recursive`` (no fetching source is wired yet)."""
    if settings.gateway_recursive:
        raise Unsupported("gateway", "--gateway-recursive",
                          "the gateway serves local blocks only for now; drop the option")
    repo = Repo(settings.backend.repo_path)
    return Gateway(BlockstoreSource(repo.blocks))


async def start_gateway(tg: anyio.abc.TaskGroup, settings: ServerSettings) -> list[str]:
    """Start the gateway in ``tg``; prints and returns its URLs (port 0 resolved)."""
    assert settings.gateway is not None
    gateway = gateway_from_settings(settings)
    host, port = settings.gateway

    async def run(*, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        await serve_gateway(gateway, host, port, log_level=settings.log_level,
                            task_status=task_status)

    urls: list[str] = await tg.start(run)
    for url in urls:
        # A machine-readable line, so scripts (and tests) can find a port-0 bind.
        print(f"ipfs-mcp: serving gateway at {url}/ipfs/", file=sys.stderr, flush=True)
    return urls
