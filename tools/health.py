"""Node health: what an agent (or a person) checks first when something does not work."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

from ipfs_mcp.backends.errors import IpfsMcpError
from ipfs_mcp.backends.network import Network
from ipfs_mcp.backends.retrieval.delegated_routing import DelegatedRouting, DelegatedSource
from ipfs_mcp.backends.retrieval.trustless_gateway import GatewayStat, TrustlessGateways
from ipfs_mcp.backends.router import Router

from .models import (
    BackendChoice,
    BackendStatus,
    GatewayStatus,
    Health,
    RepoInfo,
    RepoIntegrity,
    RouterStatus,
    ServedGateway,
)
from .network import cache_counters, repo_tiers
from .progress import run_blocking
from .roots import AllowedRoots


async def health(router: Router, node: Network | None, *, node_status: str,
                 uptime_s: float, roots: AllowedRoots, recent_errors: Iterable[str],
                 sources: Sequence[str] = (),
                 gateways: TrustlessGateways | None = None,
                 served: ServedGateway | None = None,
                 routers: DelegatedRouting | None = None,
                 discovered: DelegatedSource | None = None,
                 p2p_network: str | None = None) -> Health:
    """Backend in use and why, every backend's health, repo size, free disk and integrity,
    the node (ours or Kubo) with its peers and DHT state, uptime, errors; our own gateway
    (``served``), and the trustless gateways and delegated routers we fetch through, each
    with its reputation (``discovered`` holds the gateways the routers named), and the
    network preset the node runs with (``p2p_network``)."""
    selection = await run_blocking(router.selection)
    probes = await run_blocking(router.backend_health)
    repo: RepoInfo | None = None
    problems: list[str] = []
    embedded = router.repo
    if embedded is not None:
        try:
            st = await run_blocking(embedded.stat)
            state = await run_blocking(embedded.integrity)
            last = state.last_verify
            repo = RepoInfo(path=st.path, blocks=st.blocks, size=st.size, pins=st.pins,
                            free_disk=st.free_disk, integrity=RepoIntegrity(
                                status=state.status, quarantined=state.quarantined,
                                last_verify_at=last.at if last else None,
                                last_verify_ok=last.ok if last else None,
                                missing_blocks=last.missing if last else None,
                                summary=state.summary), tiers=repo_tiers(router))
            if state.status == "damaged":
                problems.append(f"repo integrity: {state.summary}")
        except (IpfsMcpError, OSError) as exc:
            problems.append(f"repo stat failed: {exc}")
    peers = routing = None
    running = node is not None and node.status() == "running"
    if running or node_status == "starting":
        status = "running" if running else "starting"
    else:
        status = f"not running: {node_status}"
    dht = reprovided = relay_reservations = relay_circuits = None
    if node is not None and running:
        try:
            snap = await node.snapshot()
        except IpfsMcpError as exc:
            problems.append(f"{node.name}: {exc}")
        else:
            peers = sum(1 for p in snap.peers if p.connected)
            routing = snap.routing_table_size
            dht = snap.dht_mode
            reprovided = snap.reprovided
            relay_reservations, relay_circuits = snap.relay_reservations, snap.relay_circuits
    return Health(
        status="degraded" if problems else "ok",
        backend=BackendChoice(backend=selection.backend, reason=selection.reason,
                              skipped=dict(selection.skipped)),
        backends=[BackendStatus(name=p.name, ok=p.ok, detail=p.detail) for p in probes],
        repo=repo, network_status=status, p2p_network=p2p_network, peers=peers,
        routing_table_size=routing,
        dht_mode=dht, reprovided=reprovided, relay_reservations=relay_reservations,
        relay_circuits=relay_circuits,
        uptime_s=round(uptime_s, 3), cache=cache_counters(router),
        allowed_roots=[str(r) for r in roots.roots],
        retrieval_sources=list(sources),
        gateway=served or ServedGateway(enabled=False),
        gateways=[*_gateway_statuses(gateways.stats() if gateways is not None else [],
                                     "configured"),
                  *_gateway_statuses(discovered.gateway_stats() if discovered is not None
                                     else [], "delegated-routing")],
        delegated_routers=[RouterStatus(url=r.url, score=round(r.score, 4),
                                        successes=r.successes, failures=r.failures,
                                        consecutive_failures=r.consecutive_failures,
                                        last_error=r.last_error)
                           for r in (routers.stats() if routers is not None else [])],
        recent_errors=[*problems, *recent_errors])


def _gateway_statuses(stats: Iterable[GatewayStat],
                      found_via: Literal["configured", "delegated-routing"]
                      ) -> list[GatewayStatus]:
    return [GatewayStatus(url=g.url, score=round(g.score, 4), successes=g.successes,
                          failures=g.failures, bad_blocks=g.bad_blocks, dropped=g.dropped,
                          found_via=found_via) for g in stats]
