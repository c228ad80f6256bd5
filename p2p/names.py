"""Our node's ``NameSystem``: IPNS names published to and resolved from the DHT.

::

    NodeNames(dht=IpnsDht(kad), keys=KeyStore(repo, identity), folder=repo, routers=[...])
      publish(value, key)   sign the next sequence with the key, hold it, give it to the
                            closest DHT peers, keep it on disk (for the next sequence and
                            for republishing)
      resolve(name)         the best valid record held, from the closest peers, and from
                            the delegated routers handed in; every one validated
      republish_due()       re-sign and re-put, with the next sequence and a fresh
                            lifetime, each of our records whose validity ends within the
                            margin (at most MAX_REPUBLISH a round, each put bounded)

On disk, beside the keys, the repo's record store (``backends.core.ipns_store``)::

    <repo>/ipns-published/<k51…>.ipns   the record we last published under that name, or
                                        one put there by hand (``ipfs-mcp routing put``)

``resolve`` counts the held record beside what the network answers: the best one wins.

Sequence numbers only go up: the next one is past both what we last published and the
best record the DHT holds, so a name published from elsewhere is not undercut.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import trio
from libp2p.abc import IHost
from libp2p.crypto.keys import KeyPair
from libp2p.kad_dht.kad_dht import KadDHT

from ipfs_mcp.backends.core import ipns
from ipfs_mcp.backends.core.ipns import KeyInfo, NameRecord
from ipfs_mcp.backends.core.ipns_store import RecordStore
from ipfs_mcp.backends.errors import (
    InvalidRecord,
    IpfsMcpError,
    NameNotFound,
    NetworkError,
    Timeout,
    Unsupported,
)

from .ipns_dht import IpnsDht
from .keys import SELF, KeyStore, signing_key
from .periods import publishing_rounds

log = logging.getLogger(__name__)

__all__ = ["NamesWhenRunning", "NodeNames", "RecordRouter"]

DEFAULT_LIFETIME = 48 * 3600.0  # as Kubo's Ipns.RecordLifetime
REPUBLISH_INTERVAL = 4 * 3600.0  # as Kubo's republisher
REPUBLISH_MARGIN = 24 * 3600.0  # re-sign when less than this is left of a record's validity
MAX_REPUBLISH = 256  # names per round: the rest wait for the next one
LOOKUP_TIMEOUT = 30.0  # a whole resolve or publish walk


class RecordRouter(Protocol):
    """Delegated routers that answer ``GET /routing/v1/ipns/{name}``."""

    async def ipns_records(self, name: str) -> tuple[list[bytes], dict[str, str]]:
        """The raw records the routers hold for ``name``, and each failing router's reason.
        (Validated again here: a record is never taken on a router's word.)"""
        ...


class NodeNames:
    """IPNS through our node: its keys, its DHT, the delegated routers it knows."""

    def __init__(self, dht: IpnsDht, keys: KeyStore, folder: Path, *,
                 routers: Sequence[RecordRouter] = (),
                 lookup_timeout: float = LOOKUP_TIMEOUT) -> None:
        self.dht = dht
        self.keys_store = keys
        self.records = RecordStore(Path(folder))
        self.routers = tuple(routers)
        self.lookup_timeout = lookup_timeout

    @classmethod
    def for_host(cls, host: IHost, dht: KadDHT, repo_path: Path, *,
                 routers: Sequence[RecordRouter] = ()) -> NodeNames:
        """Names for a running node's ``host`` and Kademlia ``dht``, keys and records kept
        in ``repo_path`` (inbound IPNS puts are validated by the DHT's own handler, as
        ``routing.KadContentRouting.for_host`` installs it)."""
        identity = KeyPair(host.get_private_key(), host.get_public_key())
        return cls(IpnsDht(dht), KeyStore(repo_path, identity), repo_path, routers=routers)

    # -- keys ---------------------------------------------------------------------------
    async def keys(self) -> list[KeyInfo]:
        return await trio.to_thread.run_sync(self.keys_store.keys)

    async def generate_key(self, name: str) -> KeyInfo:
        return await trio.to_thread.run_sync(self.keys_store.generate, name)

    # -- records we publish -------------------------------------------------------------
    def _read_published(self, name: str) -> ipns.IpnsRecord | None:
        return self.records.held(name)  # an expired one still holds the sequence

    async def last_published(self, key: str = SELF) -> NameRecord | None:
        info = await trio.to_thread.run_sync(self.keys_store.info, key)
        record = await trio.to_thread.run_sync(self._read_published, info.ipns_name)
        return record.to_name_record("local") if record else None

    async def publish(self, value: str, *, key: str = SELF,
                      lifetime_seconds: float = DEFAULT_LIFETIME,
                      ttl_seconds: float = 300) -> NameRecord:
        """Raises: InvalidInput (value, key), NotFound (no such key), NetworkError."""
        pair = await trio.to_thread.run_sync(self.keys_store.pair, key)
        signer = signing_key(pair)
        name = ipns.ipns_name(ipns.key_multihash(signer.public_key()))
        known = [r for r in [await trio.to_thread.run_sync(self._read_published, name)] if r]
        try:
            with trio.fail_after(self.lookup_timeout):
                found, _ = await self.dht.get(name)
            known.extend(found)
        except (NetworkError, trio.TooSlowError) as exc:
            log.info("ipns: could not ask the DHT for %s before publishing: %s", name, exc)
        sequence = max((r.sequence + 1 for r in known), default=0)
        record = ipns.make_record(signer, value, sequence=sequence,
                                  lifetime_seconds=lifetime_seconds, ttl_seconds=ttl_seconds)
        return await self._put(record)

    async def _put(self, record: ipns.IpnsRecord) -> NameRecord:
        await trio.to_thread.run_sync(self.records.keep, record)
        try:
            with trio.fail_after(self.lookup_timeout):
                await self.dht.put(record)
        except trio.TooSlowError as exc:
            raise Timeout(f"publishing {record.name} took over {self.lookup_timeout:g} s; "
                          "it is held here and republished") from exc
        return record.to_name_record("dht")

    async def republish_due(self, *, margin: float = REPUBLISH_MARGIN) -> int:
        """Re-sign and re-put our records that expire within ``margin`` seconds; how many.

        Raises:
            IpfsMcpError: the records on disk cannot be listed.
        """
        due = await trio.to_thread.run_sync(self._due, margin)
        done = 0
        for key_name, record in due[:MAX_REPUBLISH]:
            signer = signing_key(await trio.to_thread.run_sync(self.keys_store.pair, key_name))
            fresh = ipns.make_record(signer, record.value, sequence=record.sequence + 1,
                                     lifetime_seconds=DEFAULT_LIFETIME,
                                     ttl_seconds=record.ttl_ns / 1e9)
            try:
                await self._put(fresh)
                done += 1
            except (NetworkError, InvalidRecord) as exc:
                log.warning("ipns: republishing %s failed: %s", record.name, exc)
        return done

    def _due(self, margin: float) -> list[tuple[str, ipns.IpnsRecord]]:
        cutoff = int((datetime.now(UTC) + timedelta(seconds=margin)).timestamp() * 1e9)
        due = []
        for info in self.keys_store.keys():
            record = self._read_published(info.ipns_name)
            if record is not None and record.validity_ns <= cutoff:
                due.append((info.name, record))
        return due

    async def republish_forever(self, *, interval: float = REPUBLISH_INTERVAL,
                                dht_peers: Callable[[], int] = lambda: 1) -> None:
        """Run :meth:`republish_due` now and every ``interval`` seconds until cancelled
        (again as soon as a DHT peer appears, when a round ran with none)."""
        async def one_round() -> None:
            try:
                await self.republish_due()
            except IpfsMcpError as exc:
                log.warning("ipns: republishing: %s", exc)

        await publishing_rounds(one_round, interval, dht_peers)

    # -- resolving ----------------------------------------------------------------------
    async def resolve(self, name: str) -> NameRecord:
        """Raises: InvalidInput (not a key's name), NameNotFound (no valid record)."""
        key_name = ipns.ipns_name(ipns.name_multihash(name))
        found: list[tuple[ipns.IpnsRecord, str]] = []
        failures: list[str] = []
        held = await trio.to_thread.run_sync(self.records.valid, key_name)
        if held is not None:
            found.append((held, "local"))
        try:
            with trio.fail_after(self.lookup_timeout):
                records, refused = await self.dht.get(key_name)
            found.extend((r, "dht") for r in records)
            failures.extend(f"{peer} sent an invalid record ({why})"
                            for peer, why in refused.items())
        except (NetworkError, trio.TooSlowError) as exc:
            failures.append(f"dht: {exc or 'timed out'}")
        for router in self.routers:
            try:
                with trio.fail_after(self.lookup_timeout):
                    raws, errors = await router.ipns_records(key_name)
            except trio.TooSlowError:
                raws, errors = [], {"delegated routers": "timed out"}
            failures.extend(f"{url}: {why}" for url, why in errors.items())
            for raw in raws:
                try:
                    found.append((ipns.validate_record(key_name, raw), "delegated router"))
                except InvalidRecord as exc:
                    failures.append(f"a delegated router's record: {exc}")
        if not found:
            detail = f" ({'; '.join(failures)})" if failures else ""
            raise NameNotFound(f"no valid IPNS record of {key_name}{detail}")
        best = ipns.best_record([r for r, _ in found])
        return best.to_name_record(next(source for r, source in found if r is best))


class RunningNode(Protocol):
    """What names need of a running node (``p2p.node.P2PNode``): its host and routing."""

    @property
    def host(self) -> IHost: ...

    @property
    def routing(self) -> object: ...


class NamesWhenRunning:
    """The ``NameSystem`` of a node that starts in the background (the server's slot): each
    call waits for the node (``node()`` raises when there is none), then asks the
    :class:`NodeNames` made for that node."""

    def __init__(self, node: Callable[[], Awaitable[RunningNode]], repo_path: Path, *,
                 routers: Sequence[RecordRouter] = ()) -> None:
        self._node = node
        self.repo_path = Path(repo_path)
        self.routers = tuple(routers)
        self._made: tuple[RunningNode, NodeNames] | None = None

    async def names(self) -> NodeNames:
        """Raises: NodeNotRunning (from ``node()``), Unsupported (no Kademlia DHT)."""
        node = await self._node()
        if self._made is None or self._made[0] is not node:
            dht = getattr(node.routing, "dht", None)
            if not isinstance(dht, KadDHT):
                raise Unsupported("ipfs-mcp p2p node", "IPNS",
                                  "its routing keeps no DHT records")
            # The node republishes its records itself (P2PNode runs the republisher).
            made = NodeNames.for_host(node.host, dht, self.repo_path, routers=self.routers)
            self._made = (node, made)
        return self._made[1]

    async def publish(self, value: str, *, key: str = SELF,
                      lifetime_seconds: float = DEFAULT_LIFETIME,
                      ttl_seconds: float = 300) -> NameRecord:
        return await (await self.names()).publish(value, key=key,
                                                  lifetime_seconds=lifetime_seconds,
                                                  ttl_seconds=ttl_seconds)

    async def resolve(self, name: str) -> NameRecord:
        return await (await self.names()).resolve(name)

    async def last_published(self, key: str = SELF) -> NameRecord | None:
        return await (await self.names()).last_published(key)

    async def keys(self) -> list[KeyInfo]:
        return await (await self.names()).keys()

    async def generate_key(self, name: str) -> KeyInfo:
        return await (await self.names()).generate_key(name)
