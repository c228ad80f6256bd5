"""How far an address reaches (loopback, private network, public internet), and which
addresses a delegated router may send us to.

A delegated router's answer names hosts that we then dial or send GETs to. A hostile
router on the internet could name ``127.0.0.1:5001`` (a Kubo RPC port) or a host on the
user's LAN, and make us probe it on its behalf, the classic request-forgery move. So a
router may only steer us to addresses that reach no nearer than the router itself: a
public router to public hosts, a router on the LAN to the LAN and beyond, a router on this
machine anywhere. This is the rule browsers apply to public pages reaching private hosts
(Private Network Access).

Names are resolved and every address they resolve to must pass. A name that re-resolves
to another address between this check and the dial (DNS rebinding) is not caught here; the
bytes it serves are still verified like any other.

``ipaddress`` does the classifying; nothing here is hand-rolled beyond mapping its flags
onto the three scopes.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from enum import IntEnum
from urllib.parse import urlsplit

Resolver = Callable[[str], list[str]]


class Scope(IntEnum):
    """Ordered from nearest to farthest."""

    LOOPBACK = 0
    PRIVATE = 1
    PUBLIC = 2


def resolve(host: str) -> list[str]:
    """Every address ``host`` resolves to (empty when it does not resolve)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return []
    return sorted({str(info[4][0]) for info in infos})


def scope_of_ip(text: str) -> Scope:
    ip = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback or ip.is_unspecified:
        return Scope.LOOPBACK  # 0.0.0.0 and :: reach this machine when dialled
    if ip.is_global and not ip.is_multicast:
        return Scope.PUBLIC
    return Scope.PRIVATE  # RFC 1918, link-local, unique-local, CGNAT, reserved


def scope_of_host(host: str, resolver: Resolver = resolve) -> Scope | None:
    """The nearest scope ``host`` reaches (an IP literal, or a name and all it resolves
    to); None when a name does not resolve."""
    host = host.strip("[]")
    try:
        return scope_of_ip(host)
    except ValueError:
        pass
    addresses = resolver(host)
    if not addresses:
        return None
    return min(scope_of_ip(a) for a in addresses)


def host_of_multiaddr(multiaddr: str) -> str | None:
    """``/ip4/1.2.3.4/tcp/1`` → ``1.2.3.4``; ``/dns4/x.org/...`` → ``x.org``; None for an
    address with no host of its own (``/p2p/...``, circuit relays)."""
    parts = [p for p in multiaddr.strip().split("/") if p]
    if len(parts) >= 2 and parts[0] in ("ip4", "ip6", "dns", "dns4", "dns6"):
        return parts[1]
    return None


class SteeringPolicy:
    """Which addresses a router at ``router_url`` may send us to."""

    def __init__(self, router_url: str, *, resolver: Resolver = resolve,
                 router_scope: Scope | None = None) -> None:
        self.router_url = router_url
        self.resolver = resolver
        self._router_scope = router_scope

    @property
    def router_scope(self) -> Scope:
        """How near the router is: resolved on first use, not when the server starts (a
        router named by host would otherwise cost a DNS lookup at start-up)."""
        if self._router_scope is None:
            found = scope_of_host(urlsplit(self.router_url).hostname or "", self.resolver)
            # A router whose own name does not resolve is taken as public: the strictest.
            self._router_scope = Scope.PUBLIC if found is None else found
        return self._router_scope

    def refusal(self, *, multiaddr: str | None = None, url: str | None = None) -> str | None:
        """Why the router may not send us to this address, or None when it may."""
        host = host_of_multiaddr(multiaddr) if multiaddr is not None \
            else urlsplit(url or "").hostname
        where = multiaddr if multiaddr is not None else url
        if host is None:
            if self.router_scope == Scope.LOOPBACK:
                return None
            return f"{where} names no host of its own"
        scope = scope_of_host(host, self.resolver)
        if scope is None:
            return f"{where}: {host} does not resolve"
        if scope < self.router_scope:
            return (f"{where} is a {scope.name.lower()} address, nearer than the "
                    f"{self.router_scope.name.lower()} router {self.router_url} may send us")
        return None
