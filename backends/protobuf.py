"""The few protobuf primitives that dag-pb and UnixFS need.

dag-pb must be encoded canonically (Links before Data), which generic protobuf encoders
do not do, so both formats are written field by field here. Varints come from
``multiformats``.
"""

from __future__ import annotations

from collections.abc import Iterator

from multiformats import varint

from .errors import IntegrityError

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
            tag, n, _ = varint.decode_raw(view[pos:pos + 10])
            pos += n
            field, wire = tag >> 3, tag & 7
            if wire == WIRE_VARINT:
                value, n, _ = varint.decode_raw(view[pos:pos + 10])
                pos += n
                yield field, wire, value
            elif wire == WIRE_BYTES:
                length, n, _ = varint.decode_raw(view[pos:pos + 10])
                pos += n
                if pos + length > end:
                    raise IntegrityError("protobuf field runs past the end of the block")
                yield field, wire, view[pos:pos + length]
                pos += length
            else:
                raise IntegrityError(f"unsupported protobuf wire type {wire}")
    except (ValueError, IndexError) as exc:
        raise IntegrityError(f"malformed protobuf: {exc}") from exc
