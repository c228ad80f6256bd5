"""Unsigned varints on the hot paths (dag-pb and UnixFS parsing, CAR sections, bitswap).

Written by hand because ``multiformats.varint`` validates every argument at run time
(``typing_validation``): profiles of ``cat``, the gateway and bitswap put its
``decode_raw`` at the top (about 40 µs a call against under 1 µs here), once per protobuf
field of every block. The format is the same: little-endian groups of 7 bits, the high bit
set on every byte but the last.

* :func:`decode` reads protobuf varints: at most 10 bytes (a 64-bit value).
* ``strict=True`` also applies the multiformats unsigned-varint rules (CIDs, multihashes,
  CAR framing): at most 9 bytes (63 bits) and minimal encoding, so one number has one form.
"""

from __future__ import annotations

from ipfs_mcp.backends.errors import InvalidInput

__all__ = ["decode", "encode"]

_MAX_PROTOBUF = 10
_MAX_MULTIFORMATS = 9


def encode(value: int) -> bytes:
    """The varint of a non-negative integer.

    Raises:
        InvalidInput: a negative value.
    """
    if value < 0:
        raise InvalidInput(f"varints are unsigned, not {value}")
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode(buf: bytes | bytearray | memoryview, pos: int = 0, *, strict: bool = False
           ) -> tuple[int, int]:
    """``(value, position after it)`` for the varint at ``buf[pos]``.

    Raises:
        InvalidInput: (a ValueError) truncated, too long, or (``strict``) not minimally
            encoded; callers that read a block or message say which as their own error.
    """
    limit = _MAX_MULTIFORMATS if strict else _MAX_PROTOBUF
    end = len(buf)
    value = 0
    shift = 0
    for i in range(limit):
        if pos + i >= end:
            raise InvalidInput("varint runs past the end of its buffer")
        byte = buf[pos + i]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if strict and byte == 0 and i > 0:
                raise InvalidInput("varint is not minimally encoded")
            return value, pos + i + 1
        shift += 7
    raise InvalidInput(f"varint longer than {limit} bytes")
