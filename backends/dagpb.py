"""dag-pb nodes (the IPLD codec under UnixFS), encoded canonically.

Canonical form, as produced by Kubo and required by the dag-pb spec: every PBLink is
written before the Data field; within a link Hash, Name, Tsize in that order. Kubo always
writes Name (empty for file chunks) and Tsize, and so do we, so our blocks hash equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from multiformats import CID

from .errors import IntegrityError
from .protobuf import WIRE_BYTES, WIRE_VARINT, bytes_field, iter_fields, varint_field


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
            data = bytes(value)  # type: ignore[arg-type]
        else:
            raise IntegrityError(f"dag-pb: unexpected field {field}")
    return PBNode(tuple(links), data)


# Links repeat (every read of a file walks the same nodes again), and multiformats' CID
# parsing validates its arguments at run time: parse each binary CID once.
_link_cid = lru_cache(maxsize=65536)(CID.decode)


def _decode_link(buf: memoryview) -> PBLink:
    cid: CID | None = None
    name = ""
    tsize = 0
    for field, wire, value in iter_fields(buf):
        if field == 1 and wire == WIRE_BYTES:
            try:
                cid = _link_cid(bytes(value))  # type: ignore[arg-type]
            except (ValueError, KeyError) as exc:
                raise IntegrityError(f"dag-pb: link has a malformed CID: {exc}") from exc
        elif field == 2 and wire == WIRE_BYTES:
            try:
                name = bytes(value).decode()  # type: ignore[arg-type]
            except UnicodeDecodeError as exc:
                raise IntegrityError("dag-pb: link name is not UTF-8") from exc
        elif field == 3 and wire == WIRE_VARINT:
            tsize = value  # type: ignore[assignment]
        else:
            raise IntegrityError(f"dag-pb: unexpected link field {field}")
    if cid is None:
        raise IntegrityError("dag-pb: link without a Hash")
    return PBLink(cid, name, tsize)
