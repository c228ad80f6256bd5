"""The Circuit Relay v2 wire: protocol ids, messages and their framing.

Spec: libp2p/specs ``relay/circuit-v2.md``. Both sides of the relay use this module: the
client (reserving, dialing through a relay, accepting ``stop`` CONNECTs) and the relay
service (the hop side).

The messages are py-libp2p's generated ``circuit_pb2`` (the spec's ``circuit.proto``:
the same type, field and status numbers; its one extension, ``HopMessage.senderRecord``,
is an optional field other peers skip). Each message travels behind an unsigned-varint
length, at most :data:`MAX_MESSAGE` bytes as go-libp2p's ``maxMessageSize``.

Reads are exact (one byte at a time for the prefix, then the body): after a CONNECT's
STATUS the same stream carries the relayed connection's raw bytes, so reading ahead would
swallow the first bytes of the security handshake.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from google.protobuf.message import DecodeError
from google.protobuf.message import Message as _Message
from libp2p.abc import INetStream
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.relay.circuit_v2.pb.circuit_pb2 import (
    HopMessage,
    Limit,
    PeerId,
    Reservation,
    Status,
    StopMessage,
)
from multiaddr import Multiaddr

from ipfs_mcp.backends.core import varint
from ipfs_mcp.backends.errors import RelayError
from ipfs_mcp.p2p._net import NET_ERRORS

__all__ = [
    "HOP_PROTOCOL",
    "MAX_MESSAGE",
    "STOP_PROTOCOL",
    "HopMessage",
    "RelayLimit",
    "ReservationInfo",
    "Status",
    "StopMessage",
    "hop_connect",
    "hop_reserve",
    "hop_status",
    "limit_of",
    "limit_message",
    "read_hop",
    "read_stop",
    "status_name",
    "stop_connect",
    "stop_status",
    "write_message",
]

HOP_PROTOCOL = TProtocol("/libp2p/circuit/relay/0.2.0/hop")
STOP_PROTOCOL = TProtocol("/libp2p/circuit/relay/0.2.0/stop")

# go-libp2p's circuitv2 maxMessageSize: every hop and stop message fits in 4 KiB.
MAX_MESSAGE = 4096

_M = TypeVar("_M", bound=_Message)


@dataclass(frozen=True)
class RelayLimit:
    """A relayed connection's limit: seconds and bytes (each way); 0 means none given."""

    duration_s: int
    data_bytes: int

    @property
    def limited(self) -> bool:
        return self.duration_s > 0 or self.data_bytes > 0


@dataclass(frozen=True)
class ReservationInfo:
    """What a relay granted: expiry (UNIX seconds), the relay's public addresses, the limit
    each relayed connection will carry, and the signed voucher (kept, not checked)."""

    expire: int
    relay_addrs: tuple[Multiaddr, ...]
    limit: RelayLimit
    voucher: bytes


def status_name(code: int) -> str:
    """The spec's name of a status code (``RESERVATION_REFUSED``), or the number."""
    try:
        return str(Status.Name(code))  # type: ignore[arg-type]
    except ValueError:
        return str(code)


def limit_of(msg: HopMessage | StopMessage) -> RelayLimit:
    """The limit a message carries (none: unlimited)."""
    if not msg.HasField("limit"):
        return RelayLimit(0, 0)
    return RelayLimit(msg.limit.duration if msg.limit.HasField("duration") else 0,
                      msg.limit.data if msg.limit.HasField("data") else 0)


def limit_message(limit: RelayLimit) -> Limit:
    """The ``Limit`` message of ``limit`` (fields left out where zero, as go-libp2p does)."""
    out = Limit()
    if limit.duration_s:
        out.duration = limit.duration_s
    if limit.data_bytes:
        out.data = limit.data_bytes
    return out


def _peer(peer_id: ID, addrs: tuple[Multiaddr, ...] = ()) -> PeerId:
    return PeerId(id=peer_id.to_bytes(), addrs=[a.to_bytes() for a in addrs])


def hop_reserve() -> HopMessage:
    return HopMessage(type=HopMessage.RESERVE)


def hop_connect(target: ID) -> HopMessage:
    return HopMessage(type=HopMessage.CONNECT, peer=_peer(target))


def hop_status(status: int, *, reservation: Reservation | None = None,
               limit: RelayLimit | None = None) -> HopMessage:
    msg = HopMessage(type=HopMessage.STATUS, status=status)  # type: ignore[arg-type]
    if reservation is not None:
        msg.reservation.CopyFrom(reservation)
    if limit is not None and limit.limited:
        msg.limit.CopyFrom(limit_message(limit))
    return msg


def stop_connect(initiator: ID, limit: RelayLimit | None = None) -> StopMessage:
    msg = StopMessage(type=StopMessage.CONNECT, peer=_peer(initiator))
    if limit is not None and limit.limited:
        msg.limit.CopyFrom(limit_message(limit))
    return msg


def stop_status(status: int) -> StopMessage:
    return StopMessage(type=StopMessage.STATUS, status=status)  # type: ignore[arg-type]


async def write_message(stream: INetStream, msg: HopMessage | StopMessage) -> None:
    """Send one framed message.

    Raises:
        RelayError: the message is over :data:`MAX_MESSAGE` or the stream broke.
    """
    body = msg.SerializeToString()
    if len(body) > MAX_MESSAGE:
        raise RelayError(f"relay message of {len(body)} bytes over the {MAX_MESSAGE}-byte cap")
    try:
        await stream.write(varint.encode(len(body)) + body)
    except NET_ERRORS as exc:
        raise RelayError(f"relay stream broke while writing: {exc}") from exc


async def _read_exactly(stream: INetStream, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        try:
            chunk = await stream.read(n - len(out))
        except NET_ERRORS as exc:
            raise RelayError(f"relay stream broke while reading: {exc}") from exc
        if not chunk:
            raise RelayError("relay stream ended inside a message")
        out += chunk
    return bytes(out)


async def _read_frame(stream: INetStream) -> bytes:
    prefix = bytearray()
    for _ in range(5):  # 4096 needs two varint bytes; five allows any u32 to be refused
        prefix += await _read_exactly(stream, 1)
        if prefix[-1] < 0x80:
            break
    else:
        raise RelayError("relay message length prefix too long", "MALFORMED_MESSAGE")
    length, _ = varint.decode(prefix)
    if length > MAX_MESSAGE:
        raise RelayError(f"relay announced a {length}-byte message; the cap is {MAX_MESSAGE}",
                         "MALFORMED_MESSAGE")
    return await _read_exactly(stream, length)


def _decode(cls: type[_M], body: bytes) -> _M:
    try:
        return cls.FromString(body)
    except DecodeError as exc:
        raise RelayError(f"malformed {cls.__name__}: {exc}", "MALFORMED_MESSAGE") from exc


async def read_hop(stream: INetStream) -> HopMessage:
    """The next HopMessage on ``stream``, read exactly (no byte past it).

    Raises:
        RelayError: the stream broke or ended, or the message is oversized or malformed.
    """
    return _decode(HopMessage, await _read_frame(stream))


async def read_stop(stream: INetStream) -> StopMessage:
    """The next StopMessage on ``stream``, read exactly (no byte past it).

    Raises:
        RelayError: the stream broke or ended, or the message is oversized or malformed.
    """
    return _decode(StopMessage, await _read_frame(stream))
