from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipfs_mcp.backends.core.cids import cid_of_block, cid_str, parse_cid, verify_block
from ipfs_mcp.backends.errors import IntegrityError, InvalidCID, InvalidInput

V0 = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
V1 = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"


@pytest.mark.parametrize("text", [V0, V1, f"/ipfs/{V0}", f"ipfs://{V1}", f"  {V0}\n"])
def test_parse_accepts_cids_and_ipfs_forms(text: str) -> None:
    assert cid_str(parse_cid(text)) in (V0, V1)


@pytest.mark.parametrize("text", ["", "Qmfoo", "hello", V0[:-1], V0 + "x", f"{V0}/sub",
                                  "bafy!!!", "z" * 5])
def test_parse_rejects_with_invalid_cid(text: str) -> None:
    with pytest.raises(InvalidCID) as info:
        parse_cid(text)
    assert isinstance(info.value, InvalidInput) and isinstance(info.value, ValueError)
    assert "invalid CID" in str(info.value)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=80), st.binary(max_size=80)))
def test_parse_never_raises_anything_but_invalid_cid(value: str | bytes) -> None:
    try:
        parse_cid(value)
    except InvalidCID:
        pass


def test_verify_block_detects_one_flipped_bit() -> None:
    data = b"hello world\n"
    cid = cid_of_block(data)
    verify_block(cid, data)
    with pytest.raises(IntegrityError):
        verify_block(cid, b"hello world\x0b")


def test_v0_only_for_dag_pb() -> None:
    with pytest.raises(InvalidCID):
        cid_of_block(b"x", version=0, codec="raw")
