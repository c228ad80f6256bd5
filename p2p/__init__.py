"""ipfs_mcp.p2p: a libp2p node with our own bitswap and Kademlia content routing.

Imports only ``ipfs_mcp.backends`` (blocks, CIDs, errors). See ``node.py`` for the shape.
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
