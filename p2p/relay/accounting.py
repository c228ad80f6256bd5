"""What a Circuit Relay v2 service holds, and the bounds on it: pure bookkeeping.

The relay's hop handler (:mod:`.service`) asks this ledger before it grants anything, so
every bound lives in one place and is tested with a clock the test drives (no waiting):

* a reservation per peer (a refresh replaces the peer's own, never counts twice), at most
  ``max_reservations`` in all and ``max_reservations_per_ip`` from one IP address, each
  valid for ``reservation_ttl`` seconds;
* a circuit needs a live reservation of its destination; each peer takes part in at most
  ``max_circuits`` circuits (as source or as destination), at most
  ``max_circuits_total`` in all;
* an expired reservation frees its slot at once (checked on every question, not on a
  timer); a peer that disconnects loses its reservation, as go-libp2p's relay does.

The defaults are go-libp2p's ``DefaultResources`` (``p2p/protocol/circuitv2/relay/
resources.go``), which Kubo's ``Swarm.RelayService`` uses: reservations live 1 h, 128 in
all, 8 per IP, 16 circuits per peer, and each relayed connection may last 2 min and carry
128 KiB in each direction. go-libp2p bounds the circuits in all only through its resource
manager; ours is an explicit number. Refusals are :class:`RelayError` with the status the
relay answers (``RESERVATION_REFUSED``, ``NO_RESERVATION``, ``RESOURCE_LIMIT_EXCEEDED``).

Not thread-safe: it lives on the node's trio loop, as the handler does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ipfs_mcp.backends.errors import InvalidInput, RelayError

RESERVATION_REFUSED = "RESERVATION_REFUSED"
NO_RESERVATION = "NO_RESERVATION"
RESOURCE_LIMIT_EXCEEDED = "RESOURCE_LIMIT_EXCEEDED"


@dataclass(frozen=True)
class RelayResources:
    """The bounds of a relay service (go-libp2p's defaults; times in seconds)."""

    reservation_ttl: float = 3600.0
    max_reservations: int = 128
    max_reservations_per_ip: int = 8
    max_circuits: int = 16  # per peer, as source or destination
    max_circuits_total: int = 64
    # The limit of each relayed connection, told to both ends (Limit message).
    limit_duration: float = 120.0
    limit_data: int = 1 << 17  # bytes in each direction
    buffer_size: int = 2048  # bytes read at once per direction
    max_message_size: int = 4096  # a hop or stop message, as go-libp2p
    stream_timeout: float = 60.0  # to read the request, or write an answer
    connect_timeout: float = 30.0  # to open the stop stream to the destination
    handshake_timeout: float = 60.0  # for the destination's stop answer
    max_requests: int = 64  # hop streams being answered at once (a request, a handshake)

    def __post_init__(self) -> None:
        counts = (self.max_reservations, self.max_reservations_per_ip, self.max_circuits,
                  self.max_circuits_total, self.limit_data, self.buffer_size,
                  self.max_message_size, self.max_requests)
        times = (self.reservation_ttl, self.limit_duration, self.stream_timeout,
                 self.connect_timeout, self.handshake_timeout)
        if min(counts) < 1 or min(times) <= 0:
            raise InvalidInput("relay resources must be positive")


@dataclass(frozen=True)
class Reservation:
    peer: str
    ip: str
    expires: float  # in the ledger's clock


@dataclass(frozen=True)
class Circuit:
    """One relayed connection, from ``source`` to ``destination``; close it once."""

    number: int
    source: str
    destination: str


@dataclass(frozen=True)
class RelayCounts:
    """What the relay holds now (for ``peer_stats`` and health)."""

    reservations: int
    circuits: int


class RelayAccounting:
    """Reservations and circuits of one relay, with their bounds.

    ``clock`` gives seconds; the default is the wall clock, since a reservation's expiry is
    sent as Unix time.
    """

    def __init__(self, resources: RelayResources | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.resources = resources or RelayResources()
        self._clock = clock
        self._reservations: dict[str, Reservation] = {}
        self._circuits: dict[int, Circuit] = {}
        self._per_peer: dict[str, int] = {}
        self._numbers = 0

    # -- reservations -------------------------------------------------------------------
    def reserve(self, peer: str, ip: str) -> Reservation:
        """Grant (or refresh) ``peer``'s reservation, made from ``ip``.

        Raises:
            RelayError: status ``RESERVATION_REFUSED``: the relay holds its most
                reservations, or the most from ``ip``.
        """
        self._expire()
        # A refresh replaces the peer's own slot, as go-libp2p's constraints do.
        self._reservations.pop(peer, None)
        bounds = self.resources
        if len(self._reservations) >= bounds.max_reservations:
            raise RelayError(f"the relay holds its most reservations "
                             f"({bounds.max_reservations})", RESERVATION_REFUSED)
        from_ip = sum(1 for r in self._reservations.values() if r.ip == ip)
        if from_ip >= bounds.max_reservations_per_ip:
            raise RelayError(f"the relay holds its most reservations from {ip} "
                             f"({bounds.max_reservations_per_ip})", RESERVATION_REFUSED)
        granted = Reservation(peer, ip, self._clock() + bounds.reservation_ttl)
        self._reservations[peer] = granted
        return granted

    def reservation(self, peer: str) -> Reservation | None:
        """``peer``'s live reservation, if it holds one."""
        self._expire()
        return self._reservations.get(peer)

    def forget_peer(self, peer: str) -> None:
        """``peer`` disconnected: its reservation goes (its circuits end on their own)."""
        self._reservations.pop(peer, None)

    def _expire(self) -> None:
        now = self._clock()
        for peer in [p for p, r in self._reservations.items() if r.expires <= now]:
            del self._reservations[peer]

    # -- circuits -----------------------------------------------------------------------
    def open_circuit(self, source: str, destination: str) -> Circuit:
        """Count a circuit from ``source`` to ``destination``.

        Raises:
            RelayError: status ``NO_RESERVATION``: the destination holds no live
                reservation; ``RESOURCE_LIMIT_EXCEEDED``: either peer is in its most
                circuits, or the relay in its most.
        """
        if self.reservation(destination) is None:
            raise RelayError(f"{destination} holds no reservation on this relay",
                             NO_RESERVATION)
        bounds = self.resources
        if len(self._circuits) >= bounds.max_circuits_total:
            raise RelayError(f"the relay carries its most circuits "
                             f"({bounds.max_circuits_total})", RESOURCE_LIMIT_EXCEEDED)
        for peer in (source, destination):
            if self._per_peer.get(peer, 0) >= bounds.max_circuits:
                raise RelayError(f"{peer} is in its most circuits ({bounds.max_circuits})",
                                 RESOURCE_LIMIT_EXCEEDED)
        self._numbers += 1
        circuit = Circuit(self._numbers, source, destination)
        self._circuits[circuit.number] = circuit
        for peer in (source, destination):
            self._per_peer[peer] = self._per_peer.get(peer, 0) + 1
        return circuit

    def close_circuit(self, circuit: Circuit) -> None:
        """The circuit ended; closing it again does nothing."""
        if self._circuits.pop(circuit.number, None) is None:
            return
        for peer in (circuit.source, circuit.destination):
            left = self._per_peer.get(peer, 0) - 1
            if left > 0:
                self._per_peer[peer] = left
            else:
                self._per_peer.pop(peer, None)

    def circuits_of(self, peer: str) -> int:
        return self._per_peer.get(peer, 0)

    # -- reports ------------------------------------------------------------------------
    def counts(self) -> RelayCounts:
        self._expire()
        return RelayCounts(len(self._reservations), len(self._circuits))
