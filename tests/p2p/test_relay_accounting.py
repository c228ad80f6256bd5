"""The relay service's ledger: reservation and circuit bounds, and expiry, on a driven clock."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ipfs_mcp.backends.errors import InvalidInput, RelayError
from ipfs_mcp.p2p.relay.accounting import (
    NO_RESERVATION,
    RESERVATION_REFUSED,
    RESOURCE_LIMIT_EXCEEDED,
    RelayAccounting,
    RelayCounts,
    RelayResources,
)


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def ledger(**bounds: float) -> tuple[RelayAccounting, Clock]:
    clock = Clock()
    return RelayAccounting(RelayResources(**bounds), clock), clock  # type: ignore[arg-type]


def test_defaults_are_go_libp2p_s() -> None:
    r = RelayResources()
    assert (r.reservation_ttl, r.max_reservations, r.max_reservations_per_ip, r.max_circuits,
            r.limit_duration, r.limit_data, r.buffer_size, r.max_message_size) == (
        3600.0, 128, 8, 16, 120.0, 128 * 1024, 2048, 4096)


def test_reservation_expires_after_its_ttl() -> None:
    relay, clock = ledger(reservation_ttl=60)
    granted = relay.reserve("A", "10.0.0.1")
    assert granted.expires == 1060.0
    clock.now = 1059.9
    assert relay.reservation("A") == granted
    clock.now = 1060.0
    assert relay.reservation("A") is None
    assert relay.counts() == RelayCounts(0, 0)


def test_refresh_replaces_the_peer_s_own_slot() -> None:
    relay, clock = ledger(max_reservations=1, reservation_ttl=60)
    relay.reserve("A", "10.0.0.1")
    clock.now += 30
    again = relay.reserve("A", "10.0.0.1")  # a refresh, though the relay is full
    assert again.expires == clock.now + 60
    assert relay.counts().reservations == 1


def test_total_reservations_bounded_and_expiry_frees_the_slot() -> None:
    relay, clock = ledger(max_reservations=2, reservation_ttl=60)
    relay.reserve("A", "10.0.0.1")
    clock.now += 10
    relay.reserve("B", "10.0.0.2")
    with pytest.raises(RelayError) as refused:
        relay.reserve("C", "10.0.0.3")
    assert refused.value.status == RESERVATION_REFUSED
    clock.now += 50  # A's reservation ends; B's still has 10 s
    assert relay.reserve("C", "10.0.0.3").peer == "C"
    assert relay.counts().reservations == 2


def test_reservations_per_ip_bounded() -> None:
    relay, _ = ledger(max_reservations_per_ip=2)
    relay.reserve("A", "10.0.0.1")
    relay.reserve("B", "10.0.0.1")
    with pytest.raises(RelayError) as refused:
        relay.reserve("C", "10.0.0.1")
    assert refused.value.status == RESERVATION_REFUSED
    assert "10.0.0.1" in str(refused.value)
    relay.reserve("C", "10.0.0.2")  # another address is not affected


def test_a_disconnected_peer_loses_its_reservation() -> None:
    relay, _ = ledger()
    relay.reserve("A", "10.0.0.1")
    relay.forget_peer("A")
    assert relay.reservation("A") is None


def test_circuit_needs_the_destination_s_live_reservation() -> None:
    relay, clock = ledger(reservation_ttl=60)
    with pytest.raises(RelayError) as refused:
        relay.open_circuit("S", "A")
    assert refused.value.status == NO_RESERVATION
    relay.reserve("A", "10.0.0.1")
    circuit = relay.open_circuit("S", "A")
    assert relay.counts() == RelayCounts(1, 1)
    clock.now += 60
    with pytest.raises(RelayError) as expired:
        relay.open_circuit("S", "A")
    assert expired.value.status == NO_RESERVATION
    relay.close_circuit(circuit)
    relay.close_circuit(circuit)  # twice: counted once
    assert relay.counts() == RelayCounts(0, 0)


def test_circuits_per_peer_bounded_both_ways() -> None:
    relay, _ = ledger(max_circuits=2)
    relay.reserve("A", "10.0.0.1")
    relay.reserve("B", "10.0.0.2")
    first = relay.open_circuit("S", "A")
    relay.open_circuit("S", "B")
    with pytest.raises(RelayError) as source_full:  # S is in two circuits
        relay.open_circuit("S", "A")
    assert source_full.value.status == RESOURCE_LIMIT_EXCEEDED
    relay.open_circuit("T", "A")
    with pytest.raises(RelayError) as destination_full:  # A is in two circuits
        relay.open_circuit("U", "A")
    assert destination_full.value.status == RESOURCE_LIMIT_EXCEEDED
    relay.close_circuit(first)
    relay.open_circuit("U", "A")  # the closed circuit freed a slot of S and of A
    assert relay.circuits_of("S") == 1 and relay.circuits_of("A") == 2


def test_circuits_in_all_bounded() -> None:
    relay, _ = ledger(max_circuits_total=2)
    relay.reserve("A", "10.0.0.1")
    relay.open_circuit("S", "A")
    relay.open_circuit("T", "A")
    with pytest.raises(RelayError) as full:
        relay.open_circuit("U", "A")
    assert full.value.status == RESOURCE_LIMIT_EXCEEDED
    assert relay.counts().circuits == 2


def test_resources_must_be_positive() -> None:
    with pytest.raises(InvalidInput):
        RelayResources(limit_data=0)
    with pytest.raises(InvalidInput):
        RelayResources(reservation_ttl=0)
