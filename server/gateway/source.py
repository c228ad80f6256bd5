"""What the gateway reads blocks from: a small typed seam, so the gateway knows no backend.

The gateway only ever asks for one verified block at a time (:class:`BlockSource`). Whoever
assembles the server hands it one source for blocks already here and, only when the user
asked for ``--gateway-recursive``, a second one that may fetch from peers and gateways; an
anonymous HTTP client never makes this node fetch anything otherwise.

:class:`RouterSource` is what ``serve --gateway`` uses: blocks as the server's Router reads
them from the selected backend, whatever it is (the embedded repo, Kubo), each verified here
against its CID. :class:`BlockstoreSource` reads a verifying blockstore directly (a repo of
the caller's own).
"""

from __future__ import annotations

import base64
from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

from multiformats import CID

from ipfs_mcp.backends.core.cids import verify_block
from ipfs_mcp.backends.errors import NotFound

__all__ = ["BlockGetter", "BlockReads", "BlockSource", "BlockstoreSource", "PeerRecord",
           "ProviderLookup", "ProviderRecord", "RouterSource"]


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


class BlockReads(Protocol):
    """One block at a time from the server's selected backend (the Router's
    ``block_get_from``, or the server's slot that holds the Router once it is built).

    A local miss asks only the retrieval sources named in ``sources`` (none: no one).
    Called from a worker thread; raises ``BlockNotFound`` for a miss.
    """

    def block_get_from(self, cid: str, *, sources: Collection[str] = ()) -> bytes: ...


class RouterSource:
    """A :class:`BlockSource` over :class:`BlockReads`: every block is verified here against
    its CID before it is served, whichever backend sent it. ``sources``: the retrieval
    sources a miss may ask (none: only blocks already here)."""

    def __init__(self, reads: BlockReads, sources: Collection[str] = ()) -> None:
        self._reads = reads
        self._sources = tuple(sources)

    def get_block(self, cid: CID) -> bytes:
        """Raises: BlockNotFound; IntegrityError: the backend sent other bytes."""
        data = self._reads.block_get_from(_cid_text(cid), sources=self._sources)
        verify_block(cid, data)
        return data

    def has(self, cid: CID) -> bool:
        """Whether the block can be read (as :meth:`get_block`, so only what is here when
        no source is named)."""
        try:
            self.get_block(cid)
        except NotFound:
            return False
        return True


_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _cid_text(cid: CID) -> str:
    """``cid_str(cid)`` (base58btc for CIDv0, base32 for CIDv1), made without multiformats'
    run-time argument checks: those cost about 250 us a CID, a tenth of a whole CAR's
    serving time when every block of a new DAG is named once to the Router."""
    raw = bytes(cid)
    if cid.version != 0:
        return "b" + base64.b32encode(raw).decode("ascii").lower().rstrip("=")
    number = int.from_bytes(raw, "big")
    digits: list[str] = []
    while number:  # one digit a step: at most 1.37 per byte of the multihash
        number, digit = divmod(number, 58)
        digits.append(_BASE58[digit])
    return "1" * (len(raw) - len(raw.lstrip(b"\0"))) + "".join(reversed(digits))


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

    async def ipns_record(self, name: str) -> bytes | None:
        """The signed IPNS record held for ``name`` (``/ipns/k51…``), if any."""
        ...
