"""Blocks handed from a put to a reader that overlaps the transfer (``Blockstore.fresh_blocks``):
the reader gets the very bytes that were verified and stored, once, and the blockstore never
holds more than FRESH_BYTES of them, nor any once no reader wants them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from multiformats import CID

from ipfs_mcp.backends.core.cids import cid_of_block
from ipfs_mcp.backends.errors import IntegrityError
from ipfs_mcp.backends.repo import blockstore as blockstore_module
from ipfs_mcp.backends.repo.blockstore import Blockstore


def _block(size: int) -> tuple[CID, bytes]:
    data = os.urandom(size)
    return cid_of_block(data), data


def test_nothing_is_kept_without_a_reader(tmp_path: Path) -> None:
    store = Blockstore(tmp_path)
    cid, data = _block(1024)
    assert store.put(cid, data)
    with store.arrivals:
        assert store.take_fresh(cid) is None
    assert store.get(cid) == data  # stored all the same


def test_a_reader_takes_the_stored_bytes_once(tmp_path: Path) -> None:
    store = Blockstore(tmp_path)
    cid, data = _block(4096)
    with store.fresh_blocks():
        store.put(cid, data)
        with store.arrivals:
            assert store.take_fresh(cid) == data
            assert store.take_fresh(cid) is None  # handed over, not kept twice
    assert store.get(cid) == data


class _LookingAsItLands(Blockstore):
    """A blockstore whose reader looks the moment a block's file is in place, before the
    put that wrote it returns (what a reader thread does when the writer is descheduled)."""

    looked: list[bytes | None | bool] = []

    def _write(self, multihash: bytes, data: bytes) -> bool:
        stored = super()._write(multihash, data)
        cid = CID("base32", 1, "raw", bytes(multihash))
        with self.arrivals:  # as the reader looks: fresh bytes first, else the disk
            fresh = self.take_fresh(cid)
            self.looked.append(fresh if fresh is not None else self.has(cid))
        return stored


def test_a_reader_that_finds_a_block_stored_finds_its_bytes_kept(tmp_path: Path) -> None:
    store = _LookingAsItLands(tmp_path)
    store.looked = []
    cid, data = _block(4096)
    with store.fresh_blocks():
        assert store.put(cid, data)
    assert store.looked == [data]  # handed over, not "stored, read it back"


def test_a_block_that_fails_its_hash_is_never_handed_over(tmp_path: Path) -> None:
    store = Blockstore(tmp_path)
    cid, data = _block(4096)
    with store.fresh_blocks():
        with pytest.raises(IntegrityError):
            store.put(cid, data[:-1] + bytes([data[-1] ^ 1]))
        with store.arrivals:
            assert store.take_fresh(cid) is None


def test_a_block_already_stored_is_read_from_disk_not_kept(tmp_path: Path) -> None:
    store = Blockstore(tmp_path)
    cid, data = _block(4096)
    store.put(cid, data)
    with store.fresh_blocks():
        assert not store.put(cid, data)
        with store.arrivals:
            assert store.take_fresh(cid) is None


def test_kept_bytes_are_bounded_oldest_dropped_first(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # A smaller bound than FRESH_BYTES, so the test writes a few MiB rather than tens.
    monkeypatch.setattr(blockstore_module, "FRESH_BYTES", 1 << 20)
    store = Blockstore(tmp_path, fsync=False)
    blocks = [_block(256 * 1024) for _ in range(6)]
    with store.fresh_blocks():
        for cid, data in blocks:
            store.put(cid, data)
        with store.arrivals:
            kept = [store.take_fresh(cid) for cid, _ in blocks]
    assert kept[:2] == [None, None]  # 6 x 256 KiB over a 1 MiB bound: the two oldest went
    assert kept[2:] == [data for _, data in blocks[2:]]


def test_everything_kept_is_dropped_when_the_last_reader_leaves(tmp_path: Path) -> None:
    store = Blockstore(tmp_path)
    first, second = _block(1024), _block(1024)
    with store.fresh_blocks():
        with store.fresh_blocks():  # two readers at once
            store.put(*first)
        with store.arrivals:  # one reader left: still kept
            assert store.take_fresh(first[0]) == first[1]
        store.put(*second)
    with store.fresh_blocks():
        with store.arrivals:
            assert store.take_fresh(second[0]) is None


def test_a_leaf_placed_into_its_receivers_file_is_handed_over_too(tmp_path: Path) -> None:
    """The hub receiver reads the very file it is placing leaves into (for the blob's
    sha256): a placed leaf's bytes reach that reader from the put, not read back from the
    file and hashed again."""
    from ipfs_mcp.backends.core.cids import verify_block
    from ipfs_mcp.backends.repo.filestore import Filestore

    store = Blockstore(tmp_path / "repo", filestore=Filestore(tmp_path / "repo"))
    assert store.placements is not None
    cid, data = _block(4096)  # a raw leaf
    target = tmp_path / "blob.incomplete"
    fd = os.open(target, os.O_RDWR | os.O_CREAT, 0o644)
    os.ftruncate(fd, len(data))
    key = bytes(cid.digest)
    receiving = store.placements.open(target, fd, {key: [0]}, {key: len(data)})
    try:
        with store.fresh_blocks():
            with store.receiving() as batch:
                batch.put_verified(verify_block(cid, data))
            with store.arrivals:
                assert store.take_fresh(cid) == data
        assert receiving.placed == {0}  # placed into the file, not stored as a block
        assert os.pread(fd, len(data), 0) == data
        assert not store.path_of(key).exists()
    finally:
        store.placements.close(receiving)
        os.close(fd)
