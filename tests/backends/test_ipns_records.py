"""IPNS records: ours validate and round-trip; tampered, expired, oversized, mis-named ones
are refused. py-libp2p's own IPNS validator (an independent reading of the spec) checks
that what we make is a record others accept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dag_cbor
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from libp2p.records.ipns import IPNSValidator

from ipfs_mcp.backends.core import ipns, protobuf
from ipfs_mcp.backends.errors import InvalidInput, InvalidRecord

VALUE = "/ipfs/bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"


def _record(key: Ed25519PrivateKey | None = None, **kw: object) -> ipns.IpnsRecord:
    args: dict[str, object] = {"sequence": 1, "lifetime_seconds": 3600, "ttl_seconds": 300}
    args.update(kw)
    return ipns.make_record(key or Ed25519PrivateKey.generate(), VALUE, **args)  # type: ignore[arg-type]


def test_our_record_validates_and_round_trips() -> None:
    made = _record(sequence=7)
    assert made.name.startswith("/ipns/k51")
    read = ipns.validate_record(made.name, made.raw)
    assert read == made
    assert (read.value, read.sequence, read.ttl_ns) == (VALUE, 7, 300 * 10**9)
    # Another implementation takes it too, under the DHT key's base58 spelling of the name.
    peer = ipns.name_multihash(made.name)
    IPNSValidator().validate("/ipns/" + peer.hex(), made.raw)


def test_signed_data_is_the_specs_dag_cbor() -> None:
    made = _record(sequence=2)
    fields = {f: bytes(v) for f, w, v in protobuf.iter_fields(made.raw) if w == 2}
    data = dag_cbor.decode(fields[9])
    assert data == {"Value": VALUE.encode(), "Validity": made.validity.encode(),
                    "ValidityType": 0, "Sequence": 2, "TTL": 300 * 10**9}
    assert dag_cbor.encode(data) == fields[9]  # canonical
    assert fields[1] == VALUE.encode() and fields[4] == made.validity.encode()  # V1 too


def test_every_spelling_of_a_name_is_the_same_key() -> None:
    made = _record()
    mh = ipns.name_multihash(made.name)
    from multiformats import CID, multibase
    assert ipns.name_multihash(made.name.removeprefix("/ipns/")) == mh
    assert ipns.name_multihash(CID.decode(made.name[6:]).encode("base32")) == mh
    assert ipns.name_multihash(multibase.encode(mh, "base58btc")[1:]) == mh
    assert ipns.dht_key(made.name) == b"/ipns/" + mh
    with pytest.raises(InvalidInput):
        ipns.name_multihash("/ipns/bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4")
    with pytest.raises(InvalidInput):
        ipns.name_multihash("example.com")


def test_a_record_of_another_key_is_refused() -> None:
    made = _record()
    other = _record()
    with pytest.raises(InvalidRecord, match="signature"):
        ipns.validate_record(other.name, made.raw)


def test_an_expired_record_is_refused() -> None:
    made = _record(lifetime_seconds=60)
    later = datetime.now(UTC) + timedelta(seconds=61)
    with pytest.raises(InvalidRecord, match="expired"):
        ipns.validate_record(made.name, made.raw, now=later)
    assert ipns.parse_record(made.name, made.raw).sequence == 1  # still readable as stale


def test_an_oversized_record_is_refused_before_parsing() -> None:
    made = _record()
    padded = made.raw + protobuf.bytes_field(15, b"\0" * ipns.MAX_RECORD_SIZE)
    with pytest.raises(InvalidRecord, match="limit"):
        ipns.validate_record(made.name, padded)


def test_v1_fields_that_disagree_with_the_signed_data_are_refused() -> None:
    made = _record()
    # A relay swaps the unsigned V1 value for its own: protobuf's last field wins.
    forged = made.raw + protobuf.bytes_field(1, b"/ipfs/bafkqaaa")
    with pytest.raises(InvalidRecord, match="V1"):
        ipns.validate_record(made.name, forged)


@settings(max_examples=60, deadline=None)
@given(position=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=7))
def test_any_flipped_bit_is_refused_or_harmless(position: int, bit: int) -> None:
    made = _MADE
    raw = bytearray(made.raw)
    raw[position % len(raw)] ^= 1 << bit
    try:
        read = ipns.validate_record(made.name, bytes(raw))
    except InvalidRecord:
        return
    # A flip the validator lets through changed nothing anybody acts on.
    assert (read.value, read.sequence, read.validity) == (made.value, made.sequence, made.validity)


_MADE = _record()


def test_the_best_record_is_the_highest_sequence_then_the_longest_validity() -> None:
    key = Ed25519PrivateKey.generate()
    now = datetime.now(UTC)
    old = _record(key, sequence=1, lifetime_seconds=90_000, now=now)
    new_short = _record(key, sequence=2, lifetime_seconds=60, now=now)
    new_long = _record(key, sequence=2, lifetime_seconds=120, now=now)
    assert ipns.best_record([old, new_short, new_long]) == new_long
    assert ipns.best_record([new_short, old]) == new_short


def test_values_that_are_not_paths_are_refused() -> None:
    with pytest.raises(InvalidInput):
        ipns.make_record(Ed25519PrivateKey.generate(), "bafkqaaa", sequence=0,
                         lifetime_seconds=60, ttl_seconds=0)
