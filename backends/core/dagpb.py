"""dag-pb nodes (the IPLD codec under UnixFS), encoded canonically.

Canonical form, as produced by Kubo and required by the dag-pb spec: every PBLink is
written before the Data field; within a link Hash, Name, Tsize in that order. Kubo always
writes Name (empty for file chunks) and Tsize, and so do we, so our blocks hash equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from multiformats import CID, multibase, multicodec, multihash

from ipfs_mcp.backends.core.cids import cid_from_bytes
from ipfs_mcp.backends.core.protobuf import (
    WIRE_BYTES,
    WIRE_VARINT,
    bytes_field,
    iter_fields,
    varint_field,
)
from ipfs_mcp.backends.errors import IntegrityError


@dataclass(frozen=True, slots=True)
class PBLink:
    cid: CID
    name: str
    tsize: int


@dataclass(frozen=True, slots=True)
class PBNode:
    links: tuple[PBLink, ...]
    data: bytes | None


def encode_link(cid_bytes: bytes, name: str, tsize: int) -> bytes:
    body = bytes_field(1, cid_bytes) + bytes_field(2, name.encode()) + varint_field(3, tsize)
    return bytes_field(2, body)


def encode_node(encoded_links: list[bytes], data: bytes | memoryview | None) -> bytes:
    """Join pre-encoded links (see :func:`encode_link`) and the Data field."""
    out = b"".join(encoded_links)
    if data is not None:
        out += bytes_field(1, data)
    return out


def encode(node: PBNode) -> bytes:
    return encode_node([encode_link(bytes(link.cid), link.name, link.tsize) for link in node.links],
                       node.data)


def decode(block: bytes | memoryview) -> PBNode:
    """Decode a dag-pb block.

    Raises:
        IntegrityError: the block is not valid dag-pb.
    """
    links: list[PBLink] = []
    data: bytes | None = None
    for field, wire, value in iter_fields(block):
        if field == 2 and wire == WIRE_BYTES:
            if data is not None:
                raise IntegrityError("dag-pb: Links after Data (not canonical)")
            links.append(_decode_link(value))  # type: ignore[arg-type]
        elif field == 1 and wire == WIRE_BYTES:
            if data is not None:
                raise IntegrityError("dag-pb: duplicate Data field")
            data = bytes(value)
        else:
            raise IntegrityError(f"dag-pb: unexpected field {field}")
    return PBNode(tuple(links), data)


# multiformats validates the arguments of every CID it parses or builds at run time
# (``typing_validation``): about 400 us for one ``CID.decode`` of a CIDv0 here, against
# about 20 us to build the same object through its own constructor once the parts are known.
# Bitswap parses a CID per want, cancel and presence and builds one per received block, and
# every dag-pb link is one. The common shapes (sha2-256, CIDv0 or a one-byte codec) are
# therefore built directly; anything else goes through ``CID.decode``. Same objects either
# way (multiformats interns CIDs; binary CIDs carry base58btc, as ``CID.decode`` gives them).
_BASE58 = multibase.get("base58btc")
_BASE32 = multibase.get("base32")
_SHA2_256 = multihash.get("sha2-256")
_DAG_PB = multicodec.get("dag-pb")
_CODECS: dict[int, multicodec.Multicodec] = {}


def _codec(code: int) -> multicodec.Multicodec:
    """Raises: KeyError: an unknown multicodec (as ``CID.decode`` does)."""
    found = _CODECS.get(code)
    if found is None:
        found = _CODECS[code] = multicodec.get(code=code)
    return found


def cid_from_binary(raw: bytes) -> CID:
    """``CID.decode`` of a binary CID, without run-time argument validation on the hot shapes.

    Raises:
        ValueError, KeyError: as ``CID.decode`` (malformed, or an unknown codec or hash).
    """
    if len(raw) == 34 and raw[0] == 0x12 and raw[1] == 0x20:
        return CID._new_instance(CID, _BASE58, 0, _DAG_PB, _SHA2_256, raw)
    if len(raw) == 36 and raw[0] == 1 and raw[1] < 0x80 and raw[2] == 0x12 and raw[3] == 0x20:
        return CID._new_instance(CID, _BASE58, 1, _codec(raw[1]), _SHA2_256, raw[2:])
    return CID.decode(raw)


def sha256_cid(version: int, codec: int, digest: bytes) -> CID:
    """The CID of a block from its sha2-256 ``digest`` (32 bytes), as ``make_cid`` builds it
    (base58btc for CIDv0, base32 for CIDv1), without run-time argument validation.

    Raises:
        KeyError: an unknown codec. ValueError: CIDv0 of a codec other than dag-pb.
    """
    multihash_bytes = b"\x12\x20" + digest
    if version == 0:
        if codec != _DAG_PB.code:
            raise ValueError("CIDv0 exists only for dag-pb")
        return CID._new_instance(CID, _BASE58, 0, _DAG_PB, _SHA2_256, multihash_bytes)
    return CID._new_instance(CID, _BASE32, 1, _codec(codec), _SHA2_256, multihash_bytes)


# Links repeat (every read of a file walks the same nodes again): parse each binary CID once.
_link_cid = lru_cache(maxsize=65536)(cid_from_binary)


def _decode_link(buf: memoryview) -> PBLink:
    cid: CID | None = None
    name = ""
    tsize = 0
    for field, wire, value in iter_fields(buf):
        if field == 1 and wire == WIRE_BYTES:
            try:
                cid = _link_cid(bytes(value))
            except (ValueError, KeyError) as exc:
                raise IntegrityError(f"dag-pb: link has a malformed CID: {exc}") from exc
        elif field == 2 and wire == WIRE_BYTES:
            try:
                name = bytes(value).decode()
            except UnicodeDecodeError as exc:
                raise IntegrityError("dag-pb: link name is not UTF-8") from exc
        elif field == 3 and wire == WIRE_VARINT:
            tsize = value  # type: ignore[assignment]
        else:
            raise IntegrityError(f"dag-pb: unexpected link field {field}")
    if cid is None:
        raise IntegrityError("dag-pb: link without a Hash")
    return PBLink(cid, name, tsize)


@dataclass(frozen=True, slots=True)
class Node:
    """A finished DAG node: its binary CID, cumulative size (Tsize) and content size."""

    cid: bytes
    tsize: int
    size: int  # file bytes under this node (0 for directories)

    @property
    def cid_obj(self) -> CID:
        return cid_from_bytes(self.cid)
