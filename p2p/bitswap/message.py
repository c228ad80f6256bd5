"""The bitswap wire format, as boxo and Helia speak it.

One message, protobuf (boxo's ``bitswap/message/pb/message.proto``)::

    Message {
      Wantlist wantlist = 1;            { repeated Entry entries = 1; bool full = 2; }
                                        Entry { bytes block = 1;   binary CID
                                                int32 priority = 2;
                                                bool cancel = 3;
                                                WantType wantType = 4;   Block=0, Have=1
                                                bool sendDontHave = 5; }
      repeated bytes blocks = 2;        1.0.0: bare block bytes (CIDv0 sha2-256 implied)
      repeated Block payload = 3;       1.1.0+: { bytes prefix = 1; bytes data = 2; }
      repeated BlockPresence blockPresences = 4;   { bytes cid = 1; Have=0/DontHave=1 = 2; }
      int32 pendingBytes = 5;
    }

On a stream each message is preceded by its length as an unsigned varint. Messages travel
only on streams the *sender* opened: Kubo never reads what is written back on a stream it
opened, so replies always go out on our own outbound stream.

Decoding only parses; it does not hash. Hashing a received block (to learn its CID and so
verify it) is done by the engine in a worker thread.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import IntEnum

from multiformats import CID

from ipfs_mcp.backends.core import varint
from ipfs_mcp.backends.core.cids import multihash_of
from ipfs_mcp.backends.core.dagpb import cid_from_binary, sha256_cid
from ipfs_mcp.backends.core.protobuf import bytes_field, iter_fields, key, varint_field
from ipfs_mcp.backends.errors import IntegrityError, NetworkError

PROTOCOL_120 = "/ipfs/bitswap/1.2.0"
PROTOCOL_110 = "/ipfs/bitswap/1.1.0"
PROTOCOL_100 = "/ipfs/bitswap/1.0.0"
PROTOCOL_LEGACY = "/ipfs/bitswap"
# Preference order when we open a stream: newest first, as boxo does.
PROTOCOLS = (PROTOCOL_120, PROTOCOL_110, PROTOCOL_100, PROTOCOL_LEGACY)

# boxo's network.MessageSizeMax: peers drop anything bigger, and so do we.
MAX_MESSAGE_SIZE = 4 << 20
# The libp2p bitswap spec lets implementations refuse blocks over 2 MiB.
MAX_BLOCK_SIZE = 2 << 20
# Entries beyond this in one peer's wantlist are ignored (boxo caps a peer's queue at 1024).
MAX_WANTLIST = 1024

_DAG_PB = 0x70
_SHA256 = 0x12
_BLOCK_KEY = key(2, 2)  # Message.blocks (1.0.0)
_PAYLOAD_KEY = key(3, 2)  # Message.payload (1.1.0+)
_DATA_KEY = key(2, 2)  # Block.data


class WantType(IntEnum):
    BLOCK = 0
    HAVE = 1


class Presence(IntEnum):
    HAVE = 0
    DONT_HAVE = 1


@dataclass(frozen=True, slots=True)
class WantEntry:
    cid: CID
    want_type: WantType = WantType.BLOCK
    cancel: bool = False
    send_dont_have: bool = False
    priority: int = 1


@dataclass(frozen=True, slots=True)
class Payload:
    """A received block: not yet hashed, so not yet trusted."""

    prefix: bytes | None  # None for a 1.0.0 block (implicitly CIDv0, sha2-256)
    data: bytes


@dataclass(slots=True)
class Message:
    wants: list[WantEntry] = field(default_factory=list)
    full: bool = False
    blocks: list[tuple[CID, bytes]] = field(default_factory=list)  # outgoing, trusted
    payloads: list[Payload] = field(default_factory=list)  # incoming, untrusted
    presences: list[tuple[CID, Presence]] = field(default_factory=list)
    pending_bytes: int = 0

    def empty(self) -> bool:
        return not (self.wants or self.full or self.blocks or self.payloads or self.presences)


# -- encoding ---------------------------------------------------------------------------
def cid_prefix(cid: CID) -> bytes:
    """go-cid's ``Prefix.Bytes()``: version, codec, hash code and digest length as varints."""
    raw = bytes(cid.digest)
    code, pos = varint.decode(raw, 0, strict=True)
    length, _ = varint.decode(raw, pos, strict=True)
    return (varint.encode(cid.version) + varint.encode(cid.codec.code)
            + varint.encode(code) + varint.encode(length))


