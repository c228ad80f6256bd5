"""Provider reputation for bitswap peers: the one scorer in
:mod:`ipfs_mcp.backends.core.reputation`, which trustless gateways share."""

from ipfs_mcp.backends.core.reputation import (  # noqa: F401
    BACKOFF_BASE,
    BACKOFF_MAX,
    BAD_BLOCK_FACTOR,
    BAD_BLOCK_WEIGHT,
    LATENCY_REF,
    NO_HISTORY_SCORE,
    THROUGHPUT_REF,
    ProviderRecord,
    ProviderReputation,
)
