"""ipfs_mcp.p2p: a libp2p node with our own bitswap and Kademlia content routing.

Imports only ``ipfs_mcp.backends`` (blocks, CIDs, errors), never tools or server.

What lives here: ``node`` (the facade the server uses, and ``open_node``) runs three parts
that share its nursery (``loop``): ``peers`` (dial, identify), ``providing`` (provider
records in the DHT) and ``fetching`` (bitswap sessions, the DHT lookup beside them);
``thread_fetcher`` hands fetches to worker threads; ``stats`` is what the node reports;
``protocols`` serves and opens custom ``/x/`` protocol streams (Kubo's ``ipfs p2p``).
Below them: ``bitswap/`` (engine, session, wire messages), ``routing`` (Kademlia),
``host``, ``discovery`` (mDNS), ``identity``, ``config``.

Public API::

    open_node(repo, NodeConfig(...))            async context manager -> P2PNode
    P2PNode(host, blockstore, routing, *, config, reputation, bitswap, pinner)
        .peer_id, .addrs, .running
        await .connect_peer(multiaddr) -> peer id
        await .wait_for_peer(peer_id=None, timeout=30) -> peer id   (any way it came: mDNS...)
        await .find_providers(cid, count=None, timeout=None) -> [ProviderInfo]  (= find_content)
        await .get_optimal_providers(cid, count=5) -> [ProviderInfo]
        .update_provider_stats(peer, success, latency=None, nbytes=0)
        await .announce_content(cid, recursive=None) -> count announced
        await .fetch_block(cid, timeout=None) -> bytes             (= retrieve_block)
        await .fetch_dag(cid, pin=False, timeout=None, providers=()) -> FetchReport
                                                  (= retrieve_content; both cancel-safe)
        .fetcher() -> NodeFetcher   (backends.fetcher.BlockFetcher, for worker threads)
            .fetch_block(cid, cancel=None) / .fetch_dag(root, cancel=None)
                                                  cancel: threading.Event
        .stats() -> NodeStats, .peer_stats(peer_id=None) -> [PeerStat]
        .register_protocol_handler("/x/name/1.0", handler, max_streams=16)
            handler: async (protocols.ProtocolStream) -> None, one call per stream
        await .open_protocol_stream(peer_id | multiaddr, "/x/name/1.0") -> ProtocolStream
        await nursery.start(node.run)            alternative to ``async with``
    NodeConfig(role=Role.WORKER, listen_addrs=("/ip4/127.0.0.1/tcp/0",), bootstrap=(),
               mdns=False, enable_mplex=False, bitswap=BitswapConfig(...), ...)
    ROLE_PROFILES                                 master / worker / leecher defaults
    Bitswap(host, store, *, reputation, config)  the engine (serving + wants)
    Session(engine, peers).get(cid) / .fetch_dag(root)
    KadContentRouting(dht) / .for_host(host, server=...)   ContentRouting, Kademlia on
                                  /ipfs/kad/1.0.0 and Kubo's LAN id /ipfs/lan/kad/1.0.0
    ProviderReputation                            scores, back-off, get_optimal_providers

Errors come from ``ipfs_mcp.backends.errors``: BlockNotFound (no peer had it in time),
NetworkError (dial, lookup or protocol failures), BackendUnavailable (node not running),
TooLarge (a fetch over the role's cache budget), InvalidInput / InvalidCID.
"""

from .bitswap.engine import Bitswap, BitswapConfig, Ledger
from .bitswap.session import FetchReport, Session
from .config import ROLE_PROFILES, NodeConfig, Role, RoleProfile
from .host import build_host
from .identity import load_or_create_identity
from .node import NodeFetcher, NodeStats, P2PNode, PeerStat, ProviderInfo, open_node
from .reputation import ProviderReputation
from .routing import ContentRouting, KadContentRouting

__all__ = [
    "Bitswap",
    "BitswapConfig",
    "ContentRouting",
    "FetchReport",
    "KadContentRouting",
    "Ledger",
    "NodeConfig",
    "NodeFetcher",
    "NodeStats",
    "P2PNode",
    "PeerStat",
    "ProviderInfo",
    "ProviderReputation",
    "ROLE_PROFILES",
    "Role",
    "RoleProfile",
    "Session",
    "build_host",
    "load_or_create_identity",
    "open_node",
]