def encode_message(msg: Message, protocol: str = PROTOCOL_120) -> bytes:
    """Serialise ``msg`` for a peer that negotiated ``protocol``.

    Older dialects lose what they cannot express: 1.0.0 and 1.1.0 know no want-have, no
    DONT_HAVE and no presences, and 1.0.0 carries bare blocks without CID prefixes.
    """
    return b"".join(encode_parts(msg, protocol))


# Over the complexity bound (C901): one branch per field and per wire version.
def encode_parts(msg: Message, protocol: str = PROTOCOL_120) -> list[bytes]:  # noqa: C901
    """:func:`encode_message` as pieces to join: small fields, and each block's bytes as
    they are. Blocks are most of the bytes; joined once with the length prefix in front
    (:func:`frame_parts`), each is copied once on its way to the wire."""
    modern = protocol == PROTOCOL_120
    legacy_blocks = protocol in (PROTOCOL_100, PROTOCOL_LEGACY)
    out = bytearray()
    if msg.wants or msg.full:
        entries = bytearray()
        for want in msg.wants:
            if not modern and want.want_type == WantType.HAVE and not want.cancel:
                continue
            entry = bytes_field(1, bytes(want.cid))
            if want.priority:
                entry += varint_field(2, want.priority & 0xFFFFFFFFFFFFFFFF)
            if want.cancel:
                entry += varint_field(3, 1)
            if modern and want.want_type != WantType.BLOCK:
                entry += varint_field(4, int(want.want_type))
            if modern and want.send_dont_have:
                entry += varint_field(5, 1)
            entries += bytes_field(1, entry)
        if msg.full:
            entries += varint_field(2, 1)
        out += bytes_field(1, entries)
    parts = [bytes(out)] if out else []
    for cid, data in msg.blocks:
        if legacy_blocks:
            parts.append(_BLOCK_KEY + varint.encode(len(data)))
        else:
            prefix = bytes_field(1, cid_prefix(cid))
            head = _DATA_KEY + varint.encode(len(data))
            parts.append(_PAYLOAD_KEY + varint.encode(len(prefix) + len(head) + len(data))
                         + prefix + head)
        parts.append(data)
    out = bytearray()
    if modern:
        for cid, presence in msg.presences:
            body = bytes_field(1, bytes(cid))
            if presence != Presence.HAVE:
                body += varint_field(2, int(presence))
            out += bytes_field(4, body)
        if msg.pending_bytes:
            out += varint_field(5, msg.pending_bytes)
    if out:
        parts.append(bytes(out))
    return parts


def frame_parts(messages: list[list[bytes]]) -> bytes:
    """Messages (each from :func:`encode_parts`) behind their length prefixes, as one
    buffer: one write, one copy of every block."""
    pieces: list[bytes] = []
    for parts in messages:
        pieces.append(varint.encode(sum(len(p) for p in parts)))
        pieces += parts
    return b"".join(pieces)


# -- decoding ---------------------------------------------------------------------------
def _cid(raw: bytes | memoryview) -> CID:
    try:
        return cid_from_binary(bytes(raw))
    except (ValueError, KeyError, TypeError) as exc:
        raise NetworkError(f"bitswap message carries an invalid CID: {exc}") from exc


def _bool(value: int | memoryview) -> bool:
    return bool(value) if isinstance(value, int) else False


