"""Our ``master`` daemon on the lab's internet as the relay of two Kubo 0.43.1 behind NAT.

Each Kubo sits behind its own home router (new inbound connections dropped), so neither
can dial the other; both take our daemon as their static relay. Kubo A reserves a slot on
it (it verifies our signed voucher), Kubo B connects to A through it, and DCUtR, whose
messages our relay carries like any other bytes, punches a direct path between them.
Figures (``record_property``) are printed at the end of the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .lab import Internet, LabKubo, seconds_until

Record = Any  # pytest's record_property

# Behind NAT with nobody to ask (no AutoNAT server in the lab): Kubo must be told it is
# unreachable, or it never wants a reservation.
PRIVATE = {"Internal.Libp2pForceReachability": "private"}
WAIT = 60.0  # seconds for each step, on a loaded 2-core machine


def _until(what: str, ready: Callable[[], object], timeout: float = WAIT) -> float:
    return seconds_until(what, ready, timeout)


def _logged(kubo: LabKubo, text: str) -> bool:
    return text in kubo.log_path.read_text(errors="replace")


def test_our_master_relays_between_two_kubos_behind_nat(internet: Internet,
                                                       record_property: Record) -> None:
    relay = internet.ours(internet.add_public("relay"), "--role", "master")
    home_a, home_b = internet.add_home("a"), internet.add_home("b")
    ka = internet.kubo(home_a, relays=[relay.dial_addr], config=PRIVATE,
                       env={"GOLOG_LOG_LEVEL": "error,autorelay=debug,p2p-holepunch=debug"})
    kb = internet.kubo(home_b, relays=[relay.dial_addr], config=PRIVATE,
                       env={"GOLOG_LOG_LEVEL": "error,p2p-holepunch=debug"})

    reserved = _until("Kubo A's reservation on our relay",
                      lambda: _logged(ka, "adding new relay"))
    # Kubo answers hole punching only once it has an address to offer: for B, behind its
    # NAT, that is its relayed one. A, receiving B's relayed connection, starts DCUtR at
    # once; were B still without its slot, B would refuse and no punch would be tried again.
    _until("Kubo B's relayed address",
           lambda: any("/p2p-circuit" in a for a in kb.rpc("id")["Addresses"]))
    circuit = f"{relay.dial_addr}/p2p-circuit/p2p/{ka.peer_id}"
    started = time.monotonic()
    answer = kb.rpc("swarm/connect", arg=circuit)
    connected = time.monotonic() - started
    assert "success" in answer["Strings"][0]
    seen = kb.connections(ka.peer_id)
    assert seen, "B holds no connection to A after connecting through our relay"
    # Relayed, or already hole-punched past the relay (a direct address of A's router).
    assert any("/p2p-circuit" in a for a in seen) or any(home_a.public_ip in a for a in seen)
    record_property("reservation_after_start_s", round(reserved, 2))
    record_property("relayed_connection_s", round(connected, 2))
    direct = _until("a direct connection from B to A (hole punched)",
                    lambda: any("/p2p-circuit" not in a for a in kb.connections(ka.peer_id)))
    assert any(home_a.public_ip in a for a in kb.connections(ka.peer_id)
               if "/p2p-circuit" not in a)  # A's router: the punched path
    record_property("direct_connection_s", round(connected + direct, 2))
