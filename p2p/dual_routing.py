"""The two halves of Kubo's dual DHT, and which addresses each may carry.

Kubo runs two DHTs: a LAN one on ``/ipfs/lan/kad/1.0.0`` for peers on loopback and private
networks, and the WAN one (the Amino DHT) on ``/ipfs/kad/1.0.0`` for the rest, whose tables
and records hold public addresses only. A record that reaches the WAN with private addresses
tells the world how this home network is numbered and points every reader at addresses that
cannot work from outside it.

So an announcement is sent on the id the peer took (host.py offers the LAN id first to a
peer we reach at loopback or private addresses), and on the WAN id it carries only our
public addresses (a ``/p2p-circuit`` address counts by its relay's), without the signed
peer record py-libp2p would attach (it lists every address, and cannot be re-signed with
fewer); with no public address at all nothing is sent there, as Kubo's WAN DHT would keep
no record without one. What we answer on the WAN id (:class:`WanAnswers`) names likewise only
public addresses, and no peer that has none: the WAN half of our table, as peers see it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import trio
from google.protobuf.message import DecodeError
from libp2p.abc import IHost
from libp2p.custom_types import TProtocol
from libp2p.kad_dht.common import ALPHA
from libp2p.kad_dht.kad_dht import KadDHT
from libp2p.kad_dht.pb.kademlia_pb2 import Message
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.peer.peerstore import env_to_send_in_RPC
from multiaddr import Multiaddr

from ipfs_mcp.backends.core import varint
from ipfs_mcp.backends.core.ip_scope import Scope, host_of_multiaddr, scope_of_ip
from ipfs_mcp.backends.errors import InvalidInput

from ._net import NET_ERRORS, close_quietly, frame

log = logging.getLogger(__name__)

KAD_PROTOCOL = "/ipfs/kad/1.0.0"  # the Amino DHT: Kubo's WAN half
LAN_KAD_PROTOCOL = "/ipfs/lan/kad/1.0.0"  # Kubo's LAN half: the same messages

PEER_TIMEOUT = 10.0  # one ADD_PROVIDER, stream opening included


def is_nearby(host: str) -> bool:
    """Whether ``host`` (an IP address or a name) is loopback or private: the LAN half's."""
    try:
        return scope_of_ip(host) <= Scope.PRIVATE
    except ValueError:  # a name, not an address: it may be anywhere
        return False


def is_far(host: str) -> bool:
    """Whether ``host`` is a public IP address or a DNS name other than ``localhost``: the
    WAN half's (a name names wherever its owner points it)."""
    try:
        return scope_of_ip(host) == Scope.PUBLIC
    except ValueError:
        return host.lower().rstrip(".") not in ("localhost", "localhost.localdomain")


def fit_for_wan(addr: Multiaddr | str) -> bool:
    """Whether ``addr`` may go into the WAN DHT: its host is far (:func:`is_far`; a
    relayed address counts by its relay)."""
    host = host_of_multiaddr(str(addr))
    return host is not None and is_far(host)


def wan_answer(body: bytes) -> bytes:
    """A DHT answer as the WAN may see it: closer peers and providers with their public
    addresses only, those left with none dropped (they belong to the LAN half), and no
    signed peer records (they list every address).

    Raises:
        google.protobuf.message.DecodeError: ``body`` is not a DHT message.
    """
    message = Message()
    message.ParseFromString(body)
    message.ClearField("senderRecord")
    for peers in (message.closerPeers, message.providerPeers):
        for index in reversed(range(len(peers))):
            peer = peers[index]
            addrs = [a for a in peer.addrs if _fits(a)]
            if not addrs:
                del peers[index]
                continue
            del peer.addrs[:]
            peer.addrs.extend(addrs)
            peer.ClearField("signedRecord")
    return message.SerializeToString()


def _fits(raw: bytes) -> bool:
    try:
        return fit_for_wan(Multiaddr(raw))
    except Exception:  # multiaddr raises several types for bytes it cannot read
        return False


