"""Providing: provider records in the DHT, looked up and announced.

Looking up ranks what the DHT returns by our own reputation of each peer; announcing puts a
record for a root (or, for the ``all`` policy, for every block under it) and walks the local
DAG with the one bounded walker (``backends.core.dag.walk``), so a hostile DAG we hold
cannot make an announcement walk without end.

Content added by any path (the CLI adds into the repo with no node running) is provided
when the node runs, as Kubo's Reprovider does with its ``pinned``/``roots`` strategies:
at start and every :data:`REPROVIDE_INTERVAL`, :meth:`Providing.reprovide` announces the
pinned roots per the role's policy (``all``: every block under each recursive pin;
``roots``: each pin's root; ``none``: nothing). A round takes at most
:data:`REPROVIDE_MAX_PINS` pins and each announcement is bounded by its own timeout.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice
from typing import Protocol

import anyio
import trio
from libp2p.abc import IHost
from multiformats import CID

from ipfs_mcp.backends.core.cids import cid_str, parse_cid
from ipfs_mcp.backends.core.dag import walk
from ipfs_mcp.backends.errors import BlockNotFound, IpfsMcpError, NetworkError

from .bitswap.engine import BlockStore
from .config import NodeConfig
from .loop import NodeLoop
from .periods import PEER_CHECK, publishing_rounds
from .reputation import ProviderReputation
from .routing import ContentRouting

log = logging.getLogger(__name__)

_RAW = 0x55

# Kubo reprovides every 22 h; provider records live 48 h in the DHT, so twice a day keeps
# them alive with room for a missed round.
REPROVIDE_INTERVAL = 12 * 3600.0
# Pins announced per round: a repo with more waits for its next round for the rest (the
# pin store lists them in a stable order, so the same first ones are always announced).
REPROVIDE_MAX_PINS = 10_000
# How often a round run with no DHT peer looks for one (see periods.publishing_rounds).
REPROVIDE_PEER_CHECK = PEER_CHECK


class PinnedRoots(Protocol):
    """Every pin's root and whether the pin is recursive (blocking: reads the pin store)."""

    def __call__(self) -> Iterable[tuple[CID, bool]]: ...


@dataclass(frozen=True)
class ProviderInfo:
    peer_id: str
    addrs: tuple[str, ...]
    score: float


@dataclass
class ProvidingCounters:
    """What lookups and announcements did, for the node's stats."""

    providers_found: int = 0
    failed_discoveries: int = 0
    announced: int = 0  # CIDs announced in the background after retrievals
    failed_announcements: int = 0
    reprovide_rounds: int = 0  # rounds announcing the pinned roots
    reprovided: int = 0  # CIDs those rounds announced


