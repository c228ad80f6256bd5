from __future__ import annotations

import io
import os

import pytest

from ipfs_mcp.backends.core import car
from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.core.importer import ImportOptions
from ipfs_mcp.backends.errors import IntegrityError, InvalidInput, TooLarge
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.repo.repository import Repo


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


def _v2(payload: bytes, *, data_offset: int = 51, data_size: int | None = None) -> bytes:
    """A CAR v2 wrapper: pragma, 40-byte header (characteristics, offset, size, index)."""
    size = len(payload) if data_size is None else data_size
    header = bytes(16) + data_offset.to_bytes(8, "little") + size.to_bytes(8, "little") + \
        bytes(8)
    return car._V2_PRAGMA + header + payload


def test_car_v2_is_read_through_its_payload(backend: HFCacheBackend, tmp_path) -> None:
    cid = backend.add_bytes(b"inside a v2\n")
    other = HFCacheBackend(Repo(tmp_path / "other"))
    other.dag_import(io.BytesIO(_v2(backend.dag_export(cid) or b"")))
    assert other.cat(cid) == b"inside a v2\n"


def test_car_v2_nested_in_a_v2_is_refused_not_recursed(backend: HFCacheBackend) -> None:
    blob = backend.dag_export(backend.add_bytes(b"x")) or b""
    nested = blob
    for _ in range(5000):  # deep enough that recursion would hit the interpreter's limit
        nested = _v2(nested)
    with pytest.raises(InvalidInput, match="itself a CAR v2"):
        car.read_car(io.BytesIO(nested))


def test_car_v2_hostile_offset_is_skipped_in_pieces_then_truncated() -> None:
    with pytest.raises(InvalidInput, match="truncated"):
        car.read_car(io.BytesIO(_v2(b"", data_offset=1 << 62)))
    with pytest.raises(InvalidInput, match="into its header"):
        car.read_car(io.BytesIO(_v2(b"", data_offset=3)))
