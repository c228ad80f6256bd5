"""The gateway ``ipfs-mcp serve --gateway`` runs, assembled from the server settings.

This is the one place that picks the gateway's block sources: the embedded repo's blocks
(verified on every read), chosen through the same Router the tools use, and, only with
``--gateway-recursive``, the configured trustless gateways and delegated routers as a
fetching source (bounded per request by the gateway's limits). Peer fetches for anonymous
HTTP clients are not offered.

Its ``/routing/v1`` answers from our node (:class:`~.node_routing.NodeProviders`): the node
is handed in as the server's node slot, since it starts later, inside the MCP lifespan;
our own record names the gateway's bound addresses.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import anyio.to_thread
import trio
from multiformats import CID

from ipfs_mcp.backends.errors import BlockNotFound, Unsupported
from ipfs_mcp.backends.repo.blockstore import Blockstore
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.backends.retrieval.delegated_routing import DelegatedRouting, DelegatedSource
from ipfs_mcp.backends.retrieval.sources import NamedSource, RetrievalSources
from ipfs_mcp.backends.retrieval.trustless_gateway import TrustlessGateways
from ipfs_mcp.backends.router import Router

from ..config import ServerSettings
from .app import Gateway
from .node_routing import NodeHolder, NodeProviders, repo_peer_id
from .serve import serve_gateway
from .source import BlockstoreSource, ProviderLookup
from .store_budget import StoreBudget


class FetchingSource:
    """The recursive gateway's second source: what is not here is fetched from the
    configured trustless gateways and delegated routers' providers (each block verified
    and stored in the repo), then read back from the repo; all it stores is bounded by
    ``budget``."""

    def __init__(self, blocks: Blockstore, sources: RetrievalSources,
                 budget: StoreBudget) -> None:
        self.blocks = blocks
        self.sources = sources
        self.budget = budget

    def get_block(self, cid: CID) -> bytes:
        try:
            return self.blocks.get(cid)
        except BlockNotFound:
            self.budget.check()
            data = self.sources.fetch_block(cid)
            self.budget.charge(len(data))
            return self.blocks.get(cid)


def embedded_repo(settings: ServerSettings) -> Repo:
    """The embedded repo the gateway serves, chosen as the tools' Router chooses.

    Raises:
        Unsupported: the backend is not the embedded repo (its node has a gateway of its
            own).
    """
    router = Router.from_settings(settings.backend)
    repo = router.repo
    if repo is None:
        raise Unsupported(router.name, "--gateway", "its own node serves a gateway (Kubo's "
                                                    "Addresses.Gateway); use that one")
    return repo


def gateway_from_settings(settings: ServerSettings, *, repo: Repo | None = None,
                          providers: ProviderLookup | None = None) -> Gateway:
    """The gateway over the embedded repo (``repo``, else :func:`embedded_repo`);
    ``providers`` answers its ``/routing/v1`` (None: 501).

    Raises:
        Unsupported: the backend is not the embedded repo, or ``--gateway-recursive``
            with nothing to fetch from.
    """
    repo = repo if repo is not None else embedded_repo(settings)
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
        remote = FetchingSource(repo.blocks, sources,
                                StoreBudget(Path(repo.path), settings.gateway_max_store))
    return Gateway(BlockstoreSource(repo.blocks), remote=remote, providers=providers)


async def start_gateway(tg: anyio.abc.TaskGroup, settings: ServerSettings,
                        node: NodeHolder) -> list[str]:
    """Start the gateway in ``tg``, its ``/routing/v1`` answering from ``node`` (the
    server's node slot) and the repo; prints and returns its URLs (port 0 resolved).

    Raises:
        Unsupported: as :func:`gateway_from_settings`.
        IpfsMcpError: the repo's node identity cannot be read.
    """
    assert settings.gateway is not None
    repo = embedded_repo(settings)
    # Read (or created) before the node starts, so both use the one identity.
    peer_id = await anyio.to_thread.run_sync(repo_peer_id, Path(repo.path))
    providers = NodeProviders(node, repo.blocks, peer_id)
    gateway = gateway_from_settings(settings, repo=repo, providers=providers)
    host, port = settings.gateway

    async def run(*, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        await serve_gateway(gateway, host, port, log_level=settings.log_level,
                            tls=settings.gateway_tls, task_status=task_status)

    urls: list[str] = await tg.start(run)
    providers.serve_at(urls)
    for url in urls:
        # A machine-readable line, so scripts (and tests) can find a port-0 bind.
        print(f"ipfs-mcp: serving gateway at {url}/ipfs/", file=sys.stderr, flush=True)
    return urls
