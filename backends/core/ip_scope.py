"""How far an IP address reaches (this machine, a private network, the internet), the
addresses nothing of ours ever dials, and the P2P node's dial scopes.

The one classifier: the delegated router's steering rule
(:mod:`ipfs_mcp.backends.retrieval.address_scope`) and the P2P node's dial scope
(:mod:`ipfs_mcp.p2p.dialing`) both ask it. ``ipaddress`` does the classifying; nothing
here is hand-rolled beyond mapping its flags onto three scopes, and naming the cloud
metadata endpoints that sit outside the link-local ranges.

IPv6 forms that carry an IPv4 address (``::ffff:a.b.c.d``, 6to4 ``2002::/16``, NAT64
``64:ff9b::/96``) are judged by the IPv4 address inside, so ``::ffff:169.254.169.254`` is
link-local like the address it wraps.
"""

from __future__ import annotations

import ipaddress
from enum import IntEnum, StrEnum

from ipfs_mcp.backends.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")

# Cloud metadata services answer at 169.254.169.254 (AWS, GCP, Azure, OpenStack) and other
# link-local addresses, refused as a range; these four are outside it: AWS's IPv6 endpoint,
# Alibaba's, Azure's wire server and Oracle's.
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "fd00:ec2::254", "100.100.100.200", "168.63.129.16", "192.0.0.192"))


class Scope(IntEnum):
    """Ordered from nearest to farthest."""

    LOOPBACK = 0
    PRIVATE = 1
    PUBLIC = 2


class DialScope(StrEnum):
    """How far the P2P node dials: ``loopback`` (this machine), ``lan`` (and private
    networks), ``public`` (anything routable); no scope dials :func:`never_dialled`."""

    LOOPBACK = "loopback"
    LAN = "lan"
    PUBLIC = "public"

    @property
    def reach(self) -> Scope:
        return {DialScope.LOOPBACK: Scope.LOOPBACK, DialScope.LAN: Scope.PRIVATE,
                DialScope.PUBLIC: Scope.PUBLIC}[self]


def parse_dial_scope(text: str | DialScope | None) -> DialScope | None:
    """``loopback``, ``lan`` or ``public`` (None or empty: derive it from the listen
    addresses).

    Raises:
        InvalidInput: another value.
    """
    if text is None or isinstance(text, DialScope):
        return text
    value = text.strip().lower()
    if not value:
        return None
    try:
        return DialScope(value)
    except ValueError:
        raise InvalidInput(f"dial scope {text!r}: use one of "
                           f"{', '.join(s.value for s in DialScope)}") from None


def parse_ip(text: str) -> IPAddress:
    """The address ``text`` names, unwrapped to the IPv4 address an IPv6 form carries.

    Raises:
        ValueError: not an IP address.
    """
    ip = ipaddress.ip_address(text.strip().strip("[]").split("%", 1)[0])  # drop a zone
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def scope_of_ip(text: str) -> Scope:
    """How far ``text`` reaches.

    Raises:
        ValueError: not an IP address.
    """
    ip = parse_ip(text)
    if ip.is_loopback or ip.is_unspecified:
        return Scope.LOOPBACK  # 0.0.0.0 and :: reach this machine when dialled
    if ip.is_global and not ip.is_multicast:
        return Scope.PUBLIC
    return Scope.PRIVATE  # RFC 1918, link-local, unique-local, CGNAT, reserved


def never_dialled(text: str) -> str | None:
    """What ``text`` is, when it is an address no scope lets us dial: link-local (where
    metadata services answer), a metadata endpoint, unspecified (dialled, it reaches this
    machine by another name), multicast, broadcast or reserved. None for any other.

    Raises:
        ValueError: not an IP address.
    """
    ip = parse_ip(text)
    if ip.is_loopback:
        return None  # Python counts ::1 as reserved (it lies in ::/8)
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata services answer there)"
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_reserved:
        return "a broadcast or reserved address"
    return None


def host_of_multiaddr(multiaddr: str) -> str | None:
    """``/ip4/1.2.3.4/tcp/1`` → ``1.2.3.4``; ``/dns4/x.org/...`` → ``x.org``; None for an
    address with no host of its own (``/p2p/...``, circuit relays, ``/dnsaddr/``)."""
    parts = [p for p in multiaddr.strip().split("/") if p]
    if len(parts) >= 2 and parts[0] in ("ip4", "ip6", "dns", "dns4", "dns6"):
        return parts[1]
    return None
