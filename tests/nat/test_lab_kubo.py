"""The lab checks itself with Kubo 0.43.1 on every side: it behaves as the internet does.

* Two Kubos, each behind its own home router (cone NAT), meet through a Kubo relay on the
  lab's internet, hole-punch a direct connection, and one fetches a few MiB from the other,
  verified by CID. The relay forwards far less than the file (Kubo's relay allows 128 KiB
  each way per relayed connection), so the file came over the direct connection.
* With the second home behind a symmetric NAT (a random source port per flow), they
  connect only through the relay, and a hole punch is tried and fails.
* From the internet, a dial to a host behind NAT gets no answer at all: the router drops
  it, both when addressed to the router and when routed through it to the home network.

The Kubos behind NAT are told their reachability is private, as AutoNAT would tell them
after a while, so they reserve a slot on their static relay at once; they dial it from
their listen port (no bootstrap dial racing it), which is how they learn their public
address. The figures (set-up, reservation, first relayed and first direct connection, the
fetch's rate) are kept as the tests' properties and printed at the end of the run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from .lab import Home, Internet, LabKubo, wait_until

pytestmark = pytest.mark.interop

PAYLOAD = 4 << 20  # a few MiB: 16 Kubo chunks, well past the relay's 128 KiB
HOP = "/libp2p/circuit/relay/0.2.0/hop"
PUNCH_FAILED = "hole punch attempt with peer failed"  # go-libp2p's holepunch log, debug
BEHIND_NAT = {"Internal.Libp2pForceReachability": "private"}
HOLEPUNCH_LOG = {"GOLOG_LOG_LEVEL": "error,p2p-holepunch=debug"}
WAIT = 60.0  # any one event, on a loaded 2-core machine
Record = Callable[[str, object], None]


@dataclass
class TwoHomes:
    relay: LabKubo
    a: Home
    b: Home
    ka: LabKubo
    kb: LabKubo
    circuit_to_b: str  # B's relayed address, /p2p-circuit/p2p/<B>
    seconds_to_reservation: float


def two_homes(net: Internet, record: Record, *, symmetric_b: bool) -> TwoHomes:
    started = time.monotonic()
    relay_host = net.add_public("relay")
    a, b = net.add_home("a"), net.add_home("b", symmetric=symmetric_b)
    record("namespaces_relay_and_two_homes_s", round(time.monotonic() - started, 3))
    mark = time.monotonic()
    relay = net.kubo(relay_host, relay_service=True, force_public=True, autonat_service=True)
    ka, kb = (net.kubo(home, relays=[relay.dial_addr], config=BEHIND_NAT, env=HOLEPUNCH_LOG)
              for home in (a, b))
    record("three_kubos_started_s", round(time.monotonic() - mark, 3))

    def circuit(kubo: LabKubo) -> str | None:
        return next((addr for addr in kubo.rpc("id")["Addresses"] if "/p2p-circuit" in addr),
                    None)

    circuit_to_b = wait_until(lambda: circuit(kb), timeout=WAIT, what="B's relay reservation")
    # A too: Kubo answers hole punching only once it holds an address to offer (behind its
    # NAT, its relayed one), and B starts DCUtR the moment A's relayed connection lands.
    wait_until(lambda: circuit(ka), timeout=WAIT, what="A's relay reservation")
    return TwoHomes(relay, a, b, ka, kb, circuit_to_b, time.monotonic() - mark)


def relayed(addr: str) -> bool:
    return "/p2p-circuit" in addr


def measure(record: Record, **figures: float) -> None:
    """Keep the figures as the test's properties (printed at the end of the run)."""
    for name, value in figures.items():
        record(name, round(value, 3))


def test_kubos_behind_cone_nats_hole_punch_and_fetch_over_the_direct_connection(
        internet: Internet, record_property: Record) -> None:
    homes = two_homes(internet, record_property, symmetric_b=False)
    ka, kb = homes.ka, homes.kb
    data = os.urandom(PAYLOAD)
    cid = kb.add_bytes(data)

    mark = time.monotonic()
    ka.rpc("swarm/connect", arg=homes.circuit_to_b)
    relayed_seconds = time.monotonic() - mark
    assert any(relayed(c) for c in ka.connections(kb.peer_id)), "no relayed connection"
    direct = wait_until(lambda: [c for c in ka.connections(kb.peer_id) if not relayed(c)],
                        timeout=WAIT, what="a direct connection from A to B")
    direct_seconds = time.monotonic() - mark
    # Direct means to B's router, at the port B's NAT kept for it: the hole that was punched.
    assert all(c.startswith(f"/ip4/{homes.b.public_ip}/tcp/") for c in direct), direct

    mark = time.monotonic()
    fetched = ka.cli("cat", cid, timeout=WAIT)
    fetch_seconds = time.monotonic() - mark
    assert ka.cli("add", "-Q", "--only-hash", input=fetched).decode().strip() == cid
    assert fetched == data
    # Over the relay went the hole punch's few messages, not the file.
    hop = homes.relay.rpc("stats/bw", proto=HOP)
    assert hop["TotalOut"] < PAYLOAD // 8, hop
    measure(record_property,
            start_to_relay_reservation_s=homes.seconds_to_reservation,
            first_relayed_connection_s=relayed_seconds,
            direct_connection_after_dial_s=direct_seconds,
            fetch_s=fetch_seconds, fetch_mib_per_s=PAYLOAD / 2**20 / fetch_seconds)


def test_kubo_behind_a_symmetric_nat_is_reached_only_through_the_relay(
        internet: Internet, record_property: Record) -> None:
    homes = two_homes(internet, record_property, symmetric_b=True)
    ka, kb = homes.ka, homes.kb
    mark = time.monotonic()
    ka.rpc("swarm/connect", arg=homes.circuit_to_b)
    relayed_seconds = time.monotonic() - mark
    # B, dialled through the relay, starts the hole punch; wait until one attempt is over.
    kb.wait_log(PUNCH_FAILED, timeout=WAIT)
    for side, other in ((ka, kb), (kb, ka)):
        connections = side.connections(other.peer_id)
        assert connections and all(relayed(c) for c in connections), connections
    measure(record_property,
            start_to_relay_reservation_s=homes.seconds_to_reservation,
            first_relayed_connection_s=relayed_seconds)


def test_the_nat_drops_dials_from_the_internet(internet: Internet) -> None:
    home = internet.add_home("a")
    outside = internet.add_public("outside")
    internet.listen(home, 4001)
    internet.listen(outside, 4001)
    # Outbound works: the home reaches the internet, through its router's address.
    assert internet.dial(home, outside.ip, 4001) == "connected"
    # Inbound gets no answer, neither at the router's public address (no reset that would
    # spoil a hole punch) ...
    assert internet.dial(outside, home.public_ip, 4001, timeout=2.0) == "timed out"
    # ... nor routed through the router straight to the home network, by a neighbour on
    # the same link that knows the private range.
    assert internet.dial(outside, home.ip, 4001) == "unreachable"
    route = ["ip", "route", "add", f"{home.ip}/32", "via", home.public_ip]
    assert internet.run(outside, route).returncode == 0
    assert internet.dial(outside, home.ip, 4001, timeout=2.0) == "timed out"
