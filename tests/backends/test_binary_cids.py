"""The hot-path binary CID parser and builder of backends/dagpb.py against multiformats."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multiformats import CID

from ipfs_mcp.backends.core.cids import make_cid
from ipfs_mcp.backends.core.dagpb import cid_from_binary, sha256_cid

CODECS = st.sampled_from([0x55, 0x70, 0x71, 0x0129])  # raw, dag-pb, dag-cbor, dag-json


@given(st.binary(min_size=32, max_size=32), st.sampled_from([0, 1]), CODECS)
def test_same_cid_as_multiformats(digest: bytes, version: int, codec: int) -> None:
    if version == 0:
        codec = 0x70
    reference = CID("base58btc" if version == 0 else "base32", version, codec, ("sha2-256", digest))
    raw = bytes(reference)
    parsed = cid_from_binary(raw)
    assert parsed == CID.decode(raw)
    assert parsed.base == CID.decode(raw).base
    assert bytes(parsed) == raw and str(parsed) == str(CID.decode(raw))
    built = sha256_cid(version, codec, digest)
    assert built == reference and bytes(built) == raw
    if codec in (0x55, 0x70):
        expected = make_cid(version, "raw" if codec == 0x55 else "dag-pb", digest)
        assert str(built) == str(expected)


@given(st.binary(max_size=40))
def test_accepts_and_refuses_what_multiformats_does(raw: bytes) -> None:
    try:
        expected: CID | None = CID.decode(raw)
    except (ValueError, KeyError):
        expected = None
    try:
        ours: CID | None = cid_from_binary(raw)
    except (ValueError, KeyError):
        ours = None
    assert ours == expected


def test_other_hashes_and_bad_input() -> None:
    blake = CID("base32", 1, "raw", ("blake2b-256", hashlib.blake2b(b"x", digest_size=32).digest()))
    assert cid_from_binary(bytes(blake)) == blake
    with pytest.raises(KeyError):
        cid_from_binary(bytes([1, 0x7F, 0x12, 0x20]) + b"\0" * 32)  # no such codec
    with pytest.raises(ValueError, match="dag-pb"):
        sha256_cid(0, 0x55, b"\0" * 32)
