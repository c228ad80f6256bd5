"""Node health: what an agent (or a person) checks first when something does not work."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ipfs_mcp.backends.errors import IpfsMcpError
from ipfs_mcp.backends.router import RouterDeps, Selection, backend_health

from .models import BackendChoice, BackendStatus, Health, RepoInfo, RepoIntegrity
from .network import P2PNode, cache_counters
from .progress import run_blocking
from .roots import AllowedRoots


async def health(backend: Any, selection: Selection, node: P2PNode | None, *,
                 node_status: str, uptime_s: float, roots: AllowedRoots, recent_errors: Iterable[str],
                 deps: RouterDeps | None = None) -> Health:
    """Backend in use and why, every backend's health, repo size and free disk, peers, DHT
    state, uptime, errors."""
    probes = await run_blocking(lambda: backend_health(deps)) if deps is not None else []
    repo: RepoInfo | None = None
    problems: list[str] = []
    if hasattr(backend, "repo"):
        try:
            st = await run_blocking(backend.repo.stat)
            state = await run_blocking(backend.repo.integrity)
            last = state.last_verify
            repo = RepoInfo(path=st.path, blocks=st.blocks, size=st.size, pins=st.pins,
                            free_disk=st.free_disk, integrity=RepoIntegrity(
                                status=state.status, quarantined=state.quarantined,
                                last_verify_at=last.at if last else None,
                                last_verify_ok=last.ok if last else None,
                                missing_blocks=last.missing if last else None,
                                summary=state.summary))
            if state.status == "damaged":
                problems.append(f"repo integrity: {state.summary}")
        except (IpfsMcpError, OSError) as exc:
            problems.append(f"repo stat failed: {exc}")
    peers = routing = None
    status = node_status if node is not None else f"not running: {node_status}"
    dht = None
    if node is not None:
        stats = node.stats()
        peers = sum(1 for p in stats.peers if p.connected)
        routing = stats.routing_table_size
        dht = stats.dht_mode
    return Health(
        status="degraded" if problems else "ok",
        backend=BackendChoice(backend=selection.backend, reason=selection.reason,
                              skipped=dict(selection.skipped)),
        backends=[BackendStatus(name=p.name, ok=p.ok, detail=p.detail) for p in probes],
        repo=repo, network_status=status, peers=peers, routing_table_size=routing,
        dht_mode=dht,
        uptime_s=round(uptime_s, 3), cache=cache_counters(backend),
        allowed_roots=[str(r) for r in roots.roots],
        recent_errors=[*problems, *recent_errors])
