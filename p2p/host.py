"""Building the py-libp2p host: TCP, noise only, yamux (mplex on request).

py-libp2p accepts ``/plaintext/2.0.0`` (and secio, and TLS) unless told otherwise, so the
security options are always passed explicitly with noise as the only entry: a peer that
offers nothing but plaintext fails the security negotiation and is dropped.

Yamux is :class:`FrameAtomicYamux`: py-libp2p's yamux with every frame written whole even
when the task writing it is cancelled, so that cancelling any network work (a fetch, the
DHT lookup it started) leaves the connection usable.
"""

from __future__ import annotations

import contextvars
import logging
import struct
from collections.abc import Callable, Sequence
from typing import Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.abc import IHost, INetStream, IRawConnection
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.host.basic_host import BasicHost
from libp2p.io.trio import TrioTCPStream
from libp2p.network.config import ConnectionConfig
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.network.swarm import Swarm
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer import muxer_multistream
from libp2p.stream_muxer.exceptions import MuxedConnUnavailable
from libp2p.stream_muxer.mplex.mplex import MPLEX_PROTOCOL_ID, Mplex
from libp2p.stream_muxer.yamux.yamux import (
    GO_AWAY_PROTOCOL_ERROR,
    TYPE_GO_AWAY,
    YAMUX_HEADER_FORMAT,
    Yamux,
)
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID

from ipfs_mcp.backends.core.ip_scope import host_of_multiaddr
from ipfs_mcp.backends.errors import InvalidInput

from ._net import NET_ERRORS
from .config import NodeConfig
from .connection_policy import ConnectionPolicy, install_connection_policy
from .dialing import DialPolicy, gate_dials
from .discovery import announce_interface_addrs
from .relay.circuit_dial import is_circuit, parse_circuit
from .reuseport import install_port_reuse
from .routing import KAD_PROTOCOL, kad_ids_for
from .stream_negotiation import answer_in_one_write
from .transport_tuning import (
    BufferedTCPStream,
    WindowedBuffers,
    apply_transport_tuning,
    grant_on_accept,
)

log = logging.getLogger(__name__)

# How long one yamux frame may take to reach the socket once its write has begun. A peer
# that reads nothing for this long has its connection closed.
FRAME_WRITE_TIMEOUT = 10.0


def parse_multiaddr(text: str | multiaddr.Multiaddr) -> multiaddr.Multiaddr:
    """Raises: InvalidInput: not a multiaddr."""
    if isinstance(text, multiaddr.Multiaddr):
        return text
    try:
        return multiaddr.Multiaddr(text)
    except Exception as exc:  # multiaddr raises several unrelated types for bad input
        raise InvalidInput(f"not a multiaddr: {text!r} ({exc})") from exc


def peer_info_from_addr(addr: str | multiaddr.Multiaddr) -> PeerInfo:
    """A ``/ip4/.../tcp/.../p2p/<id>`` address as a PeerInfo.

    A relayed address, ``<relay addr>/p2p/<relay>/p2p-circuit/p2p/<id>``, names the peer
    after ``/p2p-circuit`` (its first ``/p2p/`` is the relay); its PeerInfo keeps the
    address up to ``/p2p-circuit``, which :mod:`.relay.circuit_dial` dials.

    Raises:
        InvalidInput: not a multiaddr, it names no peer (no ``/p2p/`` part, or none after
            ``/p2p-circuit``), or a relayed address of more than one hop.
    """
    maddr = parse_multiaddr(addr)
    if is_circuit(maddr):
        circuit = parse_circuit(maddr)
        if circuit.target is None:
            raise InvalidInput(f"{addr} names no peer: add /p2p/<peer id> after /p2p-circuit")
        return PeerInfo(circuit.target, [circuit.for_target(circuit.target)])
    try:
        peer = maddr.value_for_protocol("p2p")
    except Exception:
        peer = None
    if not peer:
        raise InvalidInput(f"{addr} names no peer: add /p2p/<peer id>")
    try:
        peer_id = ID.from_base58(str(peer))
    except Exception as exc:
        raise InvalidInput(f"{addr} has an invalid peer id: {exc}") from exc
    transport = maddr.decapsulate(multiaddr.Multiaddr(f"/p2p/{peer}"))
    return PeerInfo(peer_id, [transport])


