"""Relayed connections and their limits: which connections are limited, how much they may
still carry, and waiting for a direct connection to replace one.

A connection through a Circuit Relay v2 relay carries the relay's limit (the ``Limit`` of the
CONNECT: Kubo's default is 2 minutes and 128 KiB each way); past it the relay closes the
circuit. go-libp2p calls such a connection *limited* and runs only protocols that allow it;
here the fetch path asks :func:`is_limited` and :func:`remaining_bytes` and moves only small
content over it (see ``p2p/fetching.py``).

The relayed byte stream is a :class:`RelayedConnection`, the raw connection the swarm upgrades
(noise, then yamux); it counts the bytes each way. :func:`track` ties it to the muxed
connection it became, weakly, so the question "is this connection limited" is answered from
any ``INetConn`` or muxed connection without walking py-libp2p's internals.
"""

from __future__ import annotations

import weakref

import trio
from libp2p.abc import IHost, INetConn
from libp2p.network.connection.raw_connection import ConnectionType, RawConnection
from libp2p.peer.id import ID
from multiaddr import Multiaddr
from multiformats import CID

from ipfs_mcp.backends.core import dagpb
from ipfs_mcp.backends.errors import IntegrityError, RelayLimitExceeded
from ipfs_mcp.p2p._net import ConnectionEvents

from .wire import RelayLimit

__all__ = [
    "RelayedConnection",
    "declared_bytes",
    "direct_connections",
    "is_limited",
    "limit_error",
    "limited_only",
    "relay_budget",
    "relayed",
    "remaining_bytes",
    "track",
    "wait_direct",
]


class RelayedConnection(RawConnection):
    """The byte stream of one circuit (a hop or stop stream after its STATUS OK), counted.

    ``relay`` is the relay's peer id, ``remote`` the peer at the other end of the circuit,
    ``addr`` the circuit address (``/p2p/<relay>/p2p-circuit/p2p/<remote>``).
    """

    def __init__(self, stream: object, *, initiator: bool, relay: ID, remote: ID,
                 limit: RelayLimit, addr: Multiaddr) -> None:
        super().__init__(stream, initiator, ConnectionType.RELAYED, [addr])  # type: ignore[arg-type]
        self.relay = relay
        self.remote = remote
        self.limit = limit
        self.addr = addr
        self.sent = 0
        self.received = 0
        self.opened_at = trio.current_time()

    async def write(self, data: bytes) -> None:
        await super().write(data)
        self.sent += len(data)

    async def read(self, n: int | None = None) -> bytes:
        data = await super().read(n)
        self.received += len(data)
        return data

    @property
    def limited(self) -> bool:
        return self.limit.limited

    def bytes_left(self) -> int | None:
        """Bytes the circuit may still carry in its busier direction (None: no data limit)."""
        if not self.limit.data_bytes:
            return None
        return max(self.limit.data_bytes - max(self.sent, self.received), 0)

    def seconds_left(self) -> float | None:
        """Seconds until the relay closes the circuit (None: no time limit)."""
        if not self.limit.duration_s:
            return None
        return max(self.opened_at + self.limit.duration_s - trio.current_time(), 0.0)


_BY_MUXED: weakref.WeakKeyDictionary[object, RelayedConnection] = weakref.WeakKeyDictionary()


def track(muxed_conn: object, raw: RelayedConnection) -> None:
    """Remember that ``muxed_conn`` (what the swarm made of ``raw``) is relayed."""
    _BY_MUXED[muxed_conn] = raw


def relayed(conn: object) -> RelayedConnection | None:
    """The circuit under ``conn`` (an ``INetConn`` or a muxed connection), if it is one."""
    muxed = getattr(conn, "muxed_conn", conn)
    return _BY_MUXED.get(muxed)


def is_limited(conn: object) -> bool:
    """Whether ``conn`` runs over a relay that limits it (time or bytes)."""
    raw = relayed(conn)
    return raw is not None and raw.limited


def direct_connections(host: IHost, peer: ID) -> list[INetConn]:
    """The open connections to ``peer`` that are not limited."""
    return [c for c in host.get_network().get_connections(peer) if not is_limited(c)]


def limited_only(host: IHost, peer: ID) -> bool:
    """Whether every open connection to ``peer`` is limited (and there is one)."""
    conns = host.get_network().get_connections(peer)
    return bool(conns) and all(is_limited(c) for c in conns)


def remaining_bytes(host: IHost, peer: ID) -> int | None:
    """The most bytes the limited connections to ``peer`` may still carry, None when a
    connection to it has no data limit (or there is none)."""
    best: int | None = 0
    conns = host.get_network().get_connections(peer)
    if not conns:
        return None
    for conn in conns:
        raw = relayed(conn)
        left = None if raw is None else raw.bytes_left()
        if left is None:
            return None
        best = max(best or 0, left)
    return best


async def wait_direct(host: IHost, peer: ID, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for a direct (not limited) connection to ``peer``
    (hole punching brings one); whether there is one. Woken by the swarm's connection
    events, not by polling."""
    if direct_connections(host, peer):
        return True
    changed = trio.Event()

    def connected(peer_id: ID) -> None:
        if peer_id == peer:
            changed.set()

    events = ConnectionEvents(connected)
    network = host.get_network()
    network.register_notifee(events)
    try:
        with trio.move_on_after(timeout):
            # Each wake-up is one new connection to the peer; a handful is plenty.
            for _ in range(16):
                await changed.wait()
                if direct_connections(host, peer):
                    return True
                changed = trio.Event()
    finally:
        remove = getattr(network, "remove_notifee", None)
        if remove is not None:
            remove(events)
    return bool(direct_connections(host, peer))


# Of what a limited connection may still carry, the share a fetch may plan on: the rest is
# headroom for framing (bitswap, yamux, noise) and the other protocols on the connection.
BUDGET_SHARE = 0.75
_DAG_PB = 0x70


def relay_budget(host: IHost, peers: list[ID]) -> int | None:
    """The bytes a fetch from ``peers`` may move when every one of them is reachable only over
    limited connections; None when one of them has a direct or unlimited connection (or
    none is named)."""
    budgets: list[int] = []
    for peer in peers:
        if not limited_only(host, peer):
            return None
        left = remaining_bytes(host, peer)
        if left is None:
            return None
        budgets.append(left)
    if not budgets:
        return None
    return int(max(budgets) * BUDGET_SHARE)


def declared_bytes(cid: CID, block: bytes) -> int:
    """The bytes under ``cid`` as its root ``block`` declares them (a dag-pb node's links'
    Tsize, summed, plus itself; any other block: itself), before anything else is asked."""
    if cid.codec.code != _DAG_PB:
        return len(block)
    try:
        return len(block) + sum(link.tsize for link in dagpb.decode(block).links)
    except IntegrityError:
        return len(block)  # the fetch itself will say what is wrong with it


def limit_error(what: str, peers: list[ID], budget: int, waited: float
                ) -> RelayLimitExceeded:
    """The error for content too large for the limited connections to ``peers``."""
    names = ", ".join(str(p) for p in peers)
    return RelayLimitExceeded(
        f"{what} is larger than the {budget} bytes the connection to {names} may still "
        "carry: that peer is reachable only through a relay with a limit (Kubo's default: "
        f"2 minutes and 128 KiB each way), and hole punching did not give a direct "
        f"connection within {waited:g}s. What would help: the peer's direct address "
        "(a public one, or on your LAN), a relay of one's own without that limit "
        "(ipfs-mcp daemon --relay-service on a reachable machine), or a port forwarded "
        "to the peer's listen port on its router.")
