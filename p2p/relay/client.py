"""The Circuit Relay v2 client: reservations on relays, and accepting relayed connections.

::

    RelayClient(host)
      ├── reserve(relay)      one RESERVE on the hop protocol: the relay keeps a slot for us
      │                       until the reservation's expiry and relays CONNECTs to us
      ├── run()               keeps the reservations on the configured relays, renewing each
      │                       before it expires and dropping a relay after repeated failures
      ├── stop handler        a relay's stop CONNECT (only from a relay we hold a slot on):
      │                       STATUS OK, then the stream is upgraded as an INBOUND connection
      ├── circuit_addrs()     ``<relay addr>/p2p/<relay>/p2p-circuit``, one per address a
      │                       relay with our slot listens on: added to the host's addresses
      │                       (identify, provider records) by :meth:`advertise`
      └── on_relayed          callbacks told of each new relayed connection, either way
                              (hole punching starts from there)

Written by hand over :mod:`.wire`, not with py-libp2p's ``circuit_v2`` client: see
:mod:`.circuit_dial` for what that one gets wrong against Kubo's relay.

A relay may be anywhere its address says; its address is dialled under the node's dial scope.
The connection to a relay with our slot is protected from pruning (the slot lives only while
it is open).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import anyio
import anyio.abc
import trio
from libp2p.abc import IHost, INetConn, INetStream
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from multiaddr import Multiaddr

from ipfs_mcp.backends.errors import RelayError
from ipfs_mcp.p2p._net import NET_ERRORS, close_quietly
from ipfs_mcp.p2p.host import not_an_inbound_handler, peer_info_from_addr

from .circuit_dial import dial_through_relay, open_hop, reach_relay
from .limits import RelayedConnection, relayed, track
from .wire import (
    STOP_PROTOCOL,
    HopMessage,
    ReservationInfo,
    Status,
    StopMessage,
    hop_reserve,
    limit_of,
    read_hop,
    read_stop,
    status_name,
    stop_status,
    write_message,
)

log = logging.getLogger(__name__)

__all__ = ["RelayClient", "RelayedHook"]

# A relay must answer a RESERVE within this (go-libp2p's client: 1 minute; a live relay
# answers in one round trip).
RESERVE_TIMEOUT = 15.0
# A relay that sends no stop CONNECT within this after opening the stream is cut off.
STOP_READ_TIMEOUT = 10.0
# Renew this long before expiry (or at half the remaining time, if that is sooner).
RENEW_MARGIN = 120.0
# Consecutive failures after which a relay is given up.
MAX_FAILURES = 3
# The wait after a failure before the next try: doubling from this, capped.
RETRY_FIRST, RETRY_MAX = 5.0, 300.0

_STOP_FAILURES: tuple[type[BaseException], ...] = (RelayError, trio.TooSlowError, *NET_ERRORS)

RelayedHook = Callable[[INetConn, RelayedConnection], object]
"""Told of each new relayed connection, once it is upgraded and in the swarm."""


@dataclass
class _Relay:
    info: PeerInfo
    reservation: ReservationInfo | None = None
    failures: int = 0
    next_try: float = 0.0
    errors: list[str] = field(default_factory=list)


class RelayClient:
    """Reservations on relays and the stop side of circuits, for one host.

    ``relays`` are ``/…/p2p/<relay id>`` addresses to keep a reservation on while
    :meth:`run` runs; :meth:`reserve` takes more at any time. Add to ``on_relayed`` to be
    told of each relayed connection (hole punching does).
    """

    def __init__(self, host: IHost, relays: Sequence[str | Multiaddr] = ()) -> None:
        self.host = host
        self._relays: dict[ID, _Relay] = {}
        for addr in relays:
            info = peer_info_from_addr(addr)
            self._relays[info.peer_id] = _Relay(info)
        self.on_relayed: list[RelayedHook] = []
        self._changed = trio.Event()  # set (and replaced) when a reservation changes
        host.set_stream_handler(STOP_PROTOCOL, self._on_stop)

    # -- reservations -------------------------------------------------------------------
    def reservations(self) -> dict[ID, ReservationInfo]:
        """The reservations held now, by relay."""
        now = time.time()
        return {peer: r.reservation for peer, r in self._relays.items()
                if r.reservation is not None and r.reservation.expire > now}

    async def reserve(self, relay: PeerInfo | ID) -> ReservationInfo:
        """Ask ``relay`` for a slot (or renew ours); what it granted. The relay joins those
        :meth:`run` keeps (the public preset hands in relays found among its peers).

        Raises:
            RelayError: the relay is unreachable, is no relay, refused (the error's
                ``status``: RESERVATION_REFUSED, RESOURCE_LIMIT_EXCEEDED, PERMISSION_DENIED),
                or answered out of turn or malformed.
        """
        info = relay if isinstance(relay, PeerInfo) else PeerInfo(relay, [])
        entry = self._relays.setdefault(info.peer_id, _Relay(info))
        if info.addrs:
            entry.info = info
        try:
            granted = await self._reserve_once(entry.info)
        except RelayError:
            entry.reservation = None
            self._poke()
            raise
        if entry.reservation is None:
            log.info("p2p: reservation on relay %s (%d s, %s)", info.peer_id,
                     max(granted.expire - int(time.time()), 0), _limit_text(granted))
        entry.reservation = granted
        entry.failures = 0
        ttl = max(granted.expire - time.time(), 0.0)
        entry.next_try = time.time() + max(ttl - min(RENEW_MARGIN, ttl / 2), 1.0)
        self.host.get_network().protect(info.peer_id, "relay-reservation")
        self._poke()
        return granted

    async def _reserve_once(self, info: PeerInfo) -> ReservationInfo:
        await reach_relay(self.host, info.peer_id, info.addrs)
        stream = await open_hop(self.host, info.peer_id)
        try:
            with trio.fail_after(RESERVE_TIMEOUT):
                await write_message(stream, hop_reserve())
                answer = await read_hop(stream)
        except trio.TooSlowError:
            raise RelayError(f"relay {info.peer_id} did not answer RESERVE within "
                             f"{RESERVE_TIMEOUT:.0f}s") from None
        finally:
            await close_quietly(stream)
        return _granted(info.peer_id, answer)

    async def changed(self) -> None:
        """Return at the next change of a reservation (taken, renewed, lost); the caller
        bounds the wait."""
        await self._changed.wait()

    def _poke(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def run(self, *,
                  task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
                  ) -> None:
        """Keep a reservation on each relay known: take it, renew it before it expires,
        retry a failed one with growing waits, give a relay up after :data:`MAX_FAILURES`
        failures in a row. Runs until cancelled."""
        task_status.started()
        while True:
            now = time.time()
            for peer, entry in list(self._relays.items()):
                if now >= entry.next_try:
                    await self._keep(peer, entry)
            wake = min((e.next_try for e in self._relays.values()), default=now + RETRY_MAX)
            with trio.move_on_after(max(wake - time.time(), 0.5)):
                await self._changed.wait()

    async def _keep(self, peer: ID, entry: _Relay) -> None:
        try:
            await self.reserve(entry.info)  # which also says when to renew
        except RelayError as exc:
            entry.failures += 1
            entry.errors = [*entry.errors[-4:], str(exc)]
            if entry.failures >= MAX_FAILURES:
                log.warning("p2p: giving relay %s up after %d failures: %s", peer,
                            entry.failures, exc)
                self._relays.pop(peer, None)
                self.host.get_network().unprotect(peer, "relay-reservation")
                return
            entry.next_try = time.time() + min(RETRY_FIRST * 2 ** (entry.failures - 1),
                                               RETRY_MAX)
            log.info("p2p: reservation on relay %s failed (%s); retrying", peer, exc)

    # -- addresses ----------------------------------------------------------------------
    def circuit_addrs(self) -> list[Multiaddr]:
        """``<relay addr>/p2p/<relay>/p2p-circuit`` for each held reservation: the relay's
        own public addresses from the reservation, else the address we reach it at."""
        out: list[Multiaddr] = []
        for peer, granted in self.reservations().items():
            bases = list(granted.relay_addrs) or list(self._relays[peer].info.addrs)
            for base in bases:
                text = str(base)
                if "/p2p-circuit" in text:
                    continue
                if f"/p2p/{peer}" not in text:
                    text = f"{text}/p2p/{peer}"
                out.append(Multiaddr(f"{text}/p2p-circuit"))
        return list(dict.fromkeys(out))

    def advertise(self) -> None:
        """Add :meth:`circuit_addrs` to what the host advertises (identify, provider records).

        ``host.get_addrs`` is wrapped rather than given an address factory: py-libp2p strips
        everything from an address's first ``/p2p/`` on, which would turn a circuit address
        into the relay's own.
        """
        original = self.host.get_addrs
        me = self.host.get_id()

        def get_addrs() -> list[Multiaddr]:
            return [*original(), *(Multiaddr(f"{a}/p2p/{me}") for a in self.circuit_addrs())]

        self.host.get_addrs = get_addrs  # type: ignore[method-assign]

    # -- the stop side ------------------------------------------------------------------
    async def _on_stop(self, stream: INetStream) -> None:
        """A relay connects someone to us: answer, then upgrade the circuit as inbound."""
        relay = stream.muxed_conn.peer_id
        try:
            with trio.fail_after(STOP_READ_TIMEOUT):
                msg = await read_stop(stream)
                if msg.type != StopMessage.CONNECT or not msg.HasField("peer"):
                    await write_message(stream, stop_status(Status.UNEXPECTED_MESSAGE))
                    raise RelayError(f"relay {relay} sent a stop message out of turn")
                if relay not in self.reservations():
                    # A relay we hold no slot on has no business connecting anyone to us.
                    await write_message(stream, stop_status(Status.PERMISSION_DENIED))
                    raise RelayError(f"peer {relay} relayed a connection without our "
                                     "reservation")
                initiator = ID(msg.peer.id)
                await write_message(stream, stop_status(Status.OK))
        except _STOP_FAILURES as exc:
            log.info("p2p: refused a relayed connection through %s: %s", relay, exc)
            await close_quietly(stream)
            return
        raw = RelayedConnection(stream, initiator=False, relay=relay, remote=initiator,
                                limit=limit_of(msg),
                                addr=Multiaddr(f"/p2p/{relay}/p2p-circuit/p2p/{initiator}"))
        not_an_inbound_handler()
        try:
            muxed = await self.host.get_network().upgrade_inbound_raw_conn(
                raw, raw.addr)
        except NET_ERRORS as exc:
            log.info("p2p: relayed connection from %s through %s failed its handshake: %r",
                     initiator, relay, exc)
            await close_quietly(stream)
            return
        track(muxed, raw)
        log.info("p2p: relayed connection from %s through relay %s", initiator, relay)
        self._tell(muxed, raw)

    def _tell(self, muxed: object, raw: RelayedConnection) -> None:
        conns = [c for c in self.host.get_network().get_connections(raw.remote)
                 if c.muxed_conn is muxed]
        for hook in list(self.on_relayed):
            try:
                hook(conns[0] if conns else muxed, raw)  # type: ignore[arg-type]
            except Exception:  # a hook's failure is its own; the connection stays
                log.exception("p2p: a relayed-connection hook failed")

    async def dial(self, addr: Multiaddr | str, target: ID) -> INetConn:
        """Connect to ``target`` through the relay ``addr`` names, and tell the hooks.

        Raises:
            InvalidInput, RelayError: as :func:`.circuit_dial.dial_through_relay`.
        """
        conn = await dial_through_relay(self.host, addr, target)
        raw = relayed(conn)
        if raw is not None:
            self._tell(conn.muxed_conn, raw)
        return conn


def _limit_text(granted: ReservationInfo) -> str:
    limit = granted.limit
    if not limit.limited:
        return "no limit per connection"
    return f"{limit.duration_s or '∞'} s and {limit.data_bytes or '∞'} bytes per connection"


def _granted(relay: ID, answer: HopMessage) -> ReservationInfo:
    """The reservation in a relay's answer to RESERVE.

    Raises:
        RelayError: the answer is no STATUS, is not OK, or holds no reservation.
    """
    if answer.type != HopMessage.STATUS:
        raise RelayError(f"relay {relay} answered RESERVE out of turn", "UNEXPECTED_MESSAGE")
    if answer.status != Status.OK:
        name = status_name(answer.status)
        raise RelayError(f"relay {relay} refused a reservation: {name}", name)
    if not answer.HasField("reservation"):
        raise RelayError(f"relay {relay} said OK but granted no reservation",
                         "MALFORMED_MESSAGE")
    addrs: list[Multiaddr] = []
    for raw in answer.reservation.addrs:
        try:
            addrs.append(Multiaddr(raw))
        except Exception:  # one unreadable address from the relay: skip it
            continue
    return ReservationInfo(expire=answer.reservation.expire, relay_addrs=tuple(addrs),
                           limit=limit_of(answer), voucher=bytes(answer.reservation.voucher))