def build_host(key_pair: KeyPair, config: NodeConfig,
               dial_policy: DialPolicy | None = None,
               connection_policy: ConnectionPolicy | None = None) -> IHost:
    """A host with our security and muxer choices, that dials only what ``dial_policy``
    (by default ``config.dial_policy()``) permits and keeps its connections as
    ``connection_policy`` (by default the role's limits, on a 30 s period) says: it never dials
    to reach a count, and it prunes.

    Raises:
        BackendUnavailable: the dial scope cannot be applied to this py-libp2p.
    """
    apply_transport_tuning()  # yamux frames and window updates for bulk transfers
    _make_yamux_connections_of(FrameAtomicYamux)
    profile = config.profile
    muxers: dict[TProtocol, type] = {TProtocol(YAMUX_PROTOCOL_ID): FrameAtomicYamux}
    if config.enable_mplex:
        muxers[TProtocol(MPLEX_PROTOCOL_ID)] = Mplex
    security = {
        TProtocol(NOISE_PROTOCOL_ID): NoiseTransport(
            key_pair, noise_privkey=create_x25519_key_pair().private_key),
    }
    connections = ConnectionConfig(
        min_connections=0,  # never dial on our own to reach a floor: nothing unasked-for
        low_watermark=profile.conn_low,
        high_watermark=profile.conn_high,
        max_connections=max(profile.conn_high, 1),
        grace_period=profile.conn_grace,
    )
    host = new_host(
        key_pair=key_pair,
        sec_opt=security,
        muxer_opt=muxers,
        listen_addrs=listen_multiaddrs(config.listen_addrs),
        enable_mDNS=config.mdns,
        bootstrap=list(config.bootstrap) or None,
        connection_config=connections,
        addrs_factory=_advertising(listen_multiaddrs(config.http_addrs)),
    )
    # Dials leave from the listen port, so a NAT maps them all to one public address;
    # installed first, so the dial scope checks these dials too.
    install_port_reuse(host.get_network())
    gate_dials(host.get_network(), dial_policy or config.dial_policy())
    install_connection_policy(host.get_network(),
                              connection_policy
                              or ConnectionPolicy(profile.connection_limits()))
    _never_dial_http(host.get_network())
    _buffer_tcp_reads(host.get_network())
    _end_inbound_handlers_with_their_connection(host.get_network())
    _offer_both_kad_ids(host)
    answer_in_one_write(host)  # multistream-select for the streams peers open
    if config.mdns and isinstance(host, BasicHost):
        announce_interface_addrs(host)
    return host


def listen_multiaddrs(addrs: Sequence[str]) -> list[multiaddr.Multiaddr]:
    return [parse_multiaddr(a) for a in addrs]


def is_http_addr(addr: str | multiaddr.Multiaddr) -> bool:
    """Whether ``addr`` is an HTTP endpoint (``.../http``, ``.../tls/http``, ``.../https``),
    which no libp2p transport dials."""
    return any(part in ("http", "https") for part in str(addr).split("/"))


# -- HTTP retrieval addresses ----------------------------------------------------------
# The node's /http addresses (config.http_addrs) are advertised after the libp2p ones,
# wherever the host's addresses go (identify, DHT provider records); peers learn them there,
# and dials never pick them.

def _advertising(http: list[multiaddr.Multiaddr]
                 ) -> Callable[[list[multiaddr.Multiaddr]], list[multiaddr.Multiaddr]] | None:
    if not http:
        return None
    return lambda candidates: [*candidates, *http]


def _never_dial_http(swarm: object) -> None:
    gate = getattr(swarm, "connection_gate", None)
    if gate is None:  # another network implementation: it has no such gate to ask
        return
    allowed = gate.is_allowed

    async def is_allowed(maddr: multiaddr.Multiaddr) -> bool:
        return not is_http_addr(maddr) and bool(await allowed(maddr))

    gate.is_allowed = is_allowed


