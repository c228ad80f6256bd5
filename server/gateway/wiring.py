"""The gateway ``ipfs-mcp serve --gateway`` runs, assembled from the server settings.

This is the one place that picks the gateway's block sources: the embedded repo's blocks
(verified on every read), chosen through the same Router the tools use, and, only with
``--gateway-recursive``, the configured trustless gateways and delegated routers as a
fetching source (bounded per request by the gateway's limits). Peer fetches for anonymous
HTTP clients are not offered.
"""

from __future__ import annotations

import sys

import anyio
import trio
from multiformats import CID

from ipfs_mcp.backends.blockstore import Blockstore
from ipfs_mcp.backends.delegated_routing import DelegatedRouting, DelegatedSource
from ipfs_mcp.backends.errors import BlockNotFound, Unsupported
from ipfs_mcp.backends.router import Router
from ipfs_mcp.backends.sources import NamedSource, RetrievalSources
from ipfs_mcp.backends.trustless_gateway import TrustlessGateways

from ..config import ServerSettings
from .app import Gateway
from .serve import serve_gateway
from .source import BlockstoreSource


class FetchingSource:
    """The recursive gateway's second source: what is not here is fetched from the
    configured trustless gateways and delegated routers' providers (each block verified
    and stored in the repo), then read back from the repo."""

    def __init__(self, blocks: Blockstore, sources: RetrievalSources) -> None:
        self.blocks = blocks
        self.sources = sources

    def get_block(self, cid: CID) -> bytes:
        try:
            return self.blocks.get(cid)
        except BlockNotFound:
            self.sources.fetch_block(cid)
            return self.blocks.get(cid)


def gateway_from_settings(settings: ServerSettings) -> Gateway:
    """The gateway over the embedded repo, through the same Router the tools use.

    Raises:
        Unsupported: the backend is not the embedded repo (its node has a gateway of its
            own), or ``--gateway-recursive`` with nothing to fetch from.
    """
    router = Router.from_settings(settings.backend)
    repo = router.repo
    if repo is None:
        raise Unsupported(router.name, "--gateway", "its own node serves a gateway (Kubo's "
                                                    "Addresses.Gateway); use that one")
    remote = None
    if settings.gateway_recursive:
        sources = RetrievalSources()
        if settings.trustless_gateways:
            sources.add(NamedSource("trustless-gateway", TrustlessGateways(
                settings.trustless_gateways, repo.blocks,
                timeout=settings.backend.ipfs_api_timeout)))
        if settings.delegated_routers:
            sources.add(NamedSource("delegated-routing", DelegatedSource(
                DelegatedRouting(settings.delegated_routers), repo.blocks,
                timeout=settings.backend.ipfs_api_timeout)))
        if not sources.sources:
            raise Unsupported("gateway", "--gateway-recursive without a source",
                              "give --trustless-gateway or --delegated-router to fetch from")
        remote = FetchingSource(repo.blocks, sources)
    return Gateway(BlockstoreSource(repo.blocks), remote=remote)


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