def decode_message(buf: bytes | memoryview) -> Message:  # noqa: C901 - a branch per field
    """Parse one message body (without its length prefix).

    Raises:
        NetworkError: the bytes are not a well-formed bitswap message.
    """
    msg = Message()
    try:
        for fnum, _wire, value in iter_fields(buf):
            if isinstance(value, int):
                if fnum == 5:
                    msg.pending_bytes = value
                continue
            if fnum == 1:
                _decode_wantlist(value, msg)
            elif fnum == 2:
                msg.payloads.append(Payload(None, bytes(value)))
            elif fnum == 3:
                prefix = data = None
                for bf, _, bv in iter_fields(value):
                    if bf == 1 and not isinstance(bv, int):
                        prefix = bytes(bv)
                    elif bf == 2 and not isinstance(bv, int):
                        data = bytes(bv)
                if prefix is None:
                    raise NetworkError("bitswap block without a CID prefix")
                msg.payloads.append(Payload(prefix, data or b""))
            elif fnum == 4:
                cid_raw: memoryview | None = None
                kind = Presence.HAVE
                for pf, _, pv in iter_fields(value):
                    if pf == 1 and not isinstance(pv, int):
                        cid_raw = pv
                    elif pf == 2 and isinstance(pv, int):
                        kind = Presence.DONT_HAVE if pv == 1 else Presence.HAVE
                if cid_raw is not None:
                    msg.presences.append((_cid(cid_raw), kind))
    except IntegrityError as exc:
        raise NetworkError(f"malformed bitswap message: {exc}") from exc
    return msg


def _decode_wantlist(buf: memoryview, msg: Message) -> None:
    for fnum, _, value in iter_fields(buf):
        if fnum == 2 and isinstance(value, int):
            msg.full = bool(value)
        elif fnum == 1 and not isinstance(value, int):
            cid: CID | None = None
            want_type, cancel, sdh, priority = WantType.BLOCK, False, False, 1
            for ef, _, ev in iter_fields(value):
                if ef == 1 and not isinstance(ev, int):
                    cid = _cid(ev)
                elif ef == 2 and isinstance(ev, int):
                    priority = ev
                elif ef == 3:
                    cancel = _bool(ev)
                elif ef == 4 and isinstance(ev, int):
                    want_type = WantType.HAVE if ev == 1 else WantType.BLOCK
                elif ef == 5:
                    sdh = _bool(ev)
            if cid is not None:
                msg.wants.append(WantEntry(cid, want_type, cancel, sdh, priority))


def block_cid(payload: Payload) -> CID:
    """Hash a received block and build the CID it really has.

    The sender's prefix only says *how* to hash; the digest comes from the bytes, so the
    result can be trusted. Called in a worker thread.

    Raises:
        NetworkError: the prefix is malformed or names a hash we cannot compute.
    """
    data = payload.data
    if payload.prefix is None:
        return sha256_cid(0, _DAG_PB, hashlib.sha256(data).digest())
    try:
        raw = payload.prefix
        version, pos = varint.decode(raw, 0, strict=True)
        codec, pos = varint.decode(raw, pos, strict=True)
        code, pos = varint.decode(raw, pos, strict=True)
        length, _ = varint.decode(raw, pos, strict=True)
    except (ValueError, IndexError) as exc:
        raise NetworkError(f"malformed CID prefix: {exc}") from exc
    if code == _SHA256:
        if length not in (32, -1):
            raise NetworkError(f"sha2-256 prefix with digest length {length}")
        if version == 0 and codec != _DAG_PB:
            raise NetworkError("CIDv0 prefix with a codec other than dag-pb")
        if version in (0, 1):
            try:
                return sha256_cid(version, codec, hashlib.sha256(data).digest())
            except KeyError as exc:
                raise NetworkError(f"unusable CID prefix: unknown codec 0x{codec:x}") from exc
        mh = b"\x12\x20" + hashlib.sha256(data).digest()
    else:
        try:
            mh = multihash_of(data, code, size=length if length > 0 else None)
        except IntegrityError as exc:
            raise NetworkError(f"cannot hash a block: {exc}") from exc
    try:
        return CID("base32", version, codec, mh)
    except (KeyError, ValueError) as exc:
        raise NetworkError(f"unusable CID prefix: {exc}") from exc
