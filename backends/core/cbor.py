"""dag-cbor decoding of bytes a content provider chose, bounded before the decoder runs.

The ``dag-cbor`` library decodes recursively (two Python frames a level: a value nested a
few hundred deep raises ``RecursionError``) and trusts declared lengths (an 8-byte length
reaches ``read(n)`` as an ``OverflowError``). So :func:`decode` first scans the item heads
iteratively: every declared length must fit in the bytes that are left (a list or map of
n items needs at least n bytes), nesting stays within :data:`MAX_NESTING`, and indefinite
lengths (not dag-cbor) are refused. Only then does the library decode, and whatever it
still raises leaves as :class:`~ipfs_mcp.backends.errors.IntegrityError`.
"""

from __future__ import annotations

import dag_cbor
from dag_cbor.encoding.err import CBORError
from dag_cbor.ipld import IPLDKind

from ipfs_mcp.backends.errors import IntegrityError

__all__ = ["MAX_NESTING", "decode"]

# Real dag-cbor (CAR headers, IPLD schemas, Filecoin and Bluesky records) nests a few
# levels; depth comes from links between blocks, not inside one. 128 levels cost the
# library 256 frames, well inside Python's default limit of 1000 whatever the caller's depth.
MAX_NESTING = 128

_ARG_BYTES = {24: 1, 25: 2, 26: 4, 27: 8}
_MAJOR_BYTES, _MAJOR_TEXT, _MAJOR_LIST, _MAJOR_MAP, _MAJOR_TAG = 2, 3, 4, 5, 6


def decode(data: bytes | memoryview, what: str = "dag-cbor block") -> IPLDKind:
    """The value encoded in ``data``.

    Raises:
        IntegrityError: not dag-cbor, a length over the bytes there are, or nested deeper
            than MAX_NESTING (the message names ``what``).
    """
    raw = bytes(data)
    check_shape(raw, what)
    try:
        return dag_cbor.decode(raw)
    except (CBORError, ValueError, TypeError, OverflowError) as exc:
        # The library's messages run over several lines (a hex dump under a caret).
        reason = next(iter(str(exc).splitlines()), "") or type(exc).__name__
        raise IntegrityError(f"invalid {what}: {reason}") from exc


def check_shape(raw: bytes, what: str = "dag-cbor block") -> None:
    """Walk the item heads of ``raw`` without decoding or recursing.

    Raises:
        IntegrityError: truncated, a length over what is left, an indefinite length, or
            nesting deeper than MAX_NESTING.
    """
    end = len(raw)
    pos = 0
    # Items still to read at each open level; the top level holds exactly one item.
    pending = [1]
    while pending:
        if pending[-1] == 0:
            pending.pop()
            continue
        pending[-1] -= 1
        if pos >= end:
            raise IntegrityError(f"invalid {what}: truncated")
        major, arg, pos = _head(raw, pos, what)
        if major in (_MAJOR_BYTES, _MAJOR_TEXT):
            if arg > end - pos:
                raise IntegrityError(f"invalid {what}: a string of {arg} bytes with "
                                     f"{end - pos} left")
            pos += arg
            continue
        if major in (_MAJOR_LIST, _MAJOR_MAP, _MAJOR_TAG):
            items = arg * 2 if major == _MAJOR_MAP else (1 if major == _MAJOR_TAG else arg)
            if items > end - pos:
                raise IntegrityError(f"invalid {what}: {items} items declared with "
                                     f"{end - pos} bytes left")
            if len(pending) >= MAX_NESTING:
                raise IntegrityError(f"invalid {what}: nested deeper than {MAX_NESTING} "
                                     "levels")
            pending.append(items)


def _head(raw: bytes, pos: int, what: str) -> tuple[int, int, int]:
    """``(major type, argument, position after the head)`` of the item at ``pos``."""
    first = raw[pos]
    major, info = first >> 5, first & 0x1F
    pos += 1
    if info < 24:
        return major, info, pos
    size = _ARG_BYTES.get(info)
    if size is None:
        raise IntegrityError(f"invalid {what}: indefinite or reserved length (byte "
                             f"0x{first:02x})")
    if pos + size > len(raw):
        raise IntegrityError(f"invalid {what}: truncated")
    # Major 7 carries floats in its argument bytes, never a count: the value is unused.
    return major, int.from_bytes(raw[pos:pos + size], "big"), pos + size
