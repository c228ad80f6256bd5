"""Large blocks of an add or a receive go to the disk with direct I/O, around the page cache,
and still read back whole; a file system that refuses direct I/O gets page-cache writes.

The refusing file system is simulated (the kernel's ``EINVAL`` at ``open`` or at the first
``write``, as tmpfs before Linux 6.6 and some FUSE mounts answer): no such file system can
be mounted here on demand. Everything else is a real repo on the test's disk.
"""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from ipfs_mcp.backends.core.importer import Importer, ImportOptions
from ipfs_mcp.backends.repo import atomic
from ipfs_mcp.backends.repo.atomic import DIRECT_MIN, DiskSync, write_unsynced
from ipfs_mcp.backends.repo.blockstore import Blockstore

# Around every edge: under the threshold, at it, page multiples, a dag-pb leaf's 14 bytes
# past 256 KiB, and more than the first aligned buffer holds.
SIZES = [1, DIRECT_MIN - 1, DIRECT_MIN, 262144, 262158, 1 << 20, (1 << 20) + 4097,
         3 * (1 << 20) + 5]


def _takes_direct_io(folder: Path) -> bool:
    probe = folder / "probe"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o644)
    except OSError:
        return False
    os.close(fd)
    probe.unlink()
    return True


def _blocks(count: int) -> list[tuple[bytes, bytes]]:
    out = []
    for i, size in enumerate(SIZES[:count]):
        data = hashlib.sha256(str(i).encode()).digest() * (size // 32 + 1)
        data = data[:size]
        out.append((b"\x12\x20" + hashlib.sha256(data).digest(), data))
    return out


def test_large_blocks_of_an_add_go_around_the_page_cache_and_read_back_whole(
        tmp_path: Path) -> None:
    if not _takes_direct_io(tmp_path):
        pytest.skip("the test's file system refuses O_DIRECT")
    store = Blockstore(tmp_path / "blocks", fsync=True)
    assert store.sync.direct is not None
    blocks = _blocks(len(SIZES))
    with store.batch():
        for multihash, data in blocks:
            store.put_block(multihash, data)
    assert store.sync.direct.written == sum(len(d) >= DIRECT_MIN for _, d in blocks)
    for multihash, data in blocks:
        assert store.path_of(multihash).read_bytes() == data
    assert list(store.tmp_dir.iterdir()) == []


def test_an_import_through_direct_writes_gives_the_same_blocks(tmp_path: Path) -> None:
    if not _takes_direct_io(tmp_path):
        pytest.skip("the test's file system refuses O_DIRECT")
    data = os.urandom(3 * 262144 + 1000)
    durable = Blockstore(tmp_path / "durable", fsync=True)
    plain = Blockstore(tmp_path / "plain", fsync=False)
    assert plain.sync.direct is None  # no syncs: the page cache is the cheaper place
    with durable.batch():
        root = Importer(durable, ImportOptions()).add_bytes(data)
    with plain.batch():
        assert Importer(plain, ImportOptions()).add_bytes(data).cid == root.cid
    assert durable.sync.direct is not None and durable.sync.direct.written == 3
    names = sorted(p.name for p in (tmp_path / "plain").rglob("*.data"))
    assert names == sorted(p.name for p in (tmp_path / "durable").rglob("*.data"))
    for path in (tmp_path / "plain").rglob("*.data"):
        twin = next((tmp_path / "durable").rglob(path.name))
        assert twin.read_bytes() == path.read_bytes()


@pytest.mark.parametrize("refuses_at", ["open", "write"])
def test_a_file_system_refusing_direct_io_simulated_gets_page_cache_writes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refuses_at: str) -> None:
    real_open, real_write = os.open, os.write
    direct_fds: set[int] = set()
    attempts: list[str] = []

    def refusing_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_DIRECT:
            attempts.append("open")
            if refuses_at == "open":
                raise OSError(errno.EINVAL, "Invalid argument", str(path))
            fd = real_open(path, flags, *args, **kwargs)
            direct_fds.add(fd)
            return fd
        return real_open(path, flags, *args, **kwargs)

    def refusing_write(fd: int, data: Any) -> int:
        if fd in direct_fds:
            direct_fds.discard(fd)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(atomic.os, "open", refusing_open)
    monkeypatch.setattr(atomic.os, "write", refusing_write)
    sync = DiskSync()
    assert sync.direct is not None
    for i, size in enumerate([262158, 1 << 20, 262144]):
        data = bytes([i]) * size
        target = tmp_path / f"block-{i}"
        write_unsynced(target, data, sync=sync)
        assert target.read_bytes() == data
    assert attempts == ["open"]  # refused once, then remembered for the device
    assert sync.direct.refused == {os.stat(tmp_path).st_dev}
    assert sync.direct.written == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["block-0", "block-1", "block-2"]


def test_a_direct_write_that_fills_the_disk_leaves_no_file(small_disk: Path) -> None:
    """A real 4 MiB tmpfs (which takes O_DIRECT since Linux 6.6; on an older kernel the
    write goes through the page cache and must end the same way)."""
    sync = DiskSync()
    with pytest.raises(OSError) as raised:
        write_unsynced(small_disk / "block", b"x" * (8 << 20), sync=sync)
    assert raised.value.errno == errno.ENOSPC
    assert list(small_disk.iterdir()) == []
    assert sync.direct is not None and sync.direct.written == 0


def test_a_receive_write_that_fills_the_disk_is_never_taken_as_written(
        small_disk: Path) -> None:
    """A receive writes on its own threads: a block whose write failed is not taken as
    queued, so putting it again fails again instead of passing as stored, and the blocks
    written before it are kept (the next receive resumes from them)."""
    from ipfs_mcp.backends.core.cids import cid_of_block, verify_block
    from ipfs_mcp.backends.errors import DiskFull

    store = Blockstore(small_disk / "repo", fsync=True)
    small = os.urandom(64 * 1024)
    large = os.urandom(8 << 20)  # more than the 4 MiB file system holds
    with store.receiving() as batch:
        batch.put_verified(verify_block(cid_of_block(small), small))
        for _ in range(2):
            with pytest.raises(DiskFull):
                batch.put_verified(verify_block(cid_of_block(large), large))
    assert store.get(cid_of_block(small)) == small
    assert not store.has(cid_of_block(large))
    assert list(store.tmp_dir.iterdir()) == []
