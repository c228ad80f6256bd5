"""The node's numbers for Prometheus, at Kubo's path ``/debug/metrics/prometheus``.

A small ASGI app (:func:`metrics_app`) for the daemon to mount: each scrape reads the
node's own stats object (``P2PNode.stats()``, the numbers ``peer_stats`` shows) and writes
them in the Prometheus text exposition format with ``prometheus_client`` (already installed
as a dependency of py-libp2p), through a collector of our own, so nothing is counted twice
and no global registry is touched.

Per-peer series are bounded to the :data:`MAX_PEER_SERIES` peers that sent us the most
bytes, so a node that met thousands of peers does not make thousands of series.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CollectorRegistry, make_asgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from .gateway.asgi import App, Receive, Scope, Send, lifespan, plain

if TYPE_CHECKING:
    from ipfs_mcp.p2p.node import P2PNode
    from ipfs_mcp.p2p.stats import NodeStats

PATH = "/debug/metrics/prometheus"
MAX_PEER_SERIES = 64

# The node's stats now, or None while no node runs (a scrape then shows no node series).
StatsSource = Callable[[], "NodeStats | None"]


class HoldsNode(Protocol):
    """Where the server keeps its node once started (``state.NodeSlot``)."""

    node: P2PNode | None


def node_stats(holder: HoldsNode) -> StatsSource:
    """The stats of the node ``holder`` holds, while it runs: ``metrics_app(node_stats(slot))``."""
    def source() -> NodeStats | None:
        node = holder.node
        return node.stats() if node is not None and node.running else None

    return source


class NodeCollector:
    """A ``prometheus_client`` collector over the node's stats; reads them per scrape."""

    def __init__(self, source: StatsSource) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        stats = self.source()
        up = GaugeMetricFamily("ipfs_mcp_node_up", "1 while the P2P node runs")
        up.add_metric([], 0 if stats is None else 1)
        yield up
        if stats is not None:
            yield from _node_metrics(stats)
            yield from _peer_metrics(stats)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _node_metrics(s: NodeStats) -> Iterator[Metric]:
    bw = CounterMetricFamily("ipfs_mcp_bandwidth_bytes", "Bytes through the node's "
                             "connections (all protocols, as on the wire)",
                             labels=["direction"])
    bw.add_metric(["in"], s.bandwidth.total_in)
    bw.add_metric(["out"], s.bandwidth.total_out)
    yield bw
    rate = GaugeMetricFamily("ipfs_mcp_bandwidth_rate_bytes_per_second",
                             "Recent bandwidth, exponentially weighted over 10 s",
                             labels=["direction"])
    rate.add_metric(["in"], s.bandwidth.rate_in)
    rate.add_metric(["out"], s.bandwidth.rate_out)
    yield rate
    outcomes = CounterMetricFamily("ipfs_mcp_retrievals", "Retrievals that needed the "
                                   "network, by outcome", labels=["outcome"])
    outcomes.add_metric(["ok"], s.handled)
    outcomes.add_metric(["failed"], s.failed)
    yield outcomes
    yield _counter("ipfs_mcp_retrieved_bytes", "Block bytes retrieved from the network",
                   s.bytes_retrieved)
    if s.average_retrieval_time is not None:
        yield _gauge("ipfs_mcp_retrieval_seconds_average", "Mean time of a successful "
                     "retrieval", s.average_retrieval_time)
    yield _counter("ipfs_mcp_providers_found", "Providers found in lookups",
                   s.providers_found)
    yield _counter("ipfs_mcp_failed_discoveries", "Provider lookups that found nobody "
                   "or failed", s.failed_discoveries)
    yield _counter("ipfs_mcp_announced_cids", "CIDs announced after retrievals", s.announced)
    yield _counter("ipfs_mcp_failed_announcements", "Announcements that failed",
                   s.failed_announcements)
    yield _counter("ipfs_mcp_reprovided_cids", "CIDs announced by reprovide rounds",
                   s.reprovided)
    yield _counter("ipfs_mcp_reprovide_rounds", "Reprovide rounds run", s.reprovide_rounds)
    yield _counter("ipfs_mcp_bitswap_message_bytes_sent", "Bitswap message bytes sent",
                   s.bytes_sent_total)
    yield _counter("ipfs_mcp_bitswap_message_bytes_received",
                   "Bitswap message bytes received", s.bytes_received_total)
    yield _gauge("ipfs_mcp_peers_connected", "Connected peers",
                 sum(1 for p in s.peers if p.connected))
    yield _gauge("ipfs_mcp_routing_table_size", "Peers in the DHT routing table",
                 s.routing_table_size)
    for half, peers in (("lan", s.dht_lan_peers), ("wan", s.dht_wan_peers)):
        if peers is not None:
            yield _gauge(f"ipfs_mcp_dht_{half}_table_size",
                         f"Peers in the {half.upper()} DHT's routing table", peers)


def _peer_metrics(s: NodeStats) -> Iterator[Metric]:
    top = sorted(s.peers, key=lambda p: (-p.bytes_received, -p.bytes_sent, p.peer_id)
                 )[:MAX_PEER_SERIES]
    blocks = CounterMetricFamily("ipfs_mcp_peer_blocks", "Blocks exchanged with a peer "
                                 "over bitswap", labels=["peer", "direction"])
    nbytes = CounterMetricFamily("ipfs_mcp_peer_block_bytes", "Block bytes exchanged with "
                                 "a peer over bitswap", labels=["peer", "direction"])
    outcomes = CounterMetricFamily("ipfs_mcp_provider_outcomes", "A provider's successes "
                                   "and failures for our wants", labels=["peer", "outcome"])
    for p in top:
        blocks.add_metric([p.peer_id, "in"], p.blocks_received)
        blocks.add_metric([p.peer_id, "out"], p.blocks_sent)
        nbytes.add_metric([p.peer_id, "in"], p.bytes_received)
        nbytes.add_metric([p.peer_id, "out"], p.bytes_sent)
        outcomes.add_metric([p.peer_id, "ok"], p.successes)
        outcomes.add_metric([p.peer_id, "failed"], p.failures)
    yield from (blocks, nbytes, outcomes)


def metrics_app(source: StatsSource) -> App:
    """An ASGI app answering ``GET /debug/metrics/prometheus`` with the node's numbers
    (anything else: 404). Mount it where the daemon serves HTTP."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(source))
    exposition = make_asgi_app(registry)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") == "lifespan":
            await lifespan(receive, send)
        elif scope.get("type") != "http" or scope.get("path") != PATH:
            await plain(send, 404, f"not found: the metrics are at {PATH}\n".encode(),
                        [(b"cache-control", b"no-store")])
        else:
            await exposition(scope, receive, send)

    return app

