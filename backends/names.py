"""The ``NameSystem`` protocol: names that move (IPNS), as the name tools ask them of "the node".

A CID names bytes that never change; an IPNS name (a key's peer id, ``k51…``) names
whatever its key last signed. Where the backend is the embedded repo, the names are
published and resolved by our own node (its keys, its DHT, the delegated routers it knows);
where the backend is Kubo (or a cluster in front of Kubo), by that Kubo through its RPC.
DNSLink (``_dnslink.<domain>`` TXT records) is resolved beside this, not by it: it needs no
node.

Every method is async and bounded by the implementation's own timeouts. A record is
reported as the node verified it (signature, validity, sequence); nothing is invented: a
field the node cannot report is None.

Errors: ``NameNotFound`` (no valid record for the name), ``InvalidInput`` (a malformed name,
value or key name), ``Timeout``, ``NetworkError``, ``NodeNotRunning``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

# The records live with the codec so that the P2P node, which may import only the codecs,
# returns the very types this protocol names.
from ipfs_mcp.backends.core.ipns import KeyInfo, NameRecord

__all__ = ["KeyInfo", "NameRecord", "NameSystem"]


@runtime_checkable
class NameSystem(Protocol):
    async def publish(self, value: str, *, key: str = "self", lifetime_seconds: float = 48 * 3600,
                      ttl_seconds: float = 300) -> NameRecord:
        """Sign ``value`` under ``key`` with the next sequence number and publish it."""
        ...

    async def resolve(self, name: str) -> NameRecord:
        """One step: the best valid record for an IPNS name (highest sequence, then the
        longest validity), not following a value that is itself a name."""
        ...

    async def last_published(self, key: str = "self") -> NameRecord | None:
        """What this node last published under ``key``, if anything."""
        ...

    async def keys(self) -> list[KeyInfo]:
        ...

    async def generate_key(self, name: str) -> KeyInfo:
        """A new Ed25519 key named ``name`` (refused when the name is taken or ``self``)."""
        ...
