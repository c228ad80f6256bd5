"""TCP port reuse: every outbound TCP dial leaves from the node's listen port.

Behind a NAT, a peer that sees us at ``public_ip:mapped_port`` can only reach us there (and
a hole punch can only meet) if that mapping belongs to the socket we listen on. A cone NAT
keeps one mapping per inside (ip, port), so when every dial is bound to the listen address
and port, every peer observes the same public address, which is the one to advertise and to
offer in DCUtR (go-libp2p and Kubo do the same with ``SO_REUSEPORT``).

py-libp2p 0.8.1 already listens with ``SO_REUSEADDR`` + ``SO_REUSEPORT`` and its TCP
transport can dial from a given source (``dial_with_source``), but the swarm passes a source
only when asked, which nothing does. :func:`install_port_reuse` makes the swarm ask, with the
listen address of the dialled address's family, and replaces the transport's sourced dial
by :func:`open_tcp_from`, which falls back to an ephemeral port where the listen port cannot
be used (below, with why).
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import multiaddr
import trio
from libp2p.abc import IRawConnection
from libp2p.io.trio import TrioTCPStream
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.network.swarm import Swarm
from libp2p.peer.id import ID
from libp2p.transport.exceptions import OpenConnectionError
from libp2p.transport.tcp.tcp import TCP

log = logging.getLogger(__name__)

# connect() from a shared port fails with these when the 4-tuple is taken: a connection
# between the same two ports already exists (the peer dialled us from its listen port to
# ours), or one is still in TIME_WAIT after a close.
_TUPLE_TAKEN = (errno.EADDRINUSE, errno.EADDRNOTAVAIL)

Source = tuple[str, int]

# Set while a hole punch dials: its dial is useful only from the listen port (that is the
# NAT mapping the peer was told of), so there it fails rather than falling back.
_LISTEN_PORT_ONLY: ContextVar[bool] = ContextVar("listen_port_only", default=False)


@contextmanager
def listen_port_only() -> Iterator[None]:
    """Within this block, a sourced dial that cannot use its source fails."""
    token = _LISTEN_PORT_ONLY.set(True)
    try:
        yield
    finally:
        _LISTEN_PORT_ONLY.reset(token)


def _set_reuse(sock: trio.socket.SocketType) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if hasattr(socket, "SO_REUSEPORT"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)


async def open_tcp_from(host: str, port: int, source: Source) -> trio.SocketStream:
    """A TCP stream to ``host:port`` whose local end is ``source`` when it can be, else an
    ephemeral port (never within :func:`listen_port_only`).

    The fallback is not a fake success: a connection from an ephemeral port works as any
    other dial does; only its NAT mapping differs from the listen port's, which matters
    for hole punching alone. It is taken when the source cannot be bound (a platform
    without ``SO_REUSEPORT``, or the listener gone) or when the 4-tuple is taken
    (:data:`_TUPLE_TAKEN`).

    Raises:
        OSError: the peer cannot be reached from any port.
    """
    family = trio.socket.AF_INET6 if ":" in host else trio.socket.AF_INET
    sock = trio.socket.socket(family, socket.SOCK_STREAM)
    try:
        _set_reuse(sock)
        await sock.bind(source)
        await sock.connect((host, port))
    except OSError as exc:
        sock.close()
        if _LISTEN_PORT_ONLY.get() or exc.errno not in (*_TUPLE_TAKEN, errno.EINVAL):
            raise
        log.debug("tcp: dial %s:%d from %s:%d: %r; from an ephemeral port instead",
                  host, port, *source, exc)
        return await trio.open_tcp_stream(host, port)
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock)


def listen_source(listen_addrs: list[multiaddr.Multiaddr], target: multiaddr.Multiaddr
                  ) -> Source | None:
    """The (ip, port) of a TCP listen address to dial ``target`` from, or None.

    Same IP family only; a loopback listen address serves only loopback targets (the
    kernel cannot route from 127.0.0.1 to another host); a wildcard listen address
    (0.0.0.0, ::) binds the port on whichever interface the route picks.
    """
    dest = _ip_port(target)
    if dest is None:
        return None
    dest_ip = ipaddress.ip_address(dest[0])
    for addr in listen_addrs:
        here = _ip_port(addr)
        if here is None or "p2p-circuit" in str(addr):
            continue
        ip = ipaddress.ip_address(here[0])
        if ip.version != dest_ip.version or here[1] == 0:
            continue
        if ip.is_loopback and not dest_ip.is_loopback:
            continue
        return here
    return None


def _ip_port(addr: multiaddr.Multiaddr) -> Source | None:
    names = [p.name for p in addr.protocols()]
    if "tcp" not in names or any(n in names for n in ("ws", "wss", "quic", "quic-v1")):
        return None
    for proto in ("ip4", "ip6"):
        if proto in names:
            try:
                return str(addr.value_for_protocol(proto)), int(
                    addr.value_for_protocol("tcp"))
            except Exception:
                return None
    return None  # a DNS name: the source is chosen once it resolves (not here)


def listen_addrs_of(swarm: Swarm) -> list[multiaddr.Multiaddr]:
    """The addresses the swarm's listeners are bound to (ports resolved)."""
    out: list[multiaddr.Multiaddr] = []
    for listener in list(swarm.listeners.values()):
        out.extend(listener.get_addrs())
    return out


def install_port_reuse(swarm: object) -> bool:
    """Make every outbound TCP dial of ``swarm`` leave from its listen port; whether it
    could be installed (another network implementation is left alone)."""
    if not isinstance(swarm, Swarm):
        return False
    for transport in swarm.transport_manager.get_transports():
        if isinstance(transport, TCP):
            transport.dial_with_source = _sourced_dial  # type: ignore[method-assign]
    single: Callable[..., Awaitable[Any]] = swarm._dial_addr_single_attempt

    async def dial_from_listen_port(addr: multiaddr.Multiaddr, peer_id: ID,
                                    source: Source | None = None) -> Any:
        if source is None:
            source = listen_source(listen_addrs_of(swarm), addr)
        return await single(addr, peer_id, source)

    swarm._dial_addr_single_attempt = dial_from_listen_port  # type: ignore[method-assign]
    return True


async def _sourced_dial(maddr: multiaddr.Multiaddr, source: Source) -> IRawConnection:
    dest = _ip_port(maddr)
    if dest is None:
        raise OpenConnectionError(f"cannot dial {maddr} from a port: not ip/tcp")
    try:
        stream = await open_tcp_from(dest[0], dest[1], source)
    except OSError as exc:
        raise OpenConnectionError(f"failed to open TCP stream to {maddr}: {exc}") from exc
    return RawConnection(TrioTCPStream(stream), True)