class Providing:
    """Provider records: find them (ranked) and put ours. Components come in built."""

    def __init__(self, host: IHost, blockstore: BlockStore, routing: ContentRouting,
                 reputation: ProviderReputation, config: NodeConfig, loop: NodeLoop) -> None:
        self.host = host
        self.blockstore = blockstore
        self.routing = routing
        self.reputation = reputation
        self.config = config
        self.loop = loop
        self.counters = ProvidingCounters()
        self._reprovided = trio.Event()

    @property
    def reprovided(self) -> trio.Event:
        """Set when the next reprovide round ends; grab it, then check the counters."""
        return self._reprovided

    async def find_providers(self, cid: CID | str, count: int | None = None,
                             timeout: float | None = None) -> list[ProviderInfo]:
        """Providers of ``cid`` from the DHT, best first by reputation.

        Raises:
            NetworkError: the lookup failed or timed out.
            BackendUnavailable: the node is not running.
        """
        self.loop.nursery()
        cid = parse_cid(cid)
        count = count or self.config.max_providers
        timeout = self.config.find_providers_timeout if timeout is None else timeout
        try:
            with trio.fail_after(timeout):
                found = await self.routing.find_providers(cid, count)
        except trio.TooSlowError as exc:
            self.counters.failed_discoveries += 1
            raise NetworkError(f"finding providers of {cid_str(cid)} timed out after "
                               f"{timeout}s") from exc
        except NetworkError:
            self.counters.failed_discoveries += 1
            raise
        if not found:
            self.counters.failed_discoveries += 1
        self.counters.providers_found += len(found)
        for info in found:
            self.host.get_peerstore().add_addrs(info.peer_id, info.addrs, 3600)
        ranked = self.reputation.get_optimal_providers([str(i.peer_id) for i in found], count)
        by_id = {str(i.peer_id): i for i in found}
        return [ProviderInfo(str(p), tuple(str(a) for a in by_id[str(p)].addrs),
                             self.reputation.score(p)) for p in ranked]

    async def get_optimal_providers(self, cid: CID | str, count: int = 5
                                    ) -> list[ProviderInfo]:
        """The ``count`` best providers of ``cid`` (DHT providers, ranked by reputation).

        Raises:
            NetworkError: the lookup failed or timed out.
        """
        return (await self.find_providers(cid, count=max(count, self.config.max_providers)
                                          ))[:count]

    async def announce_content(self, cid: CID | str, *, recursive: bool | None = None) -> int:
        """Announce ``cid`` (and, if ``recursive``, every block under it) in the DHT.

        ``recursive`` defaults to the role's policy (``all`` announces every block). The
        blocks must be local. Returns how many CIDs were announced.

        Raises:
            BlockNotFound: a block to announce is not local.
            DagTooLarge: the local DAG exceeds the walk's bounds.
            NetworkError: an announcement failed or timed out.
        """
        self.loop.nursery()
        cid = parse_cid(cid)
        if recursive is None:
            recursive = self.config.profile.announce == "all"
        cids = [cid]
        if recursive:
            cids = await anyio.to_thread.run_sync(self.local_dag, cid)
        elif not await anyio.to_thread.run_sync(self.blockstore.has, cid):
            raise BlockNotFound(cid_str(cid))
        announced = 0
        with trio.fail_after(self.config.provide_timeout * max(1, len(cids) // 50 + 1)):
            for one in cids:
                await self.routing.provide(one)
                announced += 1
        return announced

    def local_dag(self, root: CID) -> list[CID]:
        """Every CID under ``root``, each once, all local (blocking: run it in a thread).

        Raises:
            BlockNotFound: a block is not local.
            DagTooLarge: deeper, wider or larger than ``backends.core.limits`` allows.
        """
        def load(cid: CID) -> bytes:
            # Raw leaves have no links: presence is enough, their bytes need not be read.
            if cid.codec.code == _RAW:
                if not self.blockstore.has(cid):
                    raise BlockNotFound(cid_str(cid))
                return b""
            return self.blockstore.get(cid)

        return [cid for cid, _ in walk(root, load)]

    async def announce_quietly(self, cid: CID) -> None:
        """Announce per the role's policy; a failure is logged and counted, not raised."""
        try:
            self.counters.announced += await self.announce_content(cid)
        except (IpfsMcpError, trio.TooSlowError) as exc:
            self.counters.failed_announcements += 1
            log.info("p2p: announcing %s after retrieval failed: %s", cid_str(cid), exc)


    async def reprovide(self, pinned: PinnedRoots) -> int:
        """One round: announce the pinned roots per the role's policy; how many CIDs.

        A pin that cannot be announced (a block missing, a DAG too large, the DHT not
        answering) is logged and counted, and the round goes on with the next.
        """
        policy = self.config.profile.announce
        announced = 0
        try:
            if policy != "none":
                roots = await anyio.to_thread.run_sync(
                    lambda: list(islice(pinned(), REPROVIDE_MAX_PINS)))
                for root, recursive in roots:
                    try:
                        announced += await self.announce_content(
                            root, recursive=recursive and policy == "all")
                    except (IpfsMcpError, trio.TooSlowError) as exc:
                        self.counters.failed_announcements += 1
                        log.info("p2p: reproviding %s failed: %s", cid_str(root), exc)
        except (IpfsMcpError, OSError) as exc:  # the pin store could not be read
            log.warning("p2p: reproviding: cannot list the pins: %s", exc)
        finally:
            self.counters.reprovide_rounds += 1
            self.counters.reprovided += announced
            self._reprovided.set()
            self._reprovided = trio.Event()
        return announced

    async def reprovide_forever(self, pinned: PinnedRoots) -> None:
        """Reprovide now, then every :data:`REPROVIDE_INTERVAL` (sooner once, when the
        round ran with no DHT peer and one appears), until cancelled."""
        await publishing_rounds(lambda: self.reprovide(pinned), REPROVIDE_INTERVAL,
                                self.routing.routing_table_size,
                                peer_check=REPROVIDE_PEER_CHECK)
