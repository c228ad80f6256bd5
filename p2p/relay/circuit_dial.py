"""Dialing a peer through a relay: ``<relay addr>/p2p/<relay>/p2p-circuit/p2p/<target>``.

The relay is reached first (an open connection to it, or its address before
``/p2p/<relay>``, dialled under the node's dial scope like any address), then one hop stream
asks it to CONNECT us to the target; after its STATUS OK the stream carries the target's
bytes, and the swarm upgrades it as an outbound connection (noise, then yamux) and adds it to
its connections, marked relayed and limited (:mod:`.limits`).

Why not py-libp2p's ``CircuitV2Transport``: its dial sends a RESERVE before every CONNECT,
its listener never answers a stop CONNECT with the STATUS OK the spec (and Kubo's relay)
waits for, it names the wrong relay in inbound circuit addresses, and it drops the relay's
Limit, which the fetch path needs. The messages are still the library's (:mod:`.wire`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import trio
from libp2p.abc import IHost, INetConn, INetStream
from libp2p.peer.id import ID
from multiaddr import Multiaddr

from ipfs_mcp.backends.errors import InvalidInput, RelayError
from ipfs_mcp.p2p._net import NET_ERRORS, close_quietly

from .limits import RelayedConnection, track
from .wire import (
    HOP_PROTOCOL,
    HopMessage,
    Status,
    hop_connect,
    limit_of,
    read_hop,
    status_name,
    write_message,
)

log = logging.getLogger(__name__)

__all__ = ["CircuitAddr", "dial_through_relay", "is_circuit", "open_hop", "parse_circuit",
           "reach_relay"]

# How long the relay may take to answer a CONNECT (it dials the target's stop protocol
# meanwhile; go-libp2p's own bound for that is 1 minute, its usual answer well under 1 s).
CONNECT_TIMEOUT = 15.0


def is_circuit(addr: Multiaddr | str) -> bool:
    """Whether ``addr`` goes through a relay (has a ``/p2p-circuit`` part)."""
    return "/p2p-circuit" in str(addr)


class CircuitAddr:
    """A parsed circuit address: the relay's transport address (possibly empty), the relay's
    peer id, and the target's (None when the address ends at ``/p2p-circuit``)."""

    def __init__(self, relay_transport: Multiaddr | None, relay: ID, target: ID | None) -> None:
        self.relay_transport = relay_transport
        self.relay = relay
        self.target = target

    def for_target(self, target: ID) -> Multiaddr:
        """The address without the target: what a peerstore keeps for ``target``."""
        base = f"/p2p/{self.relay}/p2p-circuit"
        if self.relay_transport is not None:
            base = f"{self.relay_transport}{base}"
        return Multiaddr(base)


def parse_circuit(addr: Multiaddr | str) -> CircuitAddr:
    """Split a circuit address into relay and target.

    Raises:
        InvalidInput: not a circuit address, no relay named before ``/p2p-circuit``, more
            than one hop, or an invalid peer id.
    """
    text = str(addr)
    before, sep, after = text.partition("/p2p-circuit")
    if not sep:
        raise InvalidInput(f"{text} is not a relayed address (no /p2p-circuit)")
    if "/p2p-circuit" in after:
        raise InvalidInput(f"{text} goes through more than one relay; one hop is supported")
    head, p2p, relay_text = before.rpartition("/p2p/")
    if not p2p or "/" in relay_text:
        raise InvalidInput(f"{text} names no relay: put /p2p/<relay id> before /p2p-circuit")
    target_text = after.removeprefix("/p2p/") if after else ""
    if after and (not after.startswith("/p2p/") or "/" in target_text):
        raise InvalidInput(f"{text}: after /p2p-circuit only /p2p/<peer id> may follow")
    try:
        relay = ID.from_base58(relay_text)
        target = ID.from_base58(target_text) if target_text else None
        transport = Multiaddr(head) if head else None
    except Exception as exc:  # the base58 and multiaddr parsers raise several types
        raise InvalidInput(f"{text}: {exc}") from exc
    return CircuitAddr(transport, relay, target)


