"""The Circuit Relay v2 service (the ``hop`` side): reservations, and circuits spliced
between a source and a peer that reserved a slot here.

Spec: libp2p/specs ``relay/circuit-v2.md``; behaviour as go-libp2p's
``p2p/protocol/circuitv2/relay/relay.go`` (Kubo's ``Swarm.RelayService``):

* one request per hop stream, read within ``stream_timeout``;
* ``RESERVE``: refused over a relayed connection (``PERMISSION_DENIED``) and past the
  ledger's bounds (``RESERVATION_REFUSED``); granted with the expiry (Unix seconds), the
  relay's addresses and a voucher: a signed envelope (domain ``libp2p-relay-rsvp``,
  payload type ``0x0302``, ``ReservationVoucher{relay, peer, expiration}``) signed with the
  relay's key, which go-libp2p's client verifies; the peer is then protected from the
  connection policy's pruning until its slot expires;
* ``CONNECT``: the destination must hold a live reservation (``NO_RESERVATION``) and be
  connected now (the relay never dials it: ``CONNECTION_FAILED``); a ``stop`` CONNECT
  carries the source and the limit, and only the destination's STATUS OK makes the
  relay answer OK, with the same limit, to the source;
* the circuit then copies bytes both ways, at most ``limit_data`` in each direction (then
  that direction is closed, as go-libp2p's ``relayLimited`` half-closes it) and for at
  most ``limit_duration`` seconds (then both streams are reset); an error on either side
  resets both.

Every step is bounded: the message size (:data:`.wire.MAX_MESSAGE`), the requests
answered at once, the time of each step, and the reservations and circuits
(:mod:`.accounting`). The ledger forgets a peer's reservation when its last connection
closes. Circuits run in the service's own nursery, so stopping the service ends them.

Why not py-libp2p 0.8.1's hop (``libp2p/relay/circuit_v2/protocol.py``): it takes the
reservation for whatever peer id the RESERVE message names (anyone can reserve, or
refresh, another peer's slot), reads any number of requests per stream, writes a STATUS
message into the relayed byte stream when a limit is hit (corrupting the circuit where
go-libp2p only closes it), shares one byte budget across both directions, keys active
circuits by peer id (a second circuit of the same peer overwrites the first), has no
per-IP bound, sleeps fixed times on its paths, and dials the destination when it is not
connected. So the service is written here over :mod:`.wire`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence

import anyio
import anyio.abc
import trio
from libp2p.abc import IHost, INetStream, INetwork
from libp2p.connection_types import ConnectionType
from libp2p.crypto.keys import PrivateKey
from libp2p.peer.envelope import Envelope, make_unsigned
from libp2p.peer.id import ID
from libp2p.relay.circuit_v2.pb.circuit_pb2 import Reservation, Voucher
from multiaddr import Multiaddr

from ipfs_mcp.backends.core.ip_scope import Scope, host_of_multiaddr, scope_of_ip
from ipfs_mcp.backends.errors import RelayError

from .._net import NET_ERRORS, ConnectionEvents, close_quietly, reset_quietly
from ..host import is_http_addr
from .accounting import Circuit, RelayAccounting, RelayCounts, RelayResources
from .wire import (
    HOP_PROTOCOL,
    STOP_PROTOCOL,
    HopMessage,
    RelayLimit,
    Status,
    StopMessage,
    hop_status,
    read_hop,
    read_stop,
    stop_connect,
    write_message,
)

log = logging.getLogger(__name__)

# A stream or connection that is not the usual kind may lack what we ask of it.
_ASKING_ERRORS: tuple[type[BaseException], ...] = (AttributeError, *NET_ERRORS)

# The connection policy never prunes a protected peer: a peer holding a slot keeps its
# connection (go-libp2p tags it in its connection manager) until the slot expires.
PROTECT_TAG = "relay-reservation"
GC_PERIOD = 60.0  # seconds between unprotecting peers whose slot expired, as go-libp2p's gc

__all__ = ["PROTECT_TAG", "VOUCHER_DOMAIN", "VOUCHER_PAYLOAD_TYPE", "RelayService",
           "reservation_addrs", "sign_voucher"]

VOUCHER_DOMAIN = "libp2p-relay-rsvp"
VOUCHER_PAYLOAD_TYPE = bytes([0x03, 0x02])  # go-libp2p's proto.RecordCodec


def sign_voucher(key: PrivateKey, relay: ID, peer: ID, expiration: int) -> bytes:
    """The reservation voucher go-libp2p's ``record.Seal`` makes: a marshalled signed
    envelope over ``ReservationVoucher{relay, peer, expiration}``."""
    payload = Voucher(relay=relay.to_bytes(), peer=peer.to_bytes(),
                      expiration=expiration).SerializeToString()
    signature = key.sign(make_unsigned(VOUCHER_DOMAIN, VOUCHER_PAYLOAD_TYPE, payload))
    return Envelope(key.get_public_key(), VOUCHER_PAYLOAD_TYPE, payload,
                    signature).marshal_envelope()


def reservation_addrs(addrs: Iterable[Multiaddr], relay: ID) -> list[Multiaddr]:
    """The relay's addresses to hand a client, each ending in ``/p2p/<relay>``.

    go-libp2p hands out public addresses only. A relay with none (on a LAN, or on loopback
    in tests) hands out what it has, so its clients can still name it; unspecified
    (``0.0.0.0``), relayed and HTTP addresses never.
    """
    found: list[tuple[Scope, Multiaddr]] = []
    suffix = f"/p2p/{relay.to_base58()}"
    for addr in addrs:
        text = str(addr)
        if "/p2p-circuit" in text or is_http_addr(text):  # no circuit runs over those
            continue
        if "/p2p/" in text:
            if not text.endswith(suffix):
                continue  # another peer's id: not ours to hand out
            text = text[: -len(suffix)]
        host = host_of_multiaddr(text)
        if host is None or host in ("0.0.0.0", "::"):
            continue
        try:
            scope = scope_of_ip(host)
        except ValueError:
            scope = Scope.PUBLIC  # a DNS name: meant to be reached from outside
        found.append((scope, Multiaddr(text + suffix)))
    if any(scope == Scope.PUBLIC for scope, _ in found):
        return [addr for scope, addr in found if scope == Scope.PUBLIC]
    return [addr for _, addr in found]


def _is_relayed(stream: INetStream) -> bool:
    """Whether ``stream`` runs over a relayed connection (the spec: no reservation nor
    circuit over one)."""
    conn = stream.muxed_conn
    try:
        if conn.get_connection_type() == ConnectionType.RELAYED:
            return True
        addrs: Sequence[object] = conn.get_transport_addresses()
    except _ASKING_ERRORS:
        return False
    return any("/p2p-circuit" in str(a) for a in addrs)


def _remote_ip(stream: INetStream) -> str | None:
    try:
        remote = stream.get_remote_address()
    except _ASKING_ERRORS:
        return None
    return remote[0] if remote else None


class RelayService:
    """Serves ``/libp2p/circuit/relay/0.2.0/hop`` on ``host`` while :meth:`run` runs.

    ``accounting`` holds the reservations and circuits (its resources bound them);
    ``listen_addrs`` gives the relay's addresses for reservations (default: the host's).
    """

    def __init__(self, host: IHost, accounting: RelayAccounting | None = None, *,
                 listen_addrs: Callable[[], Iterable[Multiaddr]] | None = None) -> None:
        self.host = host
        self.accounting = accounting or RelayAccounting()
        self._listen_addrs = listen_addrs or host.get_addrs
        self._nursery: trio.Nursery | None = None
        self._answering = 0
        self._protected: set[str] = set()
        self._events = ConnectionEvents(lambda _peer: None, self._disconnected)
        res = self.resources
        self.limit = RelayLimit(int(res.limit_duration), res.limit_data)

    @property
    def resources(self) -> RelayResources:
        return self.accounting.resources

    def counts(self) -> RelayCounts:
        """Reservations held and circuits open now."""
        return self.accounting.counts()

    async def run(self, *,
                  task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
                  ) -> None:
        """Serve until cancelled: ``await nursery.start(service.run)``. Stopping ends every
        circuit and forgets every reservation."""
        network = self.host.get_network()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self.host.set_stream_handler(HOP_PROTOCOL, self._handle)
            network.register_notifee(self._events)
            try:
                task_status.started()
                while True:
                    await trio.sleep(GC_PERIOD)
                    self._unprotect_expired()
            finally:
                self._nursery = None
                self.host.remove_stream_handler(HOP_PROTOCOL)
                network.remove_notifee(self._events)
                nursery.cancel_scope.cancel()

    def _disconnected(self, network: INetwork, peer: ID) -> None:
        if not network.get_connections(peer):
            self.accounting.forget_peer(str(peer))
            self._protected.discard(str(peer))  # the tag store forgets a gone peer itself

    def _protect(self, peer: ID) -> None:
        network = self.host.get_network()
        if hasattr(network, "protect"):
            network.protect(peer, PROTECT_TAG)
            self._protected.add(str(peer))

    def _unprotect_expired(self) -> None:
        network = self.host.get_network()
        for key in [p for p in self._protected if self.accounting.reservation(p) is None]:
            self._protected.discard(key)
            if hasattr(network, "unprotect"):
                network.unprotect(ID.from_base58(key), PROTECT_TAG)

    # -- one hop stream -------------------------------------------------------------------
    async def _handle(self, stream: INetStream) -> None:
        if self._nursery is None or self._answering >= self.resources.max_requests:
            await reset_quietly(stream)  # as go-libp2p's resource manager refusing the stream
            return
        self._answering += 1
        try:
            await self._answer(stream)
        finally:
            self._answering -= 1

    async def _answer(self, stream: INetStream) -> None:
        res = self.resources
        msg: HopMessage | None = None
        with trio.move_on_after(res.stream_timeout):
            try:
                msg = await read_hop(stream)
            except RelayError as exc:
                log.debug("relay: unreadable hop request: %s", exc)
        if msg is None or msg.type not in (HopMessage.RESERVE, HopMessage.CONNECT):
            await self._refuse(stream, Status.MALFORMED_MESSAGE)
        elif _is_relayed(stream):
            await self._refuse(stream, Status.PERMISSION_DENIED)
        elif msg.type == HopMessage.RESERVE:
            await self._reserve(stream)
        else:
            await self._connect(stream, msg)

    async def _refuse(self, stream: INetStream, status: int) -> None:
        await self._send(stream, hop_status(status))
        await close_quietly(stream)

    async def _send(self, stream: INetStream, msg: HopMessage | StopMessage) -> bool:
        """Write ``msg`` within the stream timeout; whether it went."""
        with trio.move_on_after(self.resources.stream_timeout):
            try:
                await write_message(stream, msg)
                return True
            except RelayError as exc:
                log.debug("relay: answer not sent: %s", exc)
        await reset_quietly(stream)
        return False

    async def _reserve(self, stream: INetStream) -> None:
        peer = stream.muxed_conn.peer_id
        ip = _remote_ip(stream)
        if ip is None:
            await self._refuse(stream, Status.RESERVATION_REFUSED)
            return
        try:
            granted = self.accounting.reserve(str(peer), ip)
        except RelayError as exc:
            log.debug("relay: reservation of %s refused: %s", peer, exc)
            await self._refuse(stream, Status.Value(exc.status))
            return
        expire = int(granted.expires)
        relay = self.host.get_id()
        reservation = Reservation(
            expire=expire,
            addrs=[a.to_bytes() for a in reservation_addrs(self._listen_addrs(), relay)],
            voucher=sign_voucher(self.host.get_private_key(), relay, peer, expire))
        if await self._send(stream, hop_status(Status.OK, reservation=reservation,
                                               limit=self.limit)):
            self._protect(peer)
            await close_quietly(stream)
        else:
            self.accounting.forget_peer(str(peer))  # never delivered: not held

    async def _connect(self, source: INetStream, msg: HopMessage) -> None:
        src = source.muxed_conn.peer_id
        if not msg.HasField("peer") or not msg.peer.id:
            await self._refuse(source, Status.MALFORMED_MESSAGE)
            return
        dst = ID(msg.peer.id)
        try:
            circuit = self.accounting.open_circuit(str(src), str(dst))
        except RelayError as exc:
            log.debug("relay: circuit %s -> %s refused: %s", src, dst, exc)
            await self._refuse(source, Status.Value(exc.status))
            return
        try:
            target = await self._open_stop(src, dst)
        except BaseException:
            self.accounting.close_circuit(circuit)
            raise
        if target is None:
            self.accounting.close_circuit(circuit)
            await self._refuse(source, Status.CONNECTION_FAILED)
            return
        if not await self._send(source, hop_status(Status.OK, limit=self.limit)):
            await reset_quietly(target)
            self.accounting.close_circuit(circuit)
            return
        nursery = self._nursery
        if nursery is None:  # stopped meanwhile
            await reset_quietly(source)
            await reset_quietly(target)
            self.accounting.close_circuit(circuit)
            return
        nursery.start_soon(self._splice, source, target, circuit)

    async def _open_stop(self, src: ID, dst: ID) -> INetStream | None:
        """A ``stop`` stream to ``dst`` that accepted a circuit from ``src``, or None.

        Only over a connection that exists: the relay never dials a destination.
        """
        res = self.resources
        if not self.host.get_network().get_connections(dst):
            log.debug("relay: %s is not connected", dst)
            return None
        stream: INetStream | None = None
        with trio.move_on_after(res.connect_timeout):
            try:
                stream = await self.host.new_stream(dst, [STOP_PROTOCOL])
            except NET_ERRORS as exc:
                log.debug("relay: no stop stream to %s: %r", dst, exc)
        if stream is None:
            return None
        answer: StopMessage | None = None
        with trio.move_on_after(res.handshake_timeout):
            try:
                await write_message(stream, stop_connect(src, self.limit))
                answer = await read_stop(stream)
            except RelayError as exc:
                log.debug("relay: stop handshake with %s failed: %s", dst, exc)
        if answer is None or answer.type != StopMessage.STATUS or answer.status != Status.OK:
            await reset_quietly(stream)
            return None
        return stream

    # -- the circuit ------------------------------------------------------------------------
    async def _splice(self, source: INetStream, target: INetStream, circuit: Circuit) -> None:
        res = self.resources
        started = time.monotonic()
        broken = False
        try:
            with trio.move_on_after(res.limit_duration) as timer:
                async with trio.open_nursery() as pair:
                    pair.start_soon(self._pipe, source, target, pair.cancel_scope)
                    pair.start_soon(self._pipe, target, source, pair.cancel_scope)
                broken = pair.cancel_scope.cancelled_caught
            if timer.cancelled_caught or broken:
                await reset_quietly(source)
                await reset_quietly(target)
            else:
                await close_quietly(source)
                await close_quietly(target)
        finally:
            self.accounting.close_circuit(circuit)
            log.debug("relay: circuit %s -> %s ended after %.1f s%s", circuit.source,
                      circuit.destination, time.monotonic() - started,
                      " (reset)" if broken else "")

    async def _pipe(self, src: INetStream, dst: INetStream, pair: trio.CancelScope) -> None:
        """Copy ``src`` to ``dst`` up to the byte limit, then half-close ``dst`` (its reader
        sees the end); a broken stream cancels ``pair``, resetting both."""
        res = self.resources
        left = res.limit_data
        try:
            while left > 0:
                try:
                    data = await src.read(min(res.buffer_size, left))
                except EOFError:  # py-libp2p's StreamEOF: the sender closed its side
                    data = b""
                if not data:
                    break
                await dst.write(data)
                left -= len(data)
            await dst.close_write()  # type: ignore[attr-defined]  # NetStream has it
        except NET_ERRORS as exc:
            log.debug("relay: circuit stream broke: %r", exc)
            pair.cancel()