class FrameAtomicYamux(Yamux):
    """Yamux whose frames are never cut in half by a cancellation.

    py-libp2p writes one yamux frame as one or more noise messages, each one socket write.
    If the writing task is cancelled in between, the peer receives half a frame, and every
    later frame on that connection, whichever stream it belongs to, is read as garbage.
    Here a frame, once its turn at the write lock has come, is written shielded; the
    cancellation takes effect right after it. Waiting for the lock stays cancellable, so
    a cancelled task never starts a frame. A frame that cannot be written within
    :data:`FRAME_WRITE_TIMEOUT` (the peer stopped reading) closes the connection, which
    cannot carry another frame anyway. The ACK of a stream the peer opened grants it a
    larger window (``transport_tuning.grant_on_accept``), and a peer that sends past a
    stream's window loses the connection (``transport_tuning.WindowedBuffers``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stream_buffers = WindowedBuffers(self)  # the receive window, enforced

    async def handle_incoming(self) -> None:
        await super().handle_incoming()
        violation = self.stream_buffers.violation
        if violation is None or self.event_closed.is_set():
            return
        log.info("yamux: %s sent past a stream's receive window (%s); closing the connection",
                 self.peer_id, violation)
        with trio.CancelScope(shield=True), trio.move_on_after(2):
            try:  # what go-yamux sends too; the peer may have stopped reading
                await self.secured_conn.write(struct.pack(
                    YAMUX_HEADER_FORMAT, 0, TYPE_GO_AWAY, 0, 0, GO_AWAY_PROTOCOL_ERROR))
            except NET_ERRORS as exc:
                log.debug("yamux: GO_AWAY to %s: %r", self.peer_id, exc)
            await self._cleanup_on_error()

    async def _write_frame(self, data: bytes) -> None:
        data = grant_on_accept(self, data)
        async with self._write_lock:
            with trio.CancelScope(shield=True):
                with trio.move_on_after(FRAME_WRITE_TIMEOUT) as stuck:
                    await self.secured_conn.write(data)
                if stuck.cancelled_caught:
                    log.info("yamux: %s read nothing for %.0fs; closing the connection",
                             self.peer_id, FRAME_WRITE_TIMEOUT)
                    with trio.move_on_after(2):
                        try:
                            await self.secured_conn.close()
                        except NET_ERRORS as exc:
                            log.debug("yamux: closing %s: %r", self.peer_id, exc)
                    raise MuxedConnUnavailable("the peer stopped reading")
        await trio.lowlevel.checkpoint()


# -- py-libp2p 0.8.1: the muxer class ------------------------------------------------------
# The upgrader builds every yamux connection from the class its own module names
# (``muxer_multistream.Yamux``), whatever class ``muxer_opt`` maps the protocol to; so that
# name is what picks ours. Read at each connection, set once per process (idempotent).

def _make_yamux_connections_of(cls: type[Yamux]) -> None:
    muxer_multistream.Yamux = cls  # type: ignore[misc]


# -- py-libp2p 0.8.1: the LAN DHT id ------------------------------------------------------
# The library's DHT opens every request stream for "/ipfs/kad/1.0.0" alone. Kubo and Helia
# answer peers on private and loopback addresses on their LAN DHT only,
# "/ipfs/lan/kad/1.0.0" (same wire format), and a Kubo DHT server files what arrives on the
# Amino id in its WAN DHT, which drops such addresses. So a request offers both ids, in
# the order Kubo's dual DHT would use for that peer (routing.kad_ids_for): the LAN id first
# when every address we reach the peer at is loopback or private. Other protocols' streams
# are left as they are.

def _peer_hosts(host: IHost, peer_id: ID) -> list[str]:
    """The IP addresses we reach ``peer_id`` at: its open connections' remote ends, or
    else the addresses the peerstore holds for it."""
    hosts: list[str] = []
    for conn in host.get_network().get_connections(peer_id):
        remote = getattr(conn.muxed_conn, "get_remote_address", lambda: None)()
        if remote:
            hosts.append(str(remote[0]))
    if not hosts:
        try:
            known = host.get_peerstore().addrs(peer_id)
        except Exception:  # the peerstore raises when it knows no address of the peer
            known = []
        hosts = [h for h in (host_of_multiaddr(str(a)) for a in known) if h]
    return hosts


def _offer_both_kad_ids(host: IHost) -> None:
    new_stream = host.new_stream
    amino_only = [TProtocol(KAD_PROTOCOL)]

    async def new_stream_offering_both(peer_id: ID, protocol_ids: Sequence[TProtocol]
                                       ) -> INetStream:
        if list(protocol_ids) == amino_only:
            protocol_ids = kad_ids_for(_peer_hosts(host, peer_id))
        return await new_stream(peer_id, protocol_ids)

    host.new_stream = new_stream_offering_both  # type: ignore[method-assign]


# -- py-libp2p 0.8.1: socket reads ---------------------------------------------------------
# Every raw TCP connection, inbound or outbound, gets a buffered reader under it before its
# security upgrade (see transport_tuning.BufferedTCPStream); other transports are left alone.

def _with_buffered_reads(raw_conn: object) -> object:
    if isinstance(raw_conn, RawConnection) and isinstance(raw_conn.stream, TrioTCPStream):
        raw_conn.stream = BufferedTCPStream(raw_conn.stream)
    return raw_conn


def _buffer_tcp_reads(swarm: object) -> None:
    if not isinstance(swarm, Swarm):  # another network implementation: leave it alone
        return
    outbound = swarm.upgrade_outbound_raw_conn
    inbound = swarm.upgrade_inbound_raw_conn

    async def upgrade_outbound(raw_conn: IRawConnection, peer_id: ID,
                               pre_scope: object = None) -> object:
        return await outbound(_with_buffered_reads(raw_conn), peer_id, pre_scope)  # type: ignore[arg-type]

    async def upgrade_inbound(raw_conn: IRawConnection, maddr: multiaddr.Multiaddr) -> object:
        return await inbound(_with_buffered_reads(raw_conn), maddr)  # type: ignore[arg-type]

    swarm.upgrade_outbound_raw_conn = upgrade_outbound  # type: ignore[method-assign]
    swarm.upgrade_inbound_raw_conn = upgrade_inbound  # type: ignore[method-assign]


# -- py-libp2p 0.8.1 workaround -----------------------------------------------------------
# The swarm keeps the listener's task for every inbound connection alive until the whole
# swarm stops ("await self.manager.wait_finished()"), and only then releases that
# connection's slot in its inbound limiter. On a long-running node this is one leaked task
# per connection ever accepted, and after ``max_connections`` of them every new inbound
# connection is refused. We end the handler when its own connection closes instead: the
# wrapped upgrade, when called from the inbound handler (marked by a context variable),
# waits for the muxed connection to close and then unwinds the handler, whose cleanup
# closes the already-closed raw connection and releases the slot.

_INBOUND: contextvars.ContextVar[bool] = contextvars.ContextVar("inbound", default=False)


class _ConnectionEnded(Exception):
    """Unwinds an inbound handler whose connection has closed."""


def not_an_inbound_handler() -> None:
    """Mark the calling task as not an inbound connection's handler, though it may run under
    one: a relayed connection accepted in a stream handler is upgraded there, and must not
    wait for its own end as the handler of the connection it arrived on would."""
    _INBOUND.set(False)


def _end_inbound_handlers_with_their_connection(swarm: object) -> None:
    handle = getattr(swarm, "_handle_inbound_connection", None)
    upgrade = getattr(swarm, "upgrade_inbound_raw_conn", None)
    if handle is None or upgrade is None:  # another py-libp2p version: leave it alone
        return

    async def handle_inbound(read_write_closer: object, maddr: object) -> None:
        _INBOUND.set(True)  # this task only: trio gives each task its own context
        await handle(read_write_closer, maddr)

    async def upgrade_inbound(raw_conn: object, maddr: object) -> object:
        muxed = await upgrade(raw_conn, maddr)
        closed = getattr(muxed, "event_closed", None)
        if not _INBOUND.get() or closed is None:
            return muxed
        await closed.wait()
        raise _ConnectionEnded("inbound connection closed")

    swarm._handle_inbound_connection = handle_inbound  # type: ignore[attr-defined]
    swarm.upgrade_inbound_raw_conn = upgrade_inbound  # type: ignore[attr-defined]
