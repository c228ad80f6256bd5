"""CIDs: parsing, making and verifying, on top of the ``multiformats`` library.

Nothing here encodes bases or varints by hand. Hot paths (the importer, the blockstore)
work with the CID's binary form and sha2-256 from :mod:`hashlib`; ``multiformats`` is used
for everything else, including less common hash functions when verifying.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import lru_cache
from typing import final

from multiformats import CID, multihash

from ipfs_mcp.backends.errors import IntegrityError, InvalidCID, InvalidInput

__all__ = [
    "CID",
    "DAG_PB",
    "RAW",
    "DAG_CBOR",
    "parse_cid",
    "make_cid",
    "cid_of_block",
    "verify_block",
    "VerifiedBlock",
    "BlockVerifier",
    "mh_key",
    "cid_str",
    "split_path",
]

DAG_PB = "dag-pb"
RAW = "raw"
DAG_CBOR = "dag-cbor"
_SHA256_PREFIX = b"\x12\x20"  # multihash code 0x12, length 32


# Names accepted for ``block_put(codec=...)``: multicodec names plus Kubo's legacy aliases.
_BLOCK_CODECS = {"raw": RAW, "dag-pb": DAG_PB, "dag-cbor": DAG_CBOR, "protobuf": DAG_PB,
                 "cbor": DAG_CBOR}


def block_codec(name: str) -> str:
    """The multicodec name for a ``block_put`` codec argument.

    Raises:
        InvalidInput: a codec we cannot store blocks under.
    """
    try:
        return _BLOCK_CODECS[name]
    except KeyError:
        raise InvalidInput(f"unsupported codec {name!r}; use raw, dag-pb or dag-cbor") from None


def parse_cid(value: str | bytes | CID) -> CID:
    """Parse a CID string or binary CID.

    Accepts bare CIDs and ``/ipfs/<cid>`` or ``ipfs://<cid>`` forms (no sub-path).

    Raises:
        InvalidCID: the value is not a CID.
    """
    if isinstance(value, CID):
        return value
    if isinstance(value, str):
        return _parse_text(value)
    return _parse(value)


# Parsing and printing cost ~0.15 ms each (pure-Python multibase), and agents and tools
# repeat the same few CIDs; CIDs are immutable values, so caching them is safe.
@lru_cache(maxsize=8192)
def _parse_text(value: str) -> CID:
    return _parse(value)


def _parse(value: str | bytes) -> CID:
    if isinstance(value, str):
        text = value.strip()
        for prefix in ("ipfs://", "/ipfs/"):
            if text.startswith(prefix):
                text = text[len(prefix):].rstrip("/")
        if not text:
            raise InvalidCID(value, "empty string")
        if "/" in text:
            raise InvalidCID(value, "contains a path; pass the path separately")
        if text.startswith("Qm") and len(text) != 46:
            raise InvalidCID(value, f"a CIDv0 is 46 base58 characters, this has {len(text)}")
        candidate: str | bytes = text
    elif isinstance(value, (bytes, bytearray, memoryview)):
        candidate = bytes(value)
    else:
        raise InvalidCID(value, f"expected str or bytes, got {type(value).__name__}")
    try:
        return CID.decode(candidate)
    except (ValueError, KeyError, TypeError, IndexError) as exc:  # the library raises all four
        raise InvalidCID(value, str(exc).strip("'\"") or type(exc).__name__) from exc


def make_cid(version: int, codec: str, digest: bytes) -> CID:
    """Build a sha2-256 CID from a raw 32-byte digest."""
    base = "base58btc" if version == 0 else "base32"
    return CID(base, version, codec, ("sha2-256", digest))


def cid_of_block(data: bytes | memoryview, *, version: int = 1, codec: str = RAW) -> CID:
    """The sha2-256 CID of a block's bytes."""
    if version == 0 and codec != DAG_PB:
        raise InvalidCID(codec, "CIDv0 only exists for dag-pb")
    return make_cid(version, codec, hashlib.sha256(data).digest())


def cid_from_bytes(data: bytes) -> CID:
    """A binary CID as a :class:`CID` that prints the way Kubo prints it."""
    cid = CID.decode(data)
    return cid if cid.version == 0 else cid.set(base="base32")