class WanAnswers:
    """An inbound stream on the WAN id whose answers pass through :func:`wan_answer`.

    The library writes each answer as two writes (its length, then its body); they are
    gathered into whole frames here, each filtered and written as one.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._pending = b""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    async def write(self, data: bytes) -> None:
        self._pending += data
        while self._pending:
            try:
                size, start = varint.decode(self._pending)
            except InvalidInput:
                if len(self._pending) < 10:
                    return  # the length is not whole yet
                size, start = len(self._pending), 0  # no length at all: pass it on as is
            if len(self._pending) < start + size:
                return  # the body is not whole yet
            body = self._pending[start:start + size]
            self._pending = self._pending[start + size:]
            if start:
                try:
                    body = frame(wan_answer(body))
                except DecodeError:  # not a DHT message: sent as the library wrote it
                    body = frame(body)
            await self._stream.write(body)


def addrs_for(protocol: str, addrs: Iterable[Multiaddr]) -> list[Multiaddr]:
    """Of ``addrs``, those a record sent on ``protocol`` may carry: all on the LAN id,
    the public ones on any other."""
    if protocol == LAN_KAD_PROTOCOL:
        return list(addrs)
    return [a for a in addrs if fit_for_wan(a)]


async def send_provider_record(host: IHost, peer: ID, key: bytes,
                               signed_record: bytes | None = None) -> bool:
    """One ADD_PROVIDER for ``key`` to ``peer``, with our addresses fit for the DHT half
    the peer took; True when sent. ``signed_record`` (our signed peer record) goes only on
    the LAN id, where it hides nothing. Kubo never answers an ADD_PROVIDER, so none is read.
    """
    stream = None
    try:
        with trio.move_on_after(PEER_TIMEOUT):
            stream = await host.new_stream(peer, [TProtocol(KAD_PROTOCOL)])
            protocol = str(stream.get_protocol())
            addrs = addrs_for(protocol, host.get_addrs())
            if not addrs:
                log.debug("routing: no address of ours fits %s on %s: no record sent",
                          peer, protocol)
                return False
            message = Message(type=Message.MessageType.ADD_PROVIDER, key=key)
            provider = message.providerPeers.add()
            provider.id = host.get_id().to_bytes()
            provider.addrs.extend(a.to_bytes() for a in addrs)
            if signed_record is not None and protocol == LAN_KAD_PROTOCOL:
                message.senderRecord = signed_record
                provider.signedRecord = signed_record
            await stream.write(frame(message.SerializeToString()))
            return True
    except NET_ERRORS as exc:
        log.debug("routing: ADD_PROVIDER to %s failed: %r", peer, exc)
    finally:
        if stream is not None:
            await close_quietly(stream)
    return False


async def provide(dht: KadDHT, key: bytes) -> bool:
    """Keep our own provider record for ``key`` and send one to each of the peers closest
    to it (at most ALPHA at once), each fit for its DHT half; True if any was sent.

    Raises:
        the DHT's network errors (NET_ERRORS), from the lookup of the closest peers.
    """
    host = dht.host
    store = dht.provider_store
    store.providing_keys.add(key)  # the DHT service republishes what is in this set
    store.add_provider(key, PeerInfo(host.get_id(), list(host.get_addrs())))
    closest = await dht.peer_routing.find_closest_peers_network(key)
    signed = _signed_record(host)
    sent = 0
    limiter = trio.Semaphore(ALPHA)

    async def send(peer: ID) -> None:
        nonlocal sent
        async with limiter:
            if await send_provider_record(host, peer, key, signed):
                sent += 1

    async with trio.open_nursery() as nursery:
        for peer in closest:
            if peer != host.get_id():
                nursery.start_soon(send, peer)
    log.debug("routing: provider record for %s sent to %d of %d peers", key.hex(), sent,
              len(closest))
    return sent > 0


def _signed_record(host: IHost) -> bytes | None:
    """Our signed peer record as py-libp2p sends it beside a record, if it can make one."""
    try:
        envelope, _ = env_to_send_in_RPC(host)
    except Exception as exc:  # the library raises several types when it has no record
        log.debug("routing: no signed peer record: %r", exc)
        return None
    return envelope
