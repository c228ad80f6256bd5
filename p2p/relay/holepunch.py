"""Hole punching: DCUtR (``/libp2p/dcutr``) turns a relayed connection into a direct one.

Spec: libp2p/specs ``relay/DCUtR.md``; the roles and timing are go-libp2p's
(``p2p/protocol/holepunch``, Kubo 0.43), so each side interoperates with Kubo:

- **initiator**: the peer that *received* the relayed connection. Once the peer is
  identified, it tries a plain dial first if the peer has a public address, else opens a
  DCUtR stream, sends CONNECT with its addresses, times the answer (the RTT), reads the
  peer's CONNECT, sends SYNC, waits RTT/2 and dials. Up to :data:`MAX_ATTEMPTS` rounds.
- **responder**: the peer that dialled through the relay. It answers a DCUtR stream only on
  a relayed connection it opened (go-libp2p resets the others), sends its own CONNECT, and
  on SYNC dials at once.
- **simultaneous open**: both dials leave from the listen port (``reuseport``), so each
  NAT has a mapping for the other's packets and the two SYNs may meet as one TCP
  connection, which both sides dialled. Its security roles are fixed as go-libp2p (since
  v0.41) fixes them: the responder is the noise initiator, the initiator upgrades its dial
  as the noise responder; on the last round the initiator switches to noise initiator, as
  go-libp2p does for peers with the pre-0.41 roles. With no NAT between the two (a LAN,
  loopback) the initiator's SYN may instead reach the responder's listener first: both
  then wait as noise responders and the round times out; the next one usually settles it
  (go-libp2p behaves the same; there a plain dial would have connected first).

Addresses offered are the observed ones (``observed_addrs``: confirmed first, then those
one peer saw, as Kubo offers its observed addresses) and any public listen address; those
taken from the peer are its TCP ones (at most :data:`MAX_ADDRS`), and every dial still goes
through the node's dial scope. After a direct connection comes up new streams take it (the
swarm prefers direct connections) and the relayed one is closed after :attr:`relay_grace`
seconds, so streams already on it can finish.

Why not py-libp2p 0.8.1's ``relay/circuit_v2/dcutr.py``: it polls every connection every
2 s and initiates on any relayed connection, in both directions (go-libp2p: only the side
that received it), dials every peerstore address of a peer before each punch, answers
DCUtR streams on direct and inbound connections, sleeps fixed times on its paths, offers
its observed addresses rewritten to the listen port whatever their port, and logs every
failure away instead of raising. So it is written here, over the library's generated
``HolePunch`` message.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import anyio
import anyio.abc
import trio
from google.protobuf.message import DecodeError
from libp2p.abc import IHost, INetConn, INetStream, INetwork
from libp2p.connection_types import ConnectionType
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.rcmgr import Direction
from libp2p.relay.circuit_v2.pb.dcutr_pb2 import HolePunch as HolePunchMessage
from multiaddr import Multiaddr

from ipfs_mcp.backends.errors import HolePunchError, NetworkError

from .._net import NET_ERRORS, ConnectionEvents, FrameReader, close_quietly, frame, reset_quietly
from ..observed_addrs import is_public, thin_waist
from ..reuseport import listen_addrs_of, listen_port_only, listen_source

log = logging.getLogger(__name__)

__all__ = ["PROTOCOL", "HolePunch", "HolePunchConfig", "Punch", "read_message"]

PROTOCOL = TProtocol("/libp2p/dcutr")
MAX_MESSAGE = 4096  # go-libp2p's maxMsgSize: a larger message is refused unread
MAX_ADDRS = 16  # addresses taken from one CONNECT (go-libp2p keeps all; 4 KiB bounds them)
MAX_ATTEMPTS = 3  # go-libp2p's maxRetries
CONNECT = HolePunchMessage.CONNECT
SYNC = HolePunchMessage.SYNC
_NAMES: dict[int, str] = {CONNECT: "CONNECT", SYNC: "SYNC"}


@dataclass(frozen=True)
class HolePunchConfig:
    stream_timeout: float = 60.0  # the whole exchange (go-libp2p's StreamTimeout)
    dial_timeout: float = 10.0  # one round's dials (go-libp2p's directDialTimeout)
    relay_grace: float = 30.0  # seconds the relayed connection outlives the direct one
    identify_timeout: float = 30.0  # how long to wait for the peer's identify first


@dataclass(frozen=True)
class Punch:
    """One hole punch as it ended, for stats and the figures the lab reports."""

    peer: str
    role: str  # "initiator" | "responder"
    direct: bool
    rounds: int
    rtt: float | None  # seconds, as measured by the initiator (None: no exchange)
    seconds: float  # from the start of the first round to the direct connection (or end)
    error: str = ""


class OurAddresses(Protocol):
    """Where we may be reached from outside (``observed_addrs.ObservedAddrs``)."""

    def for_hole_punch(self, limit: int = 8) -> list[Multiaddr]: ...


async def read_message(reader: FrameReader, expected: int) -> HolePunchMessage:
    """The next DCUtR message, which must be of type ``expected``.

    Raises:
        HolePunchError: the stream ended, or the message is oversized, malformed or of
            another type.
    """
    try:
        body = await reader.next()
    except NetworkError as exc:  # oversized, or cut in the middle
        raise HolePunchError(f"dcutr: {exc}") from exc
    if body is None:
        raise HolePunchError("dcutr: the peer closed the stream mid-exchange")
    try:
        msg = HolePunchMessage.FromString(body)
    except DecodeError as exc:
        raise HolePunchError(f"dcutr: malformed message: {exc}") from exc
    if msg.type != expected:
        raise HolePunchError(f"dcutr: expected {_NAMES.get(expected)}, got type {msg.type}")
    return msg


def _message(kind: int, addrs: list[Multiaddr] = ()) -> bytes:  # type: ignore[assignment]
    msg = HolePunchMessage(type=kind, ObsAddrs=[a.to_bytes() for a in addrs])  # type: ignore[arg-type]
    return frame(msg.SerializeToString())


def _dialable(raw: list[bytes]) -> list[Multiaddr]:
    """The peer's TCP addresses from a CONNECT (relayed and other transports dropped)."""
    out: list[Multiaddr] = []
    for item in raw:
        addr = thin_waist(item)
        if addr is not None and str(addr) not in {str(a) for a in out}:
            out.append(addr)
        if len(out) == MAX_ADDRS:
            break
    return out


