"""The gateway ``ipfs-mcp serve --gateway`` runs, assembled from the server settings.

This is the one place that picks the gateway's block sources. It reads through the
server's one Router (:class:`~.source.BlockReads`: the Router, or the server's slot that
holds the lifespan's Router once it is built), from the selected backend alone, whatever
it is (the embedded repo, Kubo), each block verified against its CID before it is served.
By default only what the backend holds is served; only with ``--gateway-recursive`` may a
miss ask the configured trustless gateways and delegated routers' providers (bounded per
request by the gateway's limits, and in all by :class:`~.store_budget.StoreBudget`). Peer
fetches for anonymous HTTP clients are not offered.

Its serving bounds are the settings' (:class:`~..config.ServingLimits`): slots per client
address, and the time a client may read nothing before its response is dropped.

Its ``/routing/v1`` answers from our node (:class:`~.node_routing.NodeProviders`): the node
is handed in as the server's node slot, since it starts later, inside the MCP lifespan;
our own record names the gateway's bound addresses.
"""

from __future__ import annotations

import sys
from typing import Protocol

import anyio
import anyio.to_thread
import trio
from multiformats import CID

from ipfs_mcp.backends.errors import BlockNotFound, Unsupported

from ..config import ServerSettings
from ..state import GATEWAY_SOURCES
from .app import Gateway, GatewayLimits
from .node_routing import NodeHolder, NodeProviders, repo_peer_id
from .serve import serve_gateway
from .source import BlockReads, ProviderLookup, RouterSource
from .store_budget import StoreBudget


class ServerSlot(NodeHolder, BlockReads, Protocol):
    """The server's slot (``server.state.NodeSlot``): our node and the lifespan's Router,
    each as it becomes available."""


class FetchingSource:
    """The recursive gateway's second source: what is not here is fetched through the
    Router from the configured trustless gateways and delegated routers' providers (each
    block verified and stored in the repo); all it stores is bounded by ``budget``."""

    def __init__(self, reads: BlockReads, budget: StoreBudget) -> None:
        self.here = RouterSource(reads)
        self.fetching = RouterSource(reads, GATEWAY_SOURCES)
        self.budget = budget

    def get_block(self, cid: CID) -> bytes:
        try:
            return self.here.get_block(cid)
        except BlockNotFound:
            self.budget.check()
            data = self.fetching.get_block(cid)
            self.budget.charge(len(data))
            return data


def gateway_from_settings(settings: ServerSettings, reads: BlockReads, *,
                          providers: ProviderLookup | None = None) -> Gateway:
    """The gateway over the server's Router (``reads``); ``providers`` answers its
    ``/routing/v1`` (None: 501).

    Raises:
        Unsupported: ``--gateway-recursive`` with nothing to fetch from.
    """
    remote = None
    if settings.gateway_recursive:
        if not settings.trustless_gateways and not settings.delegated_routers:
            raise Unsupported("gateway", "--gateway-recursive without a source",
                              "give --trustless-gateway or --delegated-router to fetch from")
        remote = FetchingSource(reads, StoreBudget(settings.backend.repo_path,
                                                   settings.gateway_max_store))
    # One client address holds at most --gateway-max-per-client of the gateway's slots.
    limits = GatewayLimits(max_per_client=settings.serving.gateway_per_client)
    return Gateway(RouterSource(reads), remote=remote, providers=providers, limits=limits)


async def start_gateway(tg: anyio.abc.TaskGroup, settings: ServerSettings,
                        slot: ServerSlot) -> list[str]:
    """Start the gateway in ``tg``, reading through the Router and answering its
    ``/routing/v1`` from the node that the lifespan publishes in ``slot``; prints and
    returns its URLs (port 0 resolved).

    Raises:
        Unsupported: as :func:`gateway_from_settings`.
        IpfsMcpError: the repo's node identity cannot be read.
    """
    assert settings.gateway is not None
    # Read (or created) before the node starts, so both use the one identity.
    peer_id = await anyio.to_thread.run_sync(repo_peer_id, settings.backend.repo_path)
    providers = NodeProviders(slot, RouterSource(slot), peer_id)
    gateway = gateway_from_settings(settings, slot, providers=providers)
    host, port = settings.gateway

    async def run(*, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        await serve_gateway(gateway, host, port, log_level=settings.log_level,
                            tls=settings.gateway_tls, write_timeout=settings.serving.send_idle,
                            task_status=task_status)

    urls: list[str] = await tg.start(run)
    providers.serve_at(urls)
    for url in urls:
        # A machine-readable line, so scripts (and tests) can find a port-0 bind.
        print(f"ipfs-mcp: serving gateway at {url}/ipfs/", file=sys.stderr, flush=True)
    return urls
