"""Our hot-path varints against multiformats' (the reference) on every kind of input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multiformats import varint as reference

from ipfs_mcp.backends.core import varint


@given(st.integers(min_value=0, max_value=(1 << 63) - 1))
def test_same_bytes_and_values_as_multiformats(value: int) -> None:
    encoded = varint.encode(value)
    assert encoded == reference.encode(value)
    assert varint.decode(encoded + b"\xff", 0, strict=True) == (value, len(encoded))
    assert varint.decode(b"\x07" + encoded, 1) == (value, len(encoded) + 1)


@given(st.binary(max_size=12))
def test_strict_decode_accepts_exactly_what_multiformats_accepts(raw: bytes) -> None:
    try:
        expected: tuple[int, int] | None = reference.decode_raw(raw)[:2]
    except ValueError:
        expected = None
    try:
        ours: tuple[int, int] | None = varint.decode(raw, strict=True)
    except ValueError:
        ours = None
    assert ours == expected


def test_bad_varints_are_refused() -> None:
    with pytest.raises(ValueError, match="past the end"):
        varint.decode(b"\x80\x80")
    with pytest.raises(ValueError, match="longer than 10"):
        varint.decode(b"\xff" * 11)
    with pytest.raises(ValueError, match="minimally"):
        varint.decode(b"\x81\x00", strict=True)
    assert varint.decode(b"\x81\x00") == (1, 2)  # protobuf allows the padded form
    with pytest.raises(ValueError):
        varint.encode(-1)
