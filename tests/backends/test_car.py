from __future__ import annotations

import io
import os

import pytest

from ipfs_mcp.backends import car
from ipfs_mcp.backends.cids import cid_str
from ipfs_mcp.backends.errors import IntegrityError, InvalidInput, TooLarge
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.importer import ImportOptions
from ipfs_mcp.backends.repo import Repo


def test_export_import_round_trip_pins_roots(backend: HFCacheBackend, tmp_path) -> None:
    data = os.urandom(1_500_000)
    cid = backend.add_bytes(data, options=ImportOptions(cid_version=1))
    blob = backend.dag_export(cid)
    assert blob is not None
    other = HFCacheBackend(Repo(tmp_path / "other"))
    report = other.dag_import(io.BytesIO(blob))
    assert [cid_str(r) for r in report.roots] == [cid]
    assert other.cat(cid) == data
    assert [p.type for p in other.repo.pins] == ["recursive"]


def test_export_order_is_depth_first(backend: HFCacheBackend) -> None:
    cid = backend.add_bytes(os.urandom(800_000))
    roots, blocks = car.read_car(io.BytesIO(backend.dag_export(cid) or b""))
    order = [c for c, _ in blocks]
    assert order[0] == roots[0] and len(order) == 5


def test_corrupt_block_in_car_is_refused_and_not_stored(backend: HFCacheBackend,
                                                        tmp_path) -> None:
    cid = backend.add_bytes(b"A" * 1000)
    blob = bytearray(backend.dag_export(cid) or b"")
    blob[-10] ^= 0xFF
    other = HFCacheBackend(Repo(tmp_path / "other"))
    with pytest.raises(IntegrityError):
        other.dag_import(io.BytesIO(bytes(blob)))
    assert other.repo.stat().blocks == 0


@pytest.mark.parametrize("blob", [b"", b"\x05abc", b"\x01\xff", b"\x0a" + b"\xa1" * 10])
def test_garbage_is_invalid_input(blob: bytes) -> None:
    with pytest.raises((InvalidInput, TooLarge)):
        roots, blocks = car.read_car(io.BytesIO(blob))
        list(blocks)


def test_oversized_section_is_refused() -> None:
    header = b'\xa2eroots\x80gversion\x01'
    blob = bytes([len(header)]) + header + b"\xff\xff\xff\x7f"
    roots, blocks = car.read_car(io.BytesIO(blob))
    with pytest.raises(TooLarge):
        list(blocks)
