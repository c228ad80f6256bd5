"""IPNS records: made, read, validated and compared as Kubo 0.43 (boxo's ``ipns``) does.

A record is the protobuf ``IpnsEntry``::

    1 value  2 signatureV1  3 validityType  4 validity  5 sequence  6 ttl
    7 pubKey  8 signatureV2  9 data

The signed part (V2) is ``data``, DAG-CBOR of ``{Value, Validity, ValidityType, Sequence,
TTL}``, signed as ``b"ipns-signature:" + data``. Like Kubo we also fill the V1 fields (and
sign them the V1 way) so older resolvers still read our records; when a record carries V1
fields, they must equal the V2 ones or it is refused.

A name is the key's peer id: for Ed25519 the identity multihash of the protobuf public key,
written as a CIDv1 ``libp2p-key`` in base36 (``k51…``). Its DHT key is
``b"/ipns/" + multihash``.

Errors: :class:`~ipfs_mcp.backends.errors.InvalidRecord` for any record that fails
validation, :class:`~ipfs_mcp.backends.errors.InvalidInput` for a malformed name or value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dag_cbor
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_public_key,
)
from multiformats import CID, multibase, multihash

from ipfs_mcp.backends.core import protobuf
from ipfs_mcp.backends.core.cbor import decode as cbor_decode
from ipfs_mcp.backends.errors import IntegrityError, InvalidInput, InvalidRecord

__all__ = [
    "MAX_RECORD_SIZE", "IpnsRecord", "KeyInfo", "NameRecord", "best_record", "dht_key",
    "format_validity", "ipns_name", "key_multihash", "make_record", "name_multihash",
    "name_of_key", "parse_record", "parse_validity", "public_key_bytes", "validate_record",
]

MAX_RECORD_SIZE = 10 * 1024  # the spec's and boxo's bound on a whole record
SIGNATURE_V2_PREFIX = b"ipns-signature:"
VALIDITY_EOL = 0
_KEY_TYPE_ED25519 = 1
_KEY_TYPE_RSA = 0  # older names (Qm…): verified, as Kubo does, never made here
MIN_RSA_BITS = 2048  # go-libp2p's MinRsaKeyBits
_LIBP2P_KEY = 0x72
_IDENTITY = 0x00
_MAX_U64 = 2**64 - 1
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True)
class NameRecord:
    """One IPNS record, verified."""

    name: str  # the name, as ``/ipns/<k51… in base36 CIDv1 libp2p-key>``
    value: str  # what it points at: ``/ipfs/<cid>[/path]`` or ``/ipns/<name>[/path]``
    sequence: int
    validity: str | None  # end of validity, RFC 3339 (as in the record)
    ttl_seconds: float | None  # how long a resolver may cache it
    source: str  # who answered: "dht", "delegated router", "gateway", "kubo", "local"


@dataclass(frozen=True)
class KeyInfo:
    """A signing key the node holds; ``self`` is the node's identity."""

    name: str
    ipns_name: str  # ``/ipns/k51…``


@dataclass(frozen=True)
class IpnsRecord:
    """A record that passed :func:`validate_record` (or was just made), with its bytes."""

    name: str  # ``/ipns/k51…``
    value: str
    sequence: int
    validity: str  # RFC 3339, as signed
    validity_ns: int  # the same instant, nanoseconds since the epoch (for comparing)
    ttl_ns: int
    raw: bytes  # the protobuf, exactly as signed and sent

    def to_name_record(self, source: str) -> NameRecord:
        return NameRecord(name=self.name, value=self.value, sequence=self.sequence,
                          validity=self.validity, ttl_seconds=self.ttl_ns / 1e9, source=source)


def public_key_bytes(key: Ed25519PublicKey) -> bytes:
    """The libp2p protobuf ``PublicKey`` of an Ed25519 key (what peer ids hash)."""
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return protobuf.varint_field(1, _KEY_TYPE_ED25519) + protobuf.bytes_field(2, raw)


def key_multihash(key: Ed25519PublicKey) -> bytes:
    """The peer id of ``key``: an Ed25519 key is short enough to be inlined (identity hash)."""
    return bytes(multihash.wrap(public_key_bytes(key), "identity"))


