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

A node that serves P2P serves its blocks the same way, read-only and never recursive, on
the hosts it listens on (:func:`serve_http_retrieval`, started by ``server.state.run_node``
before the node, which advertises the bound ``/http`` addresses): other nodes fetch whole
DAGs from it as CAR streams instead of over bitswap.

Its ``/routing/v1`` answers from our node (:class:`~.node_routing.NodeProviders`): the node
is handed in as the server's node slot, since it starts later, inside the MCP lifespan;
our own record names the gateway's bound addresses.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Protocol

import anyio
import anyio.to_thread
import trio
from multiformats import CID

from ipfs_mcp.backends.errors import BlockNotFound, Unsupported
from ipfs_mcp.tools.names import name_resolver

from ..config import ServerSettings
from ..node_names import SlotNames
from .app import Gateway, GatewayLimits
from .asgi import App
from .ipns_paths import NameLookup
from .node_routing import NodeHolder, NodeProviders, repo_peer_id
from .serve import serve_gateway
from .source import BlockGetter, BlockReads, BlockstoreSource, ProviderLookup, RouterSource
from .store_budget import StoreBudget

TRUSTLESS = "trustless-gateway"
# The delegated routers' providers as the recursive gateway asks them: their HTTP gateways
# only, never a peer dialled with our node.
PEERLESS_DELEGATED = "delegated-routing-http"
# The retrieval sources a recursive gateway's miss may ask (never our node's bitswap).
GATEWAY_SOURCES = (TRUSTLESS, PEERLESS_DELEGATED)


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
                          providers: ProviderLookup | None = None,
                          names: NameLookup | None = None) -> Gateway:
    """The gateway over the server's Router (``reads``); ``providers`` answers its
    ``/routing/v1`` (None: 501); ``names`` its ``/ipns/`` (default: DNSLink through the
    settings' resolvers).

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
    names = names or name_resolver(None, settings.dns_resolvers, ns_map=settings.ns_map)
    return Gateway(RouterSource(reads), remote=remote, providers=providers, limits=limits,
                   names=names)


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
    names = name_resolver(SlotNames(slot, settings.backend.repo_path), settings.dns_resolvers,
                          ns_map=settings.ns_map, repo_path=settings.backend.repo_path)
    gateway = gateway_from_settings(settings, slot, providers=providers, names=names)
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


def retrieval_gateway(settings: ServerSettings, blocks: BlockGetter) -> Gateway:
    """The node's HTTP retrieval gateway: the blocks here, verified, and nothing fetched;
    the same serving bounds as ``--gateway`` (slots per client)."""
    limits = GatewayLimits(max_per_client=settings.serving.gateway_per_client)
    return Gateway(BlockstoreSource(blocks), limits=limits)


def listen_hosts(listen_addrs: Sequence[str]) -> list[str]:
    """The IP hosts of the node's listen addresses (a wildcard, if any, stands for all)."""
    hosts: list[str] = []
    for addr in listen_addrs:
        parts = addr.split("/")
        if len(parts) > 4 and parts[1] in ("ip4", "ip6") and parts[3] == "tcp":
            hosts.append(parts[2])
    hosts = list(dict.fromkeys(hosts))
    wildcards = [h for h in hosts if h in ("0.0.0.0", "::")]
    return wildcards or hosts


async def serve_http_retrieval(tg: anyio.abc.TaskGroup, settings: ServerSettings,
                               gateway: App, listen_addrs: Sequence[str]) -> list[str]:
    """Serve ``gateway`` (:func:`retrieval_gateway`, or an app wrapping it) in ``tg`` on
    each host the node listens on, at ``--http-retrieval-port`` (0: one free port each);
    the bound URLs (``https`` with ``--gateway-tls``). Never beyond the node's own scope:
    only where the node listens.

    Raises:
        OSError: a host or port could not be bound.
    """
    urls: list[str] = []
    for host in listen_hosts(listen_addrs):
        async def run(host: str = host, *,
                      task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
                      ) -> None:
            await serve_gateway(gateway, host, settings.http_retrieval_port,
                                log_level=settings.log_level, tls=settings.gateway_tls,
                                write_timeout=settings.serving.send_idle,
                                task_status=task_status)

        urls.extend(await tg.start(run))
    return urls