async def reach_relay(host: IHost, relay: ID, addrs: Sequence[Multiaddr]) -> None:
    """Connect to ``relay`` at one of ``addrs`` unless connected.

    Raises:
        RelayError: it cannot be reached.
    """
    network = host.get_network()
    if network.get_connections(relay):
        return
    if not addrs:
        raise RelayError(f"relay {relay} is not connected and no address of it is known "
                         "(put its address before /p2p/<relay id>)")
    failures = []
    for addr in addrs:
        try:
            await network.dial_addr(addr, relay)
            return
        except NET_ERRORS as exc:
            failures.append(f"{addr}: {exc!r}")
    log.debug("p2p: relay %s unreachable: %s", relay, "; ".join(failures))
    raise RelayError(f"relay {relay} is unreachable at {', '.join(str(a) for a in addrs)}")


async def open_hop(host: IHost, relay: ID) -> INetStream:
    """A hop stream to ``relay`` (connected).

    Raises:
        RelayError: the peer does not speak the hop protocol (it is no relay).
    """
    try:
        return await host.new_stream(relay, [HOP_PROTOCOL])
    except NET_ERRORS as exc:
        log.debug("p2p: hop stream to %s: %r", relay, exc)
        raise RelayError(f"peer {relay} is not a relay (it does not speak "
                         f"{HOP_PROTOCOL})") from None


async def dial_through_relay(host: IHost, addr: Multiaddr | str, target: ID) -> INetConn:
    """Connect to ``target`` through the relay ``addr`` names; the new connection (limited
    if the relay said so).

    Raises:
        InvalidInput: ``addr`` is not a one-hop circuit address, or names another target.
        RelayError: the relay is unreachable, does not speak the hop protocol, refused
            (the error's ``status`` says how: NO_RESERVATION, PERMISSION_DENIED, ...), or the
            upgrade over the circuit failed.
    """
    circuit = parse_circuit(addr)
    if circuit.target is not None and circuit.target != target:
        raise InvalidInput(f"{addr} leads to {circuit.target}, not {target}")
    await reach_relay(host, circuit.relay,
                      [circuit.relay_transport] if circuit.relay_transport else [])
    stream = await open_hop(host, circuit.relay)
    try:
        with trio.fail_after(CONNECT_TIMEOUT):
            await write_message(stream, hop_connect(target))
            answer = await read_hop(stream)
        if answer.type != HopMessage.STATUS:
            raise RelayError(f"relay {circuit.relay} answered CONNECT out of turn",
                             "UNEXPECTED_MESSAGE")
        if answer.status != Status.OK:
            name = status_name(answer.status)
            raise RelayError(f"relay {circuit.relay} would not connect us to {target}: {name}"
                             + _why(answer.status), name)
        raw = RelayedConnection(stream, initiator=True, relay=circuit.relay, remote=target,
                                limit=limit_of(answer),
                                addr=Multiaddr(f"/p2p/{circuit.relay}/p2p-circuit/p2p/{target}"))
        conn = await host.get_network().upgrade_outbound_raw_conn(raw, target)
    except trio.TooSlowError:
        await close_quietly(stream)
        raise RelayError(f"relay {circuit.relay} did not answer CONNECT within "
                         f"{CONNECT_TIMEOUT:.0f}s") from None
    except RelayError:
        await close_quietly(stream)
        raise
    except NET_ERRORS as exc:
        await close_quietly(stream)
        raise RelayError(f"the connection to {target} through relay {circuit.relay} failed "
                         f"its handshake: {exc}") from exc
    except trio.Cancelled:  # a direct dial won the race (peers.Peers._dial): free the slot
        await close_quietly(stream)
        raise
    track(conn.muxed_conn, raw)
    started = getattr(conn, "event_started", None)
    if started is not None:
        await started.wait()
    return conn


def _why(status: int) -> str:
    if status == Status.NO_RESERVATION:
        return " (the peer holds no reservation on this relay)"
    if status == Status.CONNECTION_FAILED:
        return " (the relay could not reach the peer)"
    if status == Status.RESOURCE_LIMIT_EXCEEDED:
        return " (the relay is at its limits)"
    return ""
