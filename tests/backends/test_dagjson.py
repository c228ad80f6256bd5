"""dag-json decoding of untrusted bytes: links and bytes read as the codec says, nesting
bounded before the parser recurses, maps holding '/' beside other keys refused, and any
other input refused with IntegrityError alone."""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from multiformats import CID

from ipfs_mcp.backends.core import dagjson
from ipfs_mcp.backends.core.cbor import MAX_NESTING
from ipfs_mcp.backends.errors import IntegrityError

LINK = "bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def test_links_and_bytes_decode_as_the_codec_says() -> None:
    value = dagjson.decode(b'{"a":{"/":"' + LINK.encode() + b'"},"b":{"/":{"bytes":"aGk"}},'
                           b'"c":[1,"x",null]}')
    assert value == {"a": CID.decode(LINK), "b": b"hi", "c": [1, "x", None]}


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 100_000])
def test_deep_nesting_is_refused_before_parsing(depth: int) -> None:
    with pytest.raises(IntegrityError, match="nested deeper"):
        dagjson.decode(b"[" * depth + b"]" * depth)
    # Brackets inside strings are text, not nesting.
    assert dagjson.decode(b'["' + b"[" * 1000 + b'"]') == ["[" * 1000]


def test_a_link_with_siblings_is_refused_not_read_two_ways() -> None:
    with pytest.raises(IntegrityError, match="beside other keys"):
        dagjson.decode(b'{"x":{"/":"' + LINK.encode() + b'","y":1}}')


_KEYS = st.sampled_from(["/", "bytes", "a"])
_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8),
                    st.sampled_from([LINK, "Qm", "aGk", "!!"]))
_JSON = st.recursive(_LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(_KEYS, inner, max_size=2)), max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200),
                 _JSON.map(lambda v: json.dumps(v).encode())))
@example(b'{"/":"0"}')  # a link whose text decodes to no bytes at all (found by this test)
def test_any_bytes_decode_or_raise_integrity_error(data: bytes) -> None:
    try:
        dagjson.decode(data)
    except IntegrityError:
        pass
