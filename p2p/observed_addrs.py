"""Where peers see us: the ``observed_addr`` each peer's identify tells us.

Behind a NAT our listen address is private; the public one is what peers observe. With
port reuse (``reuseport``) every dial leaves from the listen port, so a cone NAT shows every
peer the same ``public_ip:port``, the one to advertise and to offer in a hole punch.

- :meth:`ObservedAddrs.confirmed`: an address seen by at least ``confirmations`` distinct
  peers (2), or by one when AutoNAT (``reachability``) says we are public. Only these are
  advertised (identify, provider records): one peer alone could name any address.
- :meth:`ObservedAddrs.for_hole_punch`: the confirmed ones first, then those seen by one
  peer. A hole punch goes through a single relay, which is often the only peer that sees
  our outside, so waiting for a second would rule out the usual case; these addresses go
  only to the peer we are already talking to, and a wrong one costs that peer a failed
  dial. Kubo offers the same (its observed addresses whatever their count).

Only thin-waist addresses (``/ip4|ip6/…/tcp/…``) are kept; relayed (``/p2p-circuit``) and
unspecified ones are not. Bounded: at most ``max_addrs`` addresses (the least recently
seen goes first) and ``max_observers`` observers counted for each.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Callable

from multiaddr import Multiaddr

from .reachability import Status


def thin_waist(raw: bytes | str | Multiaddr) -> Multiaddr | None:
    """``/ip4|ip6/<ip>/tcp/<port>`` from an observed address, or None when it is not one
    (relayed, unspecified, another transport, or not a multiaddr at all)."""
    try:
        addr = raw if isinstance(raw, Multiaddr) else Multiaddr(raw)
        names = [p.name for p in addr.protocols()]
    except Exception:  # a peer's bytes: any of multiaddr's several error types
        return None
    if len(names) < 2 or names[0] not in ("ip4", "ip6") or names[1] != "tcp":
        return None
    if any(n not in ("p2p",) for n in names[2:]):
        return None  # /p2p-circuit, /ws, ...: not where a TCP dial reaches us
    ip = str(addr.value_for_protocol(names[0]))
    port = int(addr.value_for_protocol("tcp"))
    if ipaddress.ip_address(ip).is_unspecified or port == 0:
        return None
    return Multiaddr(f"/{names[0]}/{ip}/tcp/{port}")


def is_public(addr: Multiaddr) -> bool:
    ip = addr.value_for_protocol("ip4") if "ip4" in [p.name for p in addr.protocols()] \
        else addr.value_for_protocol("ip6")
    return ipaddress.ip_address(str(ip)).is_global


class ObservedAddrs:
    """Addresses peers observed us at, with who observed each."""

    def __init__(self, *, confirmations: int = 2, max_addrs: int = 32,
                 max_observers: int = 8,
                 reachability: Callable[[], Status] = lambda: "unknown") -> None:
        self.confirmations = confirmations
        self.max_addrs = max_addrs
        self.max_observers = max_observers
        # Set by the node once its AutoNAT client exists (peers.Peers.reachability).
        self.reachability = reachability
        self._seen: OrderedDict[str, set[str]] = OrderedDict()  # addr -> observer ids

    def record(self, observer: str, raw: bytes | str | Multiaddr) -> Multiaddr | None:
        """Count ``observer``'s view of us; the address kept, or None if it is not one."""
        addr = thin_waist(raw)
        if addr is None:
            return None
        key = str(addr)
        observers = self._seen.pop(key, set())
        if len(observers) < self.max_observers:
            observers.add(observer)
        self._seen[key] = observers  # most recently seen last
        while len(self._seen) > self.max_addrs:
            self._seen.popitem(last=False)
        return addr

    def observers(self, addr: str | Multiaddr) -> int:
        return len(self._seen.get(str(addr), ()))

    def confirmed(self) -> list[Multiaddr]:
        """Addresses to advertise (see the module docstring)."""
        needed = 1 if self.reachability() == "public" else self.confirmations
        return [Multiaddr(a) for a, who in self._seen.items() if len(who) >= needed]

    def for_hole_punch(self, limit: int = 8) -> list[Multiaddr]:
        """Addresses to offer in a DCUtR CONNECT, best first, at most ``limit``."""
        ranked = sorted(self._seen.items(), key=lambda item: -len(item[1]))
        return [Multiaddr(a) for a, _ in ranked[:limit]]


def advertise_confirmed(host: object, observed: ObservedAddrs) -> bool:
    """Add ``observed``'s confirmed addresses to what ``host`` advertises (identify, provider
    records), after its listen addresses and before anything the host's own address
    factory appends; whether the host allows it (py-libp2p's BasicHost does)."""
    if not hasattr(host, "_addrs_factory"):
        return False
    previous: Callable[[list[Multiaddr]], list[Multiaddr]] | None = host._addrs_factory

    def with_observed(candidates: list[Multiaddr]) -> list[Multiaddr]:
        known = {str(a) for a in candidates}
        merged = [*candidates, *(a for a in observed.confirmed() if str(a) not in known)]
        return list(previous(merged)) if previous is not None else merged

    host._addrs_factory = with_observed
    return True
