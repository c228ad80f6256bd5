"""What the gateway reads blocks from: a small typed seam, so the gateway knows no backend.

The gateway only ever asks for one verified block at a time (:class:`BlockSource`). Whoever
assembles the server hands it one source for blocks already here and, only when the user
asked for ``--gateway-recursive``, a second one that may fetch from peers and gateways; an
anonymous HTTP client never makes this node fetch anything otherwise.

:class:`BlockstoreSource` is the real default: it reads the embedded repo's blockstore,
whose ``get`` verifies every block against its CID.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from multiformats import CID

__all__ = ["BlockGetter", "BlockSource", "BlockstoreSource", "PeerRecord", "ProviderLookup",
           "ProviderRecord"]


class BlockSource(Protocol):
    """Verified blocks by CID. Called from a worker thread (it may block).

    ``get_block`` raises ``BlockNotFound`` (backends/errors.py) when the block is not there,
    ``IntegrityError`` when stored bytes are corrupt; the bytes it returns hash to ``cid``.
    """

    def get_block(self, cid: CID) -> bytes: ...


class BlockGetter(Protocol):
    """Anything with a verifying ``get(cid)``, such as the repo's ``Blockstore``."""

    def get(self, cid: CID) -> bytes: ...


class BlockstoreSource:
    """A :class:`BlockSource` over a verifying blockstore: only blocks already here."""

    def __init__(self, blocks: BlockGetter) -> None:
        self._blocks = blocks

    def get_block(self, cid: CID) -> bytes:
        return self._blocks.get(cid)


@dataclass(frozen=True)
class ProviderRecord:
    """One provider of a CID, as ``/routing/v1`` returns it (schema ``peer``)."""

    peer_id: str
    addrs: tuple[str, ...] = ()
    protocols: tuple[str, ...] = ()


@dataclass(frozen=True)
class PeerRecord:
    """A peer's addresses, as ``/routing/v1/peers`` returns them."""

    peer_id: str
    addrs: tuple[str, ...] = ()
    protocols: tuple[str, ...] = ()


class ProviderLookup(Protocol):
    """What the delegated routing endpoints ask (our provider store and DHT).

    Both are awaited on the server's trio loop and must bound their own time; an empty
    list is a valid answer (the endpoints then answer 200 with no records).
    """

    async def find_providers(self, cid: CID, limit: int) -> list[ProviderRecord]: ...

    async def find_peer(self, peer_id: str) -> list[PeerRecord]: ...
