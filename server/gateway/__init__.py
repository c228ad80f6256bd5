"""A read-only HTTP gateway: trustless (raw blocks, CAR) and UnixFS path gateway, plus
delegated routing (``/routing/v1``), served by hypercorn on the server's trio loop.

It reads blocks through :class:`~.source.BlockSource` objects handed to :class:`Gateway`;
it knows no backend. By default only blocks already here are served.
"""

from .app import Gateway, GatewayLimits
from .routing import InMemoryProviders
from .serve import serve_gateway
from .source import (
    BlockSource,
    BlockstoreSource,
    PeerRecord,
    ProviderLookup,
    ProviderRecord,
)

__all__ = ["BlockSource", "BlockstoreSource", "Gateway", "GatewayLimits", "InMemoryProviders",
           "PeerRecord", "ProviderLookup", "ProviderRecord", "serve_gateway"]