def _is_relayed(conn: object) -> bool:
    """Whether ``conn`` (a swarm or muxed connection) runs over a relay: the relay client
    builds such connections on a raw connection of type RELAYED, which the swarm copies up."""
    kind = getattr(conn, "get_connection_type", None)
    return kind is not None and kind() == ConnectionType.RELAYED


def _relayed_and(direction: Direction, conn: INetConn) -> bool:
    return _is_relayed(conn) and getattr(conn, "direction", None) == direction


class _RelayedArrivals(ConnectionEvents):
    """Tells of each new inbound relayed connection (the trigger of an initiator)."""

    def __init__(self, on_inbound_relayed: Callable[[ID], object]) -> None:
        super().__init__(lambda _peer: None)
        self._tell = on_inbound_relayed

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        if _relayed_and(Direction.INBOUND, conn):
            self._tell(conn.muxed_conn.peer_id)


class HolePunch:
    """The DCUtR service of one host: answers DCUtR streams and starts a punch when a
    relayed connection comes in. Run it in the node's nursery (``nursery.start(hp.run)``).

    ``identified(peer)`` waits until the peer's identify is done (go-libp2p waits for it
    too: the peer's addresses and ours come from it).
    """

    def __init__(self, host: IHost, addrs: OurAddresses, *,
                 identified: Callable[[ID, float], Awaitable[object]] | None = None,
                 config: HolePunchConfig | None = None) -> None:
        self.host = host
        self.addrs = addrs
        self.identified = identified
        self.config = config or HolePunchConfig()
        self.punches: deque[Punch] = deque(maxlen=64)  # the latest, newest last
        self._recorded = trio.Event()  # set (and replaced) whenever a punch ends
        self._active: set[str] = set()  # peers with a punch under way (either role)
        self._nursery: trio.Nursery | None = None
        self._events = _RelayedArrivals(self._on_inbound_relayed)

    async def recorded(self) -> None:
        """Wait until the next punch ends (either way) and is in :attr:`punches`."""
        await self._recorded.wait()

    def _record(self, punch: Punch) -> None:
        self.punches.append(punch)
        self._recorded.set()
        self._recorded = trio.Event()

    # -- lifecycle ----------------------------------------------------------------------
    async def run(self, *,
                  task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
                  ) -> None:
        network = self.host.get_network()
        self.host.set_stream_handler(PROTOCOL, self._answer)
        network.register_notifee(self._events)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            network.remove_notifee(self._events)
            self.host.remove_stream_handler(PROTOCOL)

    def _spawn(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(fn, *args)

    def _on_inbound_relayed(self, peer_id: ID) -> None:
        if str(peer_id) not in self._active:
            self._spawn(self._punch_when_identified, peer_id)

    # -- the connections to a peer ------------------------------------------------------
    def direct(self, peer_id: ID) -> list[INetConn]:
        return [c for c in self.host.get_network().get_connections(peer_id)
                if not _is_relayed(c)]

    def _our_addrs(self) -> list[Multiaddr]:
        out = self.addrs.for_hole_punch()
        for addr in listen_addrs_of(self.host.get_network()):  # type: ignore[arg-type]
            tw = thin_waist(addr)
            if tw is not None and is_public(tw) and str(tw) not in {str(a) for a in out}:
                out.append(tw)
        return out

    # -- initiator ----------------------------------------------------------------------
    async def _punch_when_identified(self, peer_id: ID) -> None:
        if self.identified is not None:
            with trio.move_on_after(self.config.identify_timeout):
                try:
                    await self.identified(peer_id, self.config.identify_timeout)
                except NetworkError as exc:
                    log.debug("dcutr: %s not identified: %r", peer_id, exc)
        try:
            await self.direct_connect(peer_id)
        except NetworkError as exc:
            log.info("dcutr: hole punch with %s failed: %s", peer_id, exc)

    async def direct_connect(self, peer_id: ID) -> INetConn:
        """A direct connection to ``peer_id``: the one there is, a plain dial to its public
        addresses, or a hole punch (up to :data:`MAX_ATTEMPTS` rounds) over the relayed
        connection.

        Raises:
            HolePunchError: no direct connection came of it; the error says why.
        """
        if conns := self.direct(peer_id):
            return conns[0]
        key = str(peer_id)
        if key in self._active:
            raise HolePunchError(f"dcutr: a hole punch with {peer_id} is already under way")
        self._active.add(key)
        start = trio.current_time()
        rounds, rtt, error = 0, None, ""
        try:
            public = [a for a in self._peer_addrs(peer_id) if is_public(a)]
            if public and await self._dial(peer_id, public, as_client=True):
                return self._done(peer_id, "initiator", 0, None, start)
            for rounds in range(1, MAX_ATTEMPTS + 1):
                theirs, rtt = await self._exchange(peer_id)
                await trio.sleep(rtt / 2)  # the SYNC's way to the peer: then both dial
                # The last round takes the other security role (go-libp2p's fallback for
                # peers with the pre-0.41 roles).
                if await self._dial(peer_id, theirs, as_client=rounds == MAX_ATTEMPTS):
                    return self._done(peer_id, "initiator", rounds, rtt, start)
            error = f"no direct connection after {MAX_ATTEMPTS} rounds"
        except HolePunchError as exc:
            error = str(exc)
        finally:
            self._active.discard(key)
        self._record(Punch(key, "initiator", False, rounds, rtt,
                           trio.current_time() - start, error))
        raise HolePunchError(f"hole punching with {peer_id} failed: {error}")

    def _peer_addrs(self, peer_id: ID) -> list[Multiaddr]:
        try:
            known = self.host.get_peerstore().addrs(peer_id)
        except Exception:  # the peerstore raises for a peer it holds no address of
            return []
        return _dialable([a.to_bytes() for a in known])

    async def _exchange(self, peer_id: ID) -> tuple[list[Multiaddr], float]:
        """CONNECT, CONNECT back (timed), SYNC: the peer's addresses and the RTT."""
        ours = self._our_addrs()
        if not ours:
            raise HolePunchError("we know no address of ours to offer (no peer has told us "
                                 "where it sees us yet)")
        # Over the relayed connection, never a new dial (go-libp2p: WithNoDial): with no
        # direct connection the swarm has only that one to open the stream on.
        if not any(_is_relayed(c) for c in self.host.get_network().get_connections(peer_id)):
            raise HolePunchError(f"no relayed connection to {peer_id} to coordinate over")
        try:
            stream = await self.host.new_stream(peer_id, [PROTOCOL])
        except NET_ERRORS as exc:
            raise HolePunchError(f"{peer_id} does not speak {PROTOCOL}: {exc}") from exc
        try:
            with trio.fail_after(self.config.stream_timeout):
                reader = FrameReader(stream, MAX_MESSAGE)
                sent = trio.current_time()
                await stream.write(_message(CONNECT, ours))
                answer = await read_message(reader, CONNECT)
                rtt = trio.current_time() - sent
                theirs = _dialable(list(answer.ObsAddrs))
                if not theirs:
                    raise HolePunchError(f"{peer_id} offered no TCP address to dial")
                await stream.write(_message(SYNC))
            return theirs, rtt
        except trio.TooSlowError:
            raise HolePunchError(f"{peer_id} did not answer within "
                                 f"{self.config.stream_timeout:.0f}s") from None
        except NET_ERRORS as exc:
            raise HolePunchError(f"the DCUtR stream to {peer_id} broke: {exc}") from exc
        finally:
            await close_quietly(stream)

    # -- responder ----------------------------------------------------------------------
    async def _answer(self, stream: INetStream) -> None:
        muxed = stream.muxed_conn
        peer_id = muxed.peer_id
        key = str(peer_id)
        conn = next((c for c in self.host.get_network().get_connections(peer_id)
                     if c.muxed_conn is muxed), None)
        # go-libp2p answers only on a relayed connection that this side dialled.
        if conn is None or not _relayed_and(Direction.OUTBOUND, conn) or key in self._active:
            await reset_quietly(stream)
            return
        self._active.add(key)
        start = trio.current_time()
        try:
            with trio.fail_after(self.config.stream_timeout):
                reader = FrameReader(stream, MAX_MESSAGE)
                offer = await read_message(reader, CONNECT)
                theirs = _dialable(list(offer.ObsAddrs))
                ours = self._our_addrs()
                if not theirs or not ours:
                    raise HolePunchError("no address to dial" if not theirs
                                         else "no address of ours to offer")
                await stream.write(_message(CONNECT, ours))
                await read_message(reader, SYNC)
            await close_quietly(stream)
            if await self._dial(peer_id, theirs, as_client=True):
                self._done(peer_id, "responder", 1, None, start)
                return
            error = "the dial on SYNC did not connect"
        except trio.TooSlowError:
            error = f"no SYNC within {self.config.stream_timeout:.0f}s"
        except (HolePunchError, *NET_ERRORS) as exc:  # type: ignore[misc]
            error = str(exc)
        finally:
            self._active.discard(key)
        await reset_quietly(stream)
        log.info("dcutr: answering %s: %s", peer_id, error)
        self._record(Punch(key, "responder", False, 1, None,
                           trio.current_time() - start, error))

    # -- dialling -----------------------------------------------------------------------
    async def _dial(self, peer_id: ID, addrs: list[Multiaddr], *, as_client: bool) -> bool:
        """Dial every address at once from the listen port, until one connects directly or
        the round's time is up; whether a direct connection exists then (the peer's dial
        may be the one that made it)."""
        network = self.host.get_network()
        done = trio.Event()

        async def one(addr: Multiaddr) -> None:
            source = listen_source(listen_addrs_of(network), addr)  # type: ignore[arg-type]
            try:
                with listen_port_only():
                    if as_client:
                        await network.dial_addr(addr, peer_id, source)
                    else:
                        await network.dial_addr_as_responder(
                            addr, peer_id, source)
            except NET_ERRORS as exc:
                log.debug("dcutr: dialling %s at %s: %r", peer_id, addr, exc)
                return
            done.set()

        with trio.move_on_after(self.config.dial_timeout):
            async with trio.open_nursery() as nursery:
                for addr in addrs:
                    nursery.start_soon(one, addr)
                nursery.start_soon(self._until_direct, peer_id, done)
                await done.wait()
                nursery.cancel_scope.cancel()
        return bool(self.direct(peer_id))

    async def _until_direct(self, peer_id: ID, done: trio.Event) -> None:
        """Set ``done`` when a direct connection to the peer appears by any way (its dial
        reaching our listener counts as much as ours)."""
        arrived = trio.Event()
        events = ConnectionEvents(lambda p: arrived.set() if p == peer_id else None)
        network = self.host.get_network()
        network.register_notifee(events)
        try:
            for _ in range(64):  # each wake-up is one new connection to the peer
                if self.direct(peer_id):
                    done.set()
                    return
                await arrived.wait()
                arrived = trio.Event()
        finally:
            network.remove_notifee(events)

    def _done(self, peer_id: ID, role: str, rounds: int, rtt: float | None,
              start: float) -> INetConn:
        conn = self.direct(peer_id)[0]
        self._record(Punch(str(peer_id), role, True, rounds, rtt,
                           trio.current_time() - start))
        log.info("dcutr: direct connection with %s (%s, %d round(s))", peer_id, role, rounds)
        self._spawn(self._close_relayed_later, peer_id)
        return conn

    async def _close_relayed_later(self, peer_id: ID) -> None:
        """Close the relayed connections to ``peer_id`` after the grace period, if a
        direct one is still there (never strand the peer)."""
        await trio.sleep(self.config.relay_grace)
        if not self.direct(peer_id):
            return
        for conn in self.host.get_network().get_connections(peer_id):
            if _is_relayed(conn):
                with trio.move_on_after(5):
                    try:
                        await conn.close()
                    except NET_ERRORS as exc:
                        log.debug("dcutr: closing the relayed connection to %s: %r",
                                  peer_id, exc)