def mh_key(cid: CID) -> bytes:
    """The binary multihash: blocks are keyed by it, so v0 and v1 share storage."""
    return bytes(cid.digest)


def binary_mh_key(cid: bytes) -> bytes:
    """:func:`mh_key` of a binary CID as the importer makes them, without decoding it: a
    CIDv0 is the bare multihash (0x12 first), a CIDv1 is 0x01, a one-byte codec, the
    multihash."""
    return cid if cid[0] == 0x12 else cid[2:]


@lru_cache(maxsize=16384)
def cid_str(cid: CID) -> str:
    """Canonical text form: base58btc for v0, base32 for v1 (as Kubo prints them)."""
    return str(cid) if cid.version == 0 else cid.encode("base32")


_PROOF = object()  # held by this module alone: only verify_block makes a VerifiedBlock


@final
class VerifiedBlock:
    """A block whose bytes were hashed and matched its CID: the proof a store takes instead
    of hashing them again (``Blockstore.receiving``). Only :func:`verify_block` makes one,
    and it cannot be changed afterwards.
    """

    __slots__ = ("cid", "data")
    cid: CID
    data: bytes

    def __init__(self, cid: CID, data: bytes, proof: object) -> None:
        if proof is not _PROOF:
            raise TypeError("a VerifiedBlock is made only by verify_block, which hashes it")
        object.__setattr__(self, "cid", cid)
        object.__setattr__(self, "data", data)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a VerifiedBlock cannot be changed (its {name})")

    def __repr__(self) -> str:
        return f"VerifiedBlock({cid_str(self.cid)}, {len(self.data)} bytes)"


# What checks blocks against their CIDs: verify_block, or a component around it (one that
# counts, in tests), handed to the CAR reader and the blockstore.
BlockVerifier = Callable[[CID, bytes], VerifiedBlock]


def verify_block(cid: CID, data: bytes | memoryview) -> VerifiedBlock:
    """Check that ``data`` hashes to ``cid``'s multihash.

    Returns:
        The proof of it, for a store that would otherwise hash the bytes again (a buffer
        that is not ``bytes`` is copied first, so the proof holds the very bytes hashed).

    Raises:
        IntegrityError: the bytes do not match, or the hash function is unknown to us.
    """
    if not isinstance(data, bytes):
        data = bytes(data)  # the bytes hashed are the bytes the proof holds
    digest = bytes(cid.digest)
    if digest[:2] == _SHA256_PREFIX:
        ok = hashlib.sha256(data).digest() == digest[2:]
    else:
        try:
            ok = multihash_of(data, cid.hashfun.code) == digest
        except IntegrityError as exc:
            raise IntegrityError(f"cannot verify {cid}: {exc}") from exc
    if not ok:
        raise IntegrityError(f"block does not match its CID {cid_str(cid)}")
    return VerifiedBlock(cid, data, _PROOF)


def multihash_of(data: bytes | memoryview, code: int, size: int | None = None) -> bytes:
    """The multihash of ``data`` under the hash function ``code`` (``size``: a truncated
    digest's length).

    Raises:
        IntegrityError: a hash function we cannot compute. multiformats names some whose
            code needs an optional package (keccak needs pycryptodome) and raises
            ImportError for them only when first used: that is a hash we cannot use too.
    """
    try:
        return bytes(multihash.digest(bytes(data), code, size=size))
    except (KeyError, ValueError, TypeError, ImportError) as exc:
        raise IntegrityError(f"unsupported hash function 0x{code:x} ({exc})") from exc


def is_identity(cid: CID) -> bool:
    """Identity-hash CIDs carry their block inside the CID itself."""
    return cid.hashfun.code == 0x00


def identity_data(cid: CID) -> bytes:
    """The inline block of an identity CID."""
    return bytes(cid.raw_digest)


def split_path(value: str) -> tuple[CID, str]:
    """``CID[/path]``, ``/ipfs/CID/path`` or ``ipfs://CID/path`` into the CID and path.

    Raises:
        InvalidCID: the first segment is not a CID.
    """
    text = value.strip()
    for prefix in ("ipfs://", "/ipfs/"):
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    head, _, rest = text.partition("/")
    return parse_cid(head), rest.strip("/")