def ipns_name(mh: bytes) -> str:
    """``/ipns/k51…`` for a peer id multihash."""
    return "/ipns/" + CID("base36", 1, _LIBP2P_KEY, mh).encode("base36")


def name_multihash(name: str) -> bytes:
    """The peer id multihash of an IPNS name: ``/ipns/k51…``, ``k51…``, any base of a CIDv1
    ``libp2p-key``, or a base58 peer id (``12D3Koo…``).

    Raises:
        InvalidInput: not a key's name (a DNSLink domain, a content CID, garbage).
    """
    text = name.removeprefix("/ipns/").split("/", 1)[0]
    try:
        if text.startswith(("Qm", "1")):  # a bare base58btc multihash, as peer ids print
            mh = bytes(multibase.decode("z" + text))
        else:
            cid = CID.decode(text)
            if cid.codec.code != _LIBP2P_KEY:
                raise InvalidInput(f"{name!r} is a CID of {cid.codec.name}, not an IPNS key")
            mh = bytes(cid.digest)
        multihash.unwrap_raw(mh)
    except InvalidInput:
        raise
    except (ValueError, KeyError) as exc:
        raise InvalidInput(f"{name!r} is not an IPNS name (a k51… key): {exc}") from exc
    return mh


def dht_key(name: str) -> bytes:
    """The DHT key of a name's records: ``/ipns/`` and the binary multihash, as Kubo's.

    Raises:
        InvalidInput: not a key's name.
    """
    return b"/ipns/" + name_multihash(name)


def name_of_key(key: bytes) -> str:
    """``/ipns/k51…`` of a DHT key (``b"/ipns/" + multihash``).

    Raises:
        InvalidInput: not an IPNS key.
    """
    mh = key.removeprefix(b"/ipns/")
    if mh == key:
        raise InvalidInput("not an /ipns/ key")
    try:
        multihash.unwrap_raw(mh)
        return ipns_name(mh)
    except (ValueError, KeyError) as exc:
        raise InvalidInput(f"an /ipns/ key that is not a multihash: {exc}") from exc


def format_validity(when: datetime) -> str:
    """RFC 3339 with nanoseconds, trailing zeros dropped (Go's ``time.RFC3339Nano``)."""
    when = when.astimezone(UTC)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if when.microsecond:
        text += "." + f"{when.microsecond:06d}000".rstrip("0")
    return text + "Z"


