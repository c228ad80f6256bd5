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

Whatever the router's scope, it never sends us to an address no scope dials (link-local,
cloud metadata endpoints, unspecified, multicast): a router on the LAN naming
169.254.169.254 is refused too. The classifying is :mod:`ipfs_mcp.backends.core.ip_scope`'s,
the one the P2P node's dial scope uses.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from ipfs_mcp.backends.core.ip_scope import (
    Scope,
    host_of_multiaddr,
    never_dialled,
    parse_ip,
    scope_of_ip,
)

__all__ = ["Resolver", "Scope", "SteeringPolicy", "addresses_of_host", "host_of_multiaddr",
           "resolve", "scope_of_host", "scope_of_ip"]

Resolver = Callable[[str], list[str]]


def resolve(host: str) -> list[str]:
    """Every address ``host`` resolves to (empty when it does not resolve)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return []
    return sorted({str(info[4][0]) for info in infos})


def addresses_of_host(host: str, resolver: Resolver = resolve) -> list[str]:
    """``host`` itself when it is an IP literal, else every address it resolves to."""
    host = host.strip("[]")
    try:
        parse_ip(host)
    except ValueError:
        return resolver(host)
    return [host]


def scope_of_host(host: str, resolver: Resolver = resolve) -> Scope | None:
    """The nearest scope ``host`` reaches (an IP literal, or a name and all it resolves
    to); None when a name does not resolve."""
    addresses = addresses_of_host(host, resolver)
    if not addresses:
        return None
    return min(scope_of_ip(a) for a in addresses)


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
        addresses = addresses_of_host(host, self.resolver)
        if not addresses:
            return f"{where}: {host} does not resolve"
        for address in addresses:
            never = never_dialled(address)
            if never is not None:
                return f"{where}: {address} is {never}, never dialled"
        scope = min(scope_of_ip(a) for a in addresses)
        if scope < self.router_scope:
            return (f"{where} is a {scope.name.lower()} address, nearer than the "
                    f"{self.router_scope.name.lower()} router {self.router_url} may send us")
        return None
