"""The gateway's request slots: how many requests may be in flight, in all and from one
client, so that no one client can take every slot and leave the others with 429s.

A client is its address; an IPv6 client is its /64, the block one subscriber is usually
given (counting each of its 2**64 addresses apart would bound nothing). Behind a reverse
proxy every request comes from the proxy's address, so the per-client bound then applies
to all of them together.
"""

from __future__ import annotations

import ipaddress

from .asgi import Scope


def client_key(scope: Scope) -> str:
    """Who sent the request, as the slots count clients (``""``: no address known, as on a
    Unix socket; such requests share one client's slots)."""
    client = scope.get("client")
    if not client:
        return ""
    host = str(client[0])
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class RequestSlots:
    """At most ``total`` requests in flight, and at most ``per_client`` from one client.

    Taking a slot never waits: a request that finds none is answered 429 at once, so a
    waiting line cannot build up either. Slots are taken and given back on the event
    loop's thread only, so plain counters suffice; a client with nothing in flight is
    forgotten, so the table is never larger than ``total``.
    """

    def __init__(self, total: int, per_client: int) -> None:
        self.total = total
        self.per_client = per_client
        self._in_all = 0
        self._by_client: dict[str, int] = {}

    def take(self, client: str) -> str | None:
        """Take a slot for ``client``: None when taken, else why not (the 429's text)."""
        held = self._by_client.get(client, 0)
        if held >= self.per_client:
            return (f"too many requests in flight from your address (at most "
                    f"{self.per_client}); retry shortly")
        if self._in_all >= self.total:
            return "too many requests in flight; retry shortly"
        self._by_client[client] = held + 1
        self._in_all += 1
        return None

    def give_back(self, client: str) -> None:
        """Return a slot :meth:`take` gave ``client``."""
        held = self._by_client.pop(client) - 1
        if held:
            self._by_client[client] = held
        self._in_all -= 1
