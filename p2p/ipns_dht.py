"""IPNS records in the DHT's value store, validated on every way in.

Keys are Kubo's: ``b"/ipns/" + the name's multihash`` (binary). py-libp2p 0.8.1's DHT has
a value store and GET_VALUE/PUT_VALUE messages, but its inbound PUT_VALUE decodes the key
as UTF-8 before validating, so every binary IPNS key a peer sends (Kubo's ``name
publish``) is refused before any validator sees it, and its own ``put_value`` takes text
keys. So here:

- :class:`IpnsDht` puts records by binary key with its own PUT_VALUE (the library's takes
  Kubo's answer, which echoes our request and so our own signed peer record, for a forged
  one, and counts a record Kubo stored as refused), gets them with the library's per-peer
  GET_VALUE (``_get_from_peer``), and validates every record it is given; the host picks
  the stream id, LAN first to loopback and private peers;
- :func:`guard_ipns_puts` serves inbound IPNS PUT_VALUEs itself, in front of the library's
  handler on both Kademlia ids: a record is stored only if it validates (signature, name,
  validity, size) and beats the one held (sequence, then validity), and the stream is reset
  otherwise, as go-libp2p-kad-dht does. Every other message goes to the library unchanged;
  an IPNS GET_VALUE first drops a held record that has expired since, so none is served,
  and the library's answer to an ADD_PROVIDER, which Kubo never reads, is not sent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import trio
from google.protobuf.message import DecodeError
from libp2p.custom_types import TProtocol
from libp2p.kad_dht.common import ALPHA, MAX_DHT_MESSAGE_SIZE, format_time_rfc3339
from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
from libp2p.kad_dht.pb.kademlia_pb2 import Message, Record
from libp2p.peer.id import ID

from ipfs_mcp.backends.core import ipns
from ipfs_mcp.backends.errors import InvalidInput, InvalidRecord, IpfsMcpError, NetworkError

from ._net import NET_ERRORS, FrameReader, close_quietly, frame

log = logging.getLogger(__name__)

__all__ = ["IpnsDht", "guard_ipns_puts"]

PREFIX = b"/ipns/"
# Asked for as the library asks (the Amino id alone): the host turns that into both ids,
# the LAN one first to loopback and private peers (host.py, routing.kad_ids_for).
_AMINO_ONLY = [TProtocol("/ipfs/kad/1.0.0")]
_PUT_FAILURES: tuple[type[BaseException], ...] = (*NET_ERRORS, NetworkError, DecodeError)
PEER_TIMEOUT = 10.0  # one peer's answer to one PUT_VALUE or GET_VALUE


def held_record(dht: KadDHT, key: bytes) -> ipns.IpnsRecord | None:
    """The valid record the value store holds under ``key``; an invalid or expired one is
    dropped."""
    held = dht.value_store.get(key)
    if held is None:
        return None
    try:
        return ipns.validate_record(ipns.name_of_key(key), bytes(held.value))
    except (InvalidRecord, InvalidInput):
        dht.value_store.remove(key)
        return None


def accept(dht: KadDHT, key: bytes, raw: bytes) -> ipns.IpnsRecord:
    """Store ``raw`` under ``key`` if it is a valid record that beats the one held.

    Raises:
        InvalidRecord: invalid, expired, or worse than the record held.
        InvalidInput: ``key`` is not an IPNS key.
    """
    record = ipns.validate_record(ipns.name_of_key(key), raw)
    held = held_record(dht, key)
    if held is not None and held.raw != raw and ipns.best_record([held, record]) is held:
        raise InvalidRecord(f"a better record is held (sequence {held.sequence})")
    dht.value_store.put_record(key, Record(key=key, value=raw,
                                           timeReceived=format_time_rfc3339()))
    return record


class _IpnsPutsFirst:
    """An inbound DHT stream as the library reads it, minus the IPNS PUT_VALUEs, which
    are answered here (the library would refuse their binary keys).

    It also keeps the library from answering ADD_PROVIDER: go-libp2p-kad-dht sends that
    one without waiting for an answer (``SendMessage``) and reuses the stream, so a stray
    answer is read as the answer to Kubo's next request there (a PUT_VALUE answered with
    no record crashes Kubo 0.43.1's ``ProtocolMessenger.PutValue``).
    """

    def __init__(self, stream: Any, dht: KadDHT) -> None:
        self._stream = stream
        self._dht = dht
        self._frames = FrameReader(stream, MAX_DHT_MESSAGE_SIZE)
        self._buf = b""
        self._unanswered = False  # the message the library is handling wants no answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    async def read(self, n: int | None = None) -> bytes:
        while not self._buf:
            body = await self._frames.next()
            if body is None:
                return b""
            if not await self._answered_here(body):
                self._buf = frame(body)
        size = len(self._buf) if n is None else n
        out, self._buf = self._buf[:size], self._buf[size:]
        return out

    async def write(self, data: bytes) -> None:
        if not self._unanswered:
            await self._stream.write(data)

    async def _answered_here(self, body: bytes) -> bool:
        message = Message()
        try:
            message.ParseFromString(body)
        except Exception:  # protobuf's DecodeError: the library resets the stream for it
            return False
        self._unanswered = message.type == Message.MessageType.ADD_PROVIDER
        key = message.record.key if message.HasField("record") else message.key
        if not key.startswith(PREFIX):
            return False
        if message.type == Message.MessageType.GET_VALUE:
            held_record(self._dht, bytes(message.key))  # drops an expired one first
            return False
        if message.type != Message.MessageType.PUT_VALUE:
            return False
        peer = self._stream.muxed_conn.peer_id
        try:
            if message.key != message.record.key:
                raise InvalidRecord("the message key and the record key differ")
            record = accept(self._dht, bytes(key), bytes(message.record.value))
        except (InvalidRecord, InvalidInput) as exc:
            # go-libp2p-kad-dht answers a refused PUT_VALUE by resetting the stream.
            log.info("ipns: refused a record from %s: %s", peer, exc)
            await self._stream.reset()
            raise NetworkError(f"refused an IPNS record from {peer}: {exc}") from exc
        log.debug("ipns: stored %s sequence %d from %s", record.name, record.sequence, peer)
        reply = Message(type=Message.MessageType.PUT_VALUE, key=key)
        reply.record.CopyFrom(message.record)
        await self._stream.write(frame(reply.SerializeToString()))
        return True


def guard_ipns_puts(host: Any, dht: KadDHT, protocols: Sequence[str]) -> None:
    """Serve the DHT's inbound streams on ``protocols`` (its Kademlia ids) through
    :class:`_IpnsPutsFirst`, in front of the library's handler.

    A DHT in client mode serves nothing, so nothing is installed for it.
    """
    if dht.mode != DHTMode.SERVER:
        return

    async def handle(stream: Any) -> None:
        await dht.handle_stream(_IpnsPutsFirst(stream, dht))  # type: ignore[arg-type]

    for protocol in protocols:
        host.set_stream_handler(TProtocol(protocol), handle)


class IpnsDht:
    """IPNS records put to and got from the DHT peers closest to a name, and held locally."""

    def __init__(self, dht: KadDHT, *, peer_timeout: float = PEER_TIMEOUT) -> None:
        self.dht = dht
        self.peer_timeout = peer_timeout

    async def _closest(self, key: bytes) -> list[ID]:
        me = self.dht.host.get_id()
        try:
            found = await self.dht.peer_routing.find_closest_peers_network(key)
        except NET_ERRORS as exc:
            raise NetworkError(f"finding the peers closest to an IPNS name failed: {exc}"
                               ) from exc
        return [peer for peer in found if peer != me]

    async def _put_to(self, peer: ID, key: bytes, raw: bytes) -> bool:
        """One PUT_VALUE; taken when the peer echoes the record, as go-libp2p-kad-dht
        checks. A refusal (a reset) or any failure of the peer is False."""
        message = Message(type=Message.MessageType.PUT_VALUE, key=key)
        message.record.CopyFrom(Record(key=key, value=raw))
        stream = None
        try:
            stream = await self.dht.host.new_stream(peer, _AMINO_ONLY)
            await stream.write(frame(message.SerializeToString()))
            body = await FrameReader(stream, MAX_DHT_MESSAGE_SIZE).next()
            reply = Message()
            reply.ParseFromString(body or b"")
        except _PUT_FAILURES as exc:
            log.debug("ipns: %s did not take the record: %r", peer, exc)
            return False
        finally:
            if stream is not None:
                await close_quietly(stream)
        return bool(reply.type == Message.MessageType.PUT_VALUE and reply.record.value == raw)

    async def put(self, record: ipns.IpnsRecord) -> int:
        """Hold ``record`` and give it to the closest peers; how many took it.

        Raises:
            InvalidRecord: it does not validate, or a better one is held.
            NetworkError: the closest peers could not be found.
        """
        key = ipns.dht_key(record.name)
        accept(self.dht, key, record.raw)
        stored = 0
        limit = trio.CapacityLimiter(ALPHA)

        async def store(peer: ID) -> None:
            nonlocal stored
            async with limit:
                with trio.move_on_after(self.peer_timeout):
                    if await self._put_to(peer, key, record.raw):
                        stored += 1

        peers = await self._closest(key)
        async with trio.open_nursery() as nursery:
            for peer in peers:
                nursery.start_soon(store, peer)
        log.info("ipns: %s sequence %d given to %d of %d peers", record.name,
                 record.sequence, stored, len(peers))
        return stored

    async def get(self, name: str) -> tuple[list[ipns.IpnsRecord], dict[str, str]]:
        """Every valid record of ``name`` held here or by the closest peers, and why each
        refused answer was refused (by peer id).

        Raises:
            InvalidInput: ``name`` is not a key's name.
            NetworkError: the closest peers could not be found.
        """
        key = ipns.dht_key(name)
        found: list[ipns.IpnsRecord] = []
        refused: dict[str, str] = {}
        held = held_record(self.dht, key)
        if held is not None:
            found.append(held)
        limit = trio.CapacityLimiter(ALPHA)

        async def ask(peer: ID) -> None:
            async with limit:
                answer = None
                with trio.move_on_after(self.peer_timeout):
                    answer = await self.dht.value_store._get_from_peer(
                        peer, key, return_record=True)
            if not isinstance(answer, Record):
                return
            try:
                found.append(ipns.validate_record(name, bytes(answer.value)))
            except IpfsMcpError as exc:
                refused[str(peer)] = str(exc)
                log.info("ipns: %s sent an invalid record of %s: %s", peer, name, exc)

        peers = await self._closest(key)
        async with trio.open_nursery() as nursery:
            for peer in peers:
                nursery.start_soon(ask, peer)
        if found:
            # Hold the best, as a resolver caches it and answers others with it.
            best = ipns.best_record(found)
            try:
                accept(self.dht, key, best.raw)
            except InvalidRecord:
                pass
        return found, refused