def parse_validity(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 time.

    Raises:
        InvalidRecord: not RFC 3339.
    """
    match = _RFC3339.match(text)
    if match is None:
        raise InvalidRecord(f"validity {text[:40]!r} is not an RFC 3339 time")
    year, month, day, hour, minute, second, frac, zone = match.groups()
    try:
        tz = UTC if zone == "Z" else datetime.strptime(zone, "%z").tzinfo
        base = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                        tzinfo=tz)
    except ValueError as exc:
        raise InvalidRecord(f"validity {text[:40]!r}: {exc}") from exc
    nanos = int((frac or "0").ljust(9, "0"))
    return int(base.timestamp()) * 1_000_000_000 + nanos


def make_record(key: Ed25519PrivateKey, value: str, *, sequence: int, lifetime_seconds: float,
                ttl_seconds: float, now: datetime | None = None) -> IpnsRecord:
    """A V1+V2 record of ``value`` signed by ``key``, valid for ``lifetime_seconds``.

    Raises:
        InvalidInput: a value that is not a path, a negative lifetime or TTL, a sequence
            outside uint64.
    """
    if not value.startswith(("/ipfs/", "/ipns/")):
        raise InvalidInput(f"an IPNS value is a path /ipfs/… or /ipns/…, not {value[:60]!r}")
    if lifetime_seconds <= 0 or ttl_seconds < 0 or not 0 <= sequence <= _MAX_U64:
        raise InvalidInput("an IPNS record needs a positive lifetime, a TTL ≥ 0 and a "
                           "sequence within uint64")
    start = now or datetime.now(UTC)
    validity = format_validity(start + timedelta(seconds=lifetime_seconds))
    ttl_ns = int(ttl_seconds * 1e9)
    value_b, validity_b = value.encode(), validity.encode()
    data = dag_cbor.encode({"Value": value_b, "Validity": validity_b,
                            "ValidityType": VALIDITY_EOL, "Sequence": sequence, "TTL": ttl_ns})
    # V1's signed bytes end in the validity type's Go name ("EOL"), as boxo signs them.
    signature_v1 = key.sign(value_b + validity_b + b"EOL")
    signature_v2 = key.sign(SIGNATURE_V2_PREFIX + data)
    raw = b"".join((
        protobuf.bytes_field(1, value_b), protobuf.bytes_field(2, signature_v1),
        protobuf.varint_field(3, VALIDITY_EOL), protobuf.bytes_field(4, validity_b),
        protobuf.varint_field(5, sequence), protobuf.varint_field(6, ttl_ns),
        protobuf.bytes_field(8, signature_v2), protobuf.bytes_field(9, data),
    ))
    return IpnsRecord(name=ipns_name(key_multihash(key.public_key())), value=value,
                      sequence=sequence, validity=validity,
                      validity_ns=parse_validity(validity), ttl_ns=ttl_ns, raw=raw)


_PB_BYTES = {1: "value", 2: "signatureV1", 4: "validity", 7: "pubKey", 8: "signatureV2",
             9: "data"}
_PB_INTS = {3: "validityType", 5: "sequence", 6: "ttl"}


def _envelope(raw: bytes) -> tuple[dict[str, bytes], dict[str, int]]:
    """The protobuf fields of a record (the last of a repeated field wins, as in protobuf)."""
    blobs: dict[str, bytes] = {}
    ints: dict[str, int] = {}
    try:
        for field, wire, value in protobuf.iter_fields(raw):
            if field in _PB_BYTES and wire == protobuf.WIRE_BYTES:
                blobs[_PB_BYTES[field]] = bytes(value)
            elif field in _PB_INTS and wire == protobuf.WIRE_VARINT:
                ints[_PB_INTS[field]] = int(value)
    except IntegrityError as exc:
        raise InvalidRecord(f"the record is not a protobuf IpnsEntry: {exc}") from exc
    return blobs, ints


def _signed_data(data: bytes) -> tuple[bytes, bytes, int, int, int]:
    """Value, Validity, ValidityType, Sequence, TTL from the signed DAG-CBOR."""
    try:
        fields = cbor_decode(data, "IPNS record data")
    except IntegrityError as exc:
        raise InvalidRecord(str(exc)) from exc
    if not isinstance(fields, dict):
        raise InvalidRecord("the record's data is not a DAG-CBOR map")
    value, validity = fields.get("Value"), fields.get("Validity")
    vtype, seq, ttl = fields.get("ValidityType"), fields.get("Sequence"), fields.get("TTL", 0)
    if not (isinstance(value, bytes) and isinstance(validity, bytes)):
        raise InvalidRecord("the record's data lacks Value or Validity bytes")
    if not (isinstance(vtype, int) and isinstance(seq, int) and isinstance(ttl, int)):
        raise InvalidRecord("the record's data lacks ValidityType, Sequence or TTL integers")
    if not (0 <= seq <= _MAX_U64 and 0 <= ttl <= _MAX_U64):
        raise InvalidRecord("the record's Sequence or TTL is outside uint64")
    return value, validity, vtype, seq, ttl


def _public_key(mh: bytes, embedded: bytes | None) -> Ed25519PublicKey | RSAPublicKey:
    """The key that must have signed: inlined in the name, or embedded and hashing to it."""
    code, digest = multihash.unwrap_raw(mh)
    if code == _IDENTITY:
        key_pb = bytes(digest)
        if embedded is not None and embedded != key_pb:
            raise InvalidRecord("the record's embedded key is not the name's key")
    elif embedded is None:
        raise InvalidRecord("the name does not inline its key and the record embeds none")
    else:
        try:
            hashed = bytes(multihash.digest(embedded, multihash.get(code=code).name))
        except (KeyError, ValueError) as exc:
            raise InvalidRecord(f"the name's hash function is unknown: {exc}") from exc
        if hashed != mh:
            raise InvalidRecord("the record's embedded key does not hash to the name")
        key_pb = embedded
    try:
        fields = {f: v for f, _, v in protobuf.iter_fields(key_pb)}
    except IntegrityError as exc:
        raise InvalidRecord(f"the name's key is not a libp2p public key: {exc}") from exc
    raw_key = fields.get(2)
    if fields.get(1) == _KEY_TYPE_RSA and isinstance(raw_key, memoryview):
        try:
            rsa_key = load_der_public_key(bytes(raw_key))
        except ValueError as exc:
            raise InvalidRecord(f"the name's RSA key is malformed: {exc}") from exc
        if not isinstance(rsa_key, RSAPublicKey) or rsa_key.key_size < MIN_RSA_BITS:
            raise InvalidRecord(f"the name's RSA key is under {MIN_RSA_BITS} bits")
        return rsa_key
    if fields.get(1) != _KEY_TYPE_ED25519 or not isinstance(raw_key, memoryview):
        raise InvalidRecord("only Ed25519 and RSA keys are supported for IPNS records")
    try:
        return Ed25519PublicKey.from_public_bytes(bytes(raw_key))
    except ValueError as exc:
        raise InvalidRecord(f"the name's Ed25519 key is malformed: {exc}") from exc


def parse_record(name: str, raw: bytes) -> IpnsRecord:
    """Validate ``raw`` as a record of ``name`` and read it, ignoring its validity's end.

    Raises:
        InvalidRecord: oversized, malformed, badly signed, another key's, or V1 and V2
            fields that disagree.
        InvalidInput: ``name`` is not a key's name.
    """
    mh = name_multihash(name)
    if len(raw) > MAX_RECORD_SIZE:
        raise InvalidRecord(f"the record is {len(raw)} bytes, over the {MAX_RECORD_SIZE} limit")
    blobs, ints = _envelope(raw)
    if "signatureV2" not in blobs or "data" not in blobs:
        raise InvalidRecord("the record has no V2 signature or data")
    key = _public_key(mh, blobs.get("pubKey"))
    try:
        signed = SIGNATURE_V2_PREFIX + blobs["data"]
        if isinstance(key, RSAPublicKey):  # PKCS#1 v1.5 over SHA-256, as go-libp2p signs
            key.verify(blobs["signatureV2"], signed, padding.PKCS1v15(), hashes.SHA256())
        else:
            key.verify(blobs["signatureV2"], signed)
    except InvalidSignature as exc:
        raise InvalidRecord("the record's signature is not the name's key's") from exc
    value, validity, vtype, seq, ttl = _signed_data(blobs["data"])
    if any(k in blobs for k in ("value", "validity", "signatureV1")):
        # V1 fields ride along unsigned by V2: they must say what the signed data says.
        if (blobs.get("value"), blobs.get("validity"), ints.get("validityType", 0),
                ints.get("sequence", 0), ints.get("ttl", 0)) != (value, validity, vtype, seq, ttl):
            raise InvalidRecord("the record's V1 fields disagree with its signed V2 data")
    if vtype != VALIDITY_EOL:
        raise InvalidRecord(f"validity type {vtype} is not EOL (0)")
    try:
        value_text, validity_text = value.decode(), validity.decode()
    except UnicodeDecodeError as exc:
        raise InvalidRecord("the record's Value or Validity is not UTF-8") from exc
    return IpnsRecord(name=ipns_name(mh), value=value_text, sequence=seq,
                      validity=validity_text, validity_ns=parse_validity(validity_text),
                      ttl_ns=ttl, raw=raw)


def validate_record(name: str, raw: bytes, *, now: datetime | None = None) -> IpnsRecord:
    """:func:`parse_record`, and refuse a record whose validity has ended.

    Raises:
        InvalidRecord: as :func:`parse_record`, or expired.
        InvalidInput: ``name`` is not a key's name.
    """
    record = parse_record(name, raw)
    instant = now or datetime.now(UTC)
    if record.validity_ns <= int(instant.timestamp() * 1e9):
        raise InvalidRecord(f"the record expired at {record.validity}")
    return record


def best_record(records: list[IpnsRecord]) -> IpnsRecord:
    """The record a resolver keeps: highest sequence, then the longest validity (boxo's
    order), then the greater bytes so that every node picks the same one.

    Raises:
        ValueError: no records.
    """
    return max(records, key=lambda r: (r.sequence, r.validity_ns, r.raw))
