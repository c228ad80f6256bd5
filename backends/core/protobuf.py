"""The few protobuf primitives that dag-pb and UnixFS need.

dag-pb must be encoded canonically (Links before Data), which generic protobuf encoders
do not do, so both formats are written field by field here. Varints are
:mod:`.varint`'s (the hot path: every field of every block read).
"""

from __future__ import annotations

from collections.abc import Iterator

from ipfs_mcp.backends.core import varint
from ipfs_mcp.backends.errors import IntegrityError

WIRE_VARINT = 0
WIRE_BYTES = 2


def key(field: int, wire: int) -> bytes:
    return varint.encode((field << 3) | wire)


def bytes_field(field: int, value: bytes | memoryview) -> bytes:
    return key(field, WIRE_BYTES) + varint.encode(len(value)) + bytes(value)


def varint_field(field: int, value: int) -> bytes:
    return key(field, WIRE_VARINT) + varint.encode(value)


def iter_fields(buf: bytes | memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """Yield ``(field, wire_type, value)``; bytes values are memoryviews into ``buf``.

    Raises:
        IntegrityError: the buffer is not well-formed protobuf (a corrupt or hostile block).
    """
    view = memoryview(buf)
    pos, end = 0, len(view)
    try:
        while pos < end:
            tag, pos = varint.decode(view, pos)
            field, wire = tag >> 3, tag & 7
            if wire == WIRE_VARINT:
                value, pos = varint.decode(view, pos)
                yield field, wire, value
            elif wire == WIRE_BYTES:
                length, pos = varint.decode(view, pos)
                if pos + length > end:
                    raise IntegrityError("protobuf field runs past the end of the block")
                yield field, wire, view[pos:pos + length]
                pos += length
            else:
                raise IntegrityError(f"unsupported protobuf wire type {wire}")
    except (ValueError, IndexError) as exc:
        raise IntegrityError(f"malformed protobuf: {exc}") from exc
