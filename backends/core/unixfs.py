"""UnixFS v1 ``Data`` messages, carried in the Data field of dag-pb nodes.

Field order and presence follow go-unixfs (what Kubo writes): Type, Data, filesize,
blocksizes (repeated, unpacked), hashType, fanout. A file leaf always carries filesize;
a directory carries neither Data nor filesize.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ipfs_mcp.backends.core import varint
from ipfs_mcp.backends.core.protobuf import (
    WIRE_BYTES,
    WIRE_VARINT,
    bytes_field,
    iter_fields,
    varint_field,
)
from ipfs_mcp.backends.errors import IntegrityError


class NodeType(enum.IntEnum):
    RAW = 0
    DIRECTORY = 1
    FILE = 2
    METADATA = 3
    SYMLINK = 4
    HAMT_SHARD = 5


MURMUR3_X64_64 = 0x22  # the multicodec of the HAMT hash function Kubo uses
# An empty file: Type=File, filesize=0 and no Data field (go-unixfs leaves Data unset).
EMPTY_FILE_BLOCK = b"\x0a\x04\x08\x02\x18\x00"
DIRECTORY_DATA = b"\x08\x01"


@dataclass(frozen=True, slots=True)
class UnixFSData:
    type: NodeType
    data: bytes | None = None
    filesize: int | None = None
    blocksizes: tuple[int, ...] = field(default_factory=tuple)
    hash_type: int | None = None
    fanout: int | None = None


def encode(msg: UnixFSData) -> bytes:
    out = [varint_field(1, int(msg.type))]
    if msg.data is not None:
        out.append(bytes_field(2, msg.data))
    if msg.filesize is not None:
        out.append(varint_field(3, msg.filesize))
    out.extend(varint_field(4, size) for size in msg.blocksizes)
    if msg.hash_type is not None:
        out.append(varint_field(5, msg.hash_type))
    if msg.fanout is not None:
        out.append(varint_field(6, msg.fanout))
    return b"".join(out)


def file_leaf(chunk: bytes | memoryview, node_type: NodeType = NodeType.FILE) -> bytes:
    """The dag-pb block of a UnixFS file leaf, built with a single copy of the chunk.

    The balanced layout types its leaves ``File``; boxo's trickle layout types them ``Raw``
    (``FillNodeLayer`` calls ``NewLeafDataNode(ft.TRaw)``), which changes their CIDs.
    """
    n = len(chunk)
    if n == 0 and node_type is NodeType.FILE:
        return EMPTY_FILE_BLOCK
    inner_head = bytes((0x08, int(node_type), 0x12)) + varint.encode(n)
    inner_tail = b"\x18" + varint.encode(n)
    inner_len = len(inner_head) + n + len(inner_tail)
    return b"".join((b"\x0a", varint.encode(inner_len), inner_head, chunk, inner_tail))


def decode(buf: bytes | memoryview) -> UnixFSData:
    """Decode a UnixFS Data message.

    Raises:
        IntegrityError: not a valid UnixFS message.
    """
    type_: int | None = None
    data: bytes | None = None
    filesize: int | None = None
    blocksizes: list[int] = []
    hash_type: int | None = None
    fanout: int | None = None
    for fnum, wire, value in iter_fields(buf):
        if fnum == 1 and wire == WIRE_VARINT:
            type_ = value  # type: ignore[assignment]
        elif fnum == 2 and wire == WIRE_BYTES:
            data = bytes(value)
        elif fnum == 3 and wire == WIRE_VARINT:
            filesize = value  # type: ignore[assignment]
        elif fnum == 4 and wire == WIRE_VARINT:
            blocksizes.append(value)  # type: ignore[arg-type]
        elif fnum == 4 and wire == WIRE_BYTES:  # packed encoding, tolerated on read
            blocksizes.extend(_unpack_varints(value))  # type: ignore[arg-type]
        elif fnum == 5 and wire == WIRE_VARINT:
            hash_type = value  # type: ignore[assignment]
        elif fnum == 6 and wire == WIRE_VARINT:
            fanout = value  # type: ignore[assignment]
        elif fnum in (7, 8):  # mode and mtime: accepted, not used
            continue
        else:
            raise IntegrityError(f"unixfs: unexpected field {fnum}")
    if type_ is None:
        raise IntegrityError("unixfs: missing Type")
    try:
        node_type = NodeType(type_)
    except ValueError as exc:
        raise IntegrityError(f"unixfs: unknown node type {type_}") from exc
    return UnixFSData(node_type, data, filesize, tuple(blocksizes), hash_type, fanout)


def _unpack_varints(buf: memoryview) -> list[int]:
    """Raises: IntegrityError: a varint cut off or too long."""
    out: list[int] = []
    pos = 0
    try:
        while pos < len(buf):
            value, pos = varint.decode(buf, pos)
            out.append(value)
    except ValueError as exc:
        raise IntegrityError(f"unixfs: malformed packed blocksizes: {exc}") from exc
    return out
