"""Our node's names as the server asks them: the ``NameSystem`` of the node in the slot.

The node starts after the server does (the lifespan runs it), so its names are built on the
first call that needs them, over the running node's host and DHT, with the keys and the
published records in the repo (:class:`~ipfs_mcp.p2p.names.NodeNames`). A call made while
the node is down says so (``NodeNotRunning``), as the network tools do.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import anyio

from ipfs_mcp.backends.core import ipns
from ipfs_mcp.backends.errors import NodeNotRunning, Timeout
from ipfs_mcp.backends.names import KeyInfo, NameRecord
from ipfs_mcp.p2p.names import NamesWhenRunning, NodeNames, RecordRouter

if TYPE_CHECKING:
    from ipfs_mcp.p2p import P2PNode


class NodeWaiter(Protocol):
    async def wait(self) -> P2PNode | None:
        """The running node (None: it is not running)."""
        ...


class SlotNames:
    """``NameSystem`` over the node the slot holds: the node's own
    :class:`~ipfs_mcp.p2p.names.NamesWhenRunning` (one ``NodeNames`` per node, asking the
    delegated routers too), plus the signed record the gateway serves."""

    def __init__(self, slot: NodeWaiter, repo_path: Path, *,
                 routers: Sequence[RecordRouter] = ()) -> None:
        self.slot = slot
        self.repo_path = repo_path
        self._running = NamesWhenRunning(self._node, repo_path, routers=routers)

    async def _node(self) -> P2PNode:
        node = await self.slot.wait()
        if node is None:
            raise NodeNotRunning(f"P2P node is not running ({getattr(self.slot, 'status', '')}); "
                                 "IPNS names need it: start without --no-p2p")
        return node

    async def _for_node(self) -> NodeNames:
        return await self._running.names()

    async def ipns_record(self, name: str) -> bytes | None:
        """The best valid record of ``name`` held here or by the closest peers, as signed
        (the gateway's ``?format=ipns-record``); None when there is none.

        Raises:
            InvalidInput: not a key's name. Timeout, NetworkError: the lookup failed.
        """
        names = await self._for_node()
        key_name = ipns.ipns_name(ipns.name_multihash(name))
        try:
            with anyio.fail_after(names.lookup_timeout):
                records, _ = await names.dht.get(key_name)
        except TimeoutError:
            raise Timeout(f"looking up the record of {key_name} took over "
                          f"{names.lookup_timeout:g} s") from None
        return ipns.best_record(records).raw if records else None

    async def publish(self, value: str, *, key: str = "self", lifetime_seconds: float = 48 * 3600,
                      ttl_seconds: float = 300) -> NameRecord:
        return await (await self._for_node()).publish(
            value, key=key, lifetime_seconds=lifetime_seconds, ttl_seconds=ttl_seconds)

    async def resolve(self, name: str) -> NameRecord:
        return await (await self._for_node()).resolve(name)

    async def last_published(self, key: str = "self") -> NameRecord | None:
        return await (await self._for_node()).last_published(key)

    async def keys(self) -> list[KeyInfo]:
        return await (await self._for_node()).keys()

    async def generate_key(self, name: str) -> KeyInfo:
        return await (await self._for_node()).generate_key(name)
