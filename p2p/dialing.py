"""The node's dial scope: which addresses it may dial, checked where every dial happens.

::

    scope      dials
    loopback   this machine only (127.0.0.0/8, ::1)
    lan        this machine and private networks (RFC 1918, unique-local, CGNAT)
    public     anything routable

No scope dials a link-local address (169.254.0.0/16, fe80::/10: cloud metadata services
answer there), the metadata endpoints outside those ranges, or an unspecified, multicast,
broadcast or reserved address (:func:`~ipfs_mcp.backends.core.ip_scope.never_dialled`, the
classifier the delegated routers' steering rule uses too).

Unless set, the scope is the widest the node listens on: 127.0.0.1 dials loopback, a
private address dials the LAN, 0.0.0.0, ``::`` or a public address dial anything. Bootstrap
peers, which only the operator configures, widen it to reach them: a node on 127.0.0.1
told to join the public network through named bootstrap peers dials public addresses.

Where it is checked (:func:`gate_dials`), so that no caller can forget it:

- the swarm asks its connection gate about each address of a peer before it picks which
  to dial from the peerstore (what the DHT, provider records and identify taught it); the
  gate says no to an address outside the scope, so the swarm passes it over and picks the
  peer's next one, rather than picking it and failing;
- each transport's ``dial`` resolves a ``/dns``, ``/dns4`` or ``/dns6`` address itself,
  checks every address it resolves to and dials the checked address, so a name cannot
  change its answer between the check and the dial. ``/dnsaddr/`` (TXT records that name
  further addresses) and any other form are refused: they cannot be checked here.

:meth:`Peers.connect_peer <ipfs_mcp.p2p.peers.Peers.connect_peer>` checks its address the
same way before dialling anything, for a refusal that says why.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import trio
from multiaddr import Multiaddr

from ipfs_mcp.backends.core.ip_scope import (
    DialScope,
    Scope,
    host_of_multiaddr,
    never_dialled,
    parse_dial_scope,
    parse_ip,
    scope_of_ip,
)
from ipfs_mcp.backends.errors import BackendUnavailable, DialRefused, NetworkError

log = logging.getLogger(__name__)

# Set in the task that handles an inbound connection (see gate_dials).
_ANSWERING: ContextVar[bool] = ContextVar("answering", default=False)

# name, address family -> the addresses it resolves to (empty when it does not)
NameResolver = Callable[[str, int], Awaitable[list[str]]]

_FAMILIES = {"dns": socket.AF_UNSPEC, "dns4": socket.AF_INET, "dns6": socket.AF_INET6}
_WORDS = {Scope.LOOPBACK: "loopback", Scope.PRIVATE: "private-network (LAN)",
          Scope.PUBLIC: "public"}


async def resolve_name(name: str, family: int) -> list[str]:
    """Every address ``name`` resolves to in ``family`` (the system resolver, hosts file
    included); empty when it does not resolve."""
    try:
        infos = await trio.socket.getaddrinfo(name, None, family=family,
                                              type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return sorted({str(info[4][0]) for info in infos})


def _listen_reach(addr: str) -> Scope:
    """How far a listen address lets peers reach us: every interface counts as public."""
    host = host_of_multiaddr(addr)
    try:
        ip = parse_ip(host or "")
    except ValueError:
        return Scope.LOOPBACK  # no address of its own: the strictest
    return Scope.PUBLIC if ip.is_unspecified else scope_of_ip(str(ip))


def _peer_reach(addr: str) -> Scope:
    """How far a bootstrap peer is: a peer known by name is on the internet."""
    try:
        return scope_of_ip(host_of_multiaddr(addr) or "")
    except ValueError:
        return Scope.PUBLIC


@dataclass(frozen=True)
class DialPolicy:
    """Which addresses the node may dial; ``origin`` says how the scope was chosen."""

    scope: DialScope
    origin: str = "as set"
    resolver: NameResolver = field(default=resolve_name, compare=False, repr=False)
    # Told of every address a transport is about to dial (after the scope check): the
    # one place every dial passes, whoever started it, so it can be counted.
    on_dial: Callable[[Multiaddr], None] | None = field(default=None, compare=False,
                                                        repr=False)

    @classmethod
    def derive(cls, setting: DialScope | str | None, listen_addrs: Sequence[str],
               bootstrap: Sequence[str] = ()) -> DialPolicy:
        """The policy ``setting`` names, or by default the widest scope the node listens on
        (widened to reach its bootstrap peers).

        Raises:
            InvalidInput: ``setting`` is not a scope.
        """
        chosen = parse_dial_scope(setting)
        if chosen is not None:
            return cls(chosen, "as set")
        reach = max([Scope.LOOPBACK, *(_listen_reach(a) for a in listen_addrs),
                     *(_peer_reach(a) for a in bootstrap)])
        scope = next(s for s in DialScope if s.reach == reach)
        return cls(scope, "the default for a node listening on " + ", ".join(listen_addrs)
                   + (" with bootstrap peers" if bootstrap else ""))

    def refusal(self, ip: str) -> str | None:
        """Why ``ip`` may not be dialled, or None when it may.

        Raises:
            ValueError: not an IP address.
        """
        setting = f"dial scope {self.scope.value!r}, {self.origin}"
        never = never_dialled(ip)
        if never is not None:
            return f"{ip} is {never}, which no dial scope allows ({setting})"
        scope = scope_of_ip(ip)
        if scope <= self.scope.reach:
            return None
        allowed = " and ".join(_WORDS[s] for s in Scope if s <= self.scope.reach)
        return (f"{ip} is a {_WORDS[scope]} address and this node dials {allowed} addresses "
                f"only ({setting})")

    def permits(self, maddr: Multiaddr | str) -> bool:
        """Whether ``maddr`` may be dialled, as far as can be told without resolving: an
        IP address is checked, a name passes (it is checked once resolved, at the dial)."""
        parts = str(maddr).split("/")
        if len(parts) > 2 and parts[1] in ("ip4", "ip6"):
            try:
                return self.refusal(parts[2]) is None
            except ValueError:
                return False
        return len(parts) > 2 and parts[1] in _FAMILIES

    async def resolved(self, maddr: Multiaddr | str) -> list[Multiaddr]:
        """``maddr`` as the IP addresses to dial: itself when it names an IP address in
        scope; for a name, each address it resolves to that is in scope.

        Raises:
            DialRefused: the address, or every address the name resolves to, is out of
                scope; or it is a form that cannot be checked (``/dnsaddr/``).
            NetworkError: the name does not resolve.
        """
        text = str(maddr)
        parts = text.split("/")
        proto = parts[1] if len(parts) > 2 else ""
        if proto in ("ip4", "ip6"):
            try:
                why = self.refusal(parts[2])
            except ValueError:
                why = f"{parts[2]!r} is not an IP address"
            if why is not None:
                raise DialRefused(f"refused to dial {text}: {why}")
            return [Multiaddr(text)]
        if proto not in _FAMILIES:
            raise DialRefused(f"refused to dial {text}: only /ip4, /ip6 and /dns addresses "
                              f"can be checked against the dial scope, /{proto} cannot")
        addresses = await self.resolver(parts[2], _FAMILIES[proto])
        if not addresses:
            raise NetworkError(f"{parts[2]} does not resolve")
        allowed, refusals = [], []
        for address in addresses:
            why = self.refusal(address)
            if why is None:
                family = "ip6" if ":" in address else "ip4"
                allowed.append(Multiaddr("/".join(["", family, address, *parts[3:]])))
            else:
                refusals.append(why)
        if not allowed:
            raise DialRefused(f"refused to dial {text}: {parts[2]} resolves to "
                              f"{', '.join(addresses)}; {refusals[0]}")
        return allowed


def gate_dials(swarm: Any, policy: DialPolicy) -> None:
    """Make ``swarm`` dial only what ``policy`` permits (see the module docstring).

    Raises:
        BackendUnavailable: the swarm lacks a part this relies on (another py-libp2p): the
            node does not start rather than dial unchecked.
    """
    manager = getattr(swarm, "transport_manager", None)
    gate = getattr(swarm, "connection_gate", None)
    answer = getattr(swarm, "_handle_inbound_connection", None)
    if manager is None or gate is None or answer is None:
        raise BackendUnavailable("cannot apply the dial scope to this py-libp2p's swarm")
    allowed = gate.is_allowed

    # The swarm asks its connection gate about each of a peer's addresses before it picks
    # which to dial, and about each inbound connection. The dial scope answers only the
    # first: it is about what we dial, not who may reach us.
    async def is_allowed(maddr: Multiaddr) -> bool:
        if not _ANSWERING.get() and not policy.permits(maddr):
            log.debug("p2p: %s is outside the dial scope; passed over", maddr)
            return False
        return bool(await allowed(maddr))

    async def answering(*args: Any) -> None:
        _ANSWERING.set(True)  # this task only: trio gives each task its own context
        await answer(*args)

    gate.is_allowed = is_allowed
    swarm._handle_inbound_connection = answering
    for transport in manager.get_transports():
        for name in ("dial", "dial_with_source"):
            if hasattr(transport, name):
                setattr(transport, name, _checked_dial(getattr(transport, name), policy))


def _checked_dial(dial: Callable[..., Awaitable[Any]], policy: DialPolicy
                  ) -> Callable[..., Awaitable[Any]]:
    async def checked_dial(maddr: Multiaddr, *args: Any) -> Any:
        targets = await policy.resolved(maddr)
        last: Exception | None = None
        for target in targets:
            if policy.on_dial is not None:
                policy.on_dial(target)
            try:
                return await dial(target, *args)
            except Exception as exc:  # the transport's own dial errors, tried in turn
                log.debug("p2p: dialling %s failed: %r", target, exc)
                last = exc
        assert last is not None  # resolved() returns at least one address
        raise last

    return checked_dial
