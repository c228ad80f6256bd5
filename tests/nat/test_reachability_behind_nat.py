"""AutoNAT on the simulated internet: our daemon on the internet says ``public``, our daemon
behind a home router says ``private``, as ``ipfs-mcp id --json`` shows.

The peers asked are Kubo 0.43.1 daemons on the internet serving AutoNAT (v1, which our
client speaks). A verdict needs ``Reachability.confirmations`` (3) peers to agree, so
there are three of them, each on an address of its own (Kubo dials back only the IP it
sees the question come from). Behind the NAT, Kubo's dial-back to the router's address
is dropped and times out (Kubo's 15 s), which is the "failed" vote; on the internet it
connects at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from .lab import Internet, OurNode, wait_until

pytestmark = pytest.mark.interop

ASKED = 3  # Reachability's default confirmations
VERDICT = 90.0  # Kubo's dial-back times out after 15 s; the rest is a loaded machine


def reachability(node: OurNode, expected: str) -> str | None:
    """``expected`` once the daemon's card says so; None while it says ``unknown``."""
    said = node.card()["reachability"]
    assert said in (expected, "unknown"), f"{node.name} says {said}, not {expected}"
    return said if said == expected else None


def test_autonat_says_public_on_the_internet_and_private_behind_a_nat(
        internet: Internet, record_property: Callable[[str, object], None]) -> None:
    servers = [internet.kubo(internet.add_public(f"autonat{i}"), autonat_service=True,
                             force_public=True) for i in range(ASKED)]
    bootstrap = [flag for k in servers for flag in ("--bootstrap", k.dial_addr)]
    home = internet.ours(internet.add_home("a"), *bootstrap, wait=False)
    public = internet.ours(internet.add_public("ours"), *bootstrap, wait=False)
    home.ready(), public.ready()
    ready = time.monotonic()
    wait_until(lambda: reachability(public, "public"), timeout=VERDICT, interval=0.5,
               what="our node on the internet reported public")
    record_property("public_verdict_after_ready_s", round(time.monotonic() - ready, 3))
    wait_until(lambda: reachability(home, "private"), timeout=VERDICT, interval=0.5,
               what="our node behind NAT reported private")
    record_property("private_verdict_after_ready_s", round(time.monotonic() - ready, 3))
    record_property("our_daemon_start_s", round(max(home.start_seconds, public.start_seconds), 3))
    # What a person sees: ``ipfs-mcp id``, as JSON and as text.
    assert home.id()["reachability"] == "private"
    plain = public.cli("id").decode().splitlines()
    assert any(line.startswith("reach:    public") for line in plain), plain
