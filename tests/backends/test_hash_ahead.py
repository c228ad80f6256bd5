"""Within an add's batch, each large leaf is hashed and written in one task on the batch's
writers (one thread hand-off per leaf), then adopted in order by ``put_block``: the same
blocks and CIDs as ever, every leaf hashed once, nothing left in ``tmp/``."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from ipfs_mcp.backends.core import importer as importer_module
from ipfs_mcp.backends.core.importer import Importer, ImportOptions
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.repo import blockstore
from ipfs_mcp.backends.repo.repository import Repo

CHUNK = 262144


class CountingSha256:
    """hashlib's sha256, noting the size of each buffer hashed and the thread hashing it."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, str]] = []
        self._lock = threading.Lock()

    def __call__(self, data: bytes = b"") -> Any:
        with self._lock:
            self.calls.append((len(data), threading.current_thread().name))
        return hashlib.sha256(data)


class _CountingHashlib:
    def __init__(self, counter: CountingSha256) -> None:
        self.sha256 = counter


@pytest.mark.parametrize("options", [ImportOptions(), ImportOptions(cid_version=1)],
                         ids=["cidv0-dag-pb-leaves", "cidv1-raw-leaves"])
def test_an_adds_large_leaves_are_hashed_once_by_the_writers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: ImportOptions) -> None:
    data = os.urandom(10 * CHUNK + 12345)
    expected = Importer(options=options).add_bytes(data)  # CIDs only, no store
    counter = CountingSha256()
    monkeypatch.setattr(blockstore, "hashlib", _CountingHashlib(counter))
    shared_pool = importer_module._shared_hash_pool()
    submitted: list[Any] = []
    real_submit = shared_pool.submit

    def noting_submit(*args: Any, **kwargs: Any) -> Any:
        submitted.append(args)
        return real_submit(*args, **kwargs)

    monkeypatch.setattr(shared_pool, "submit", noting_submit)
    backend = HFCacheBackend(Repo(tmp_path / "repo"))
    cid = backend.add_bytes(data, options=options)
    assert cid == str(expected.cid_obj)
    leaves = [(size, name) for size, name in counter.calls if size >= CHUNK]
    assert len(leaves) == 10  # each full leaf once, none a second time
    assert all(name.startswith("block-write") for _, name in leaves)
    assert submitted == []  # the shared hash pool had nothing to do
    repo = Repo(tmp_path / "repo")
    assert not any(repo.blocks.tmp_dir.iterdir())
    assert repo.verify().ok
    assert backend.cat(cid) == data


def test_a_file_of_repeated_leaves_stores_each_block_once(tmp_path: Path) -> None:
    data = bytes(16 * CHUNK)  # sixteen identical leaves, hashed on two or more threads
    backend = HFCacheBackend(Repo(tmp_path / "repo"))
    cid = backend.add_bytes(data)
    repo = Repo(tmp_path / "repo")
    assert len(list(repo.blocks.iter_multihashes())) == 2  # the leaf and the root
    assert not any(repo.blocks.tmp_dir.iterdir())
    assert repo.verify().ok
    assert str(Importer().add_bytes(data).cid_obj) == cid


def test_a_nocopy_add_writes_no_leaf_ahead(tmp_path: Path) -> None:
    source = tmp_path / "weights.bin"
    source.write_bytes(os.urandom(6 * CHUNK))
    backend = HFCacheBackend(Repo(tmp_path / "repo"))
    result = backend.add_path(source, options=ImportOptions(cid_version=1, nocopy=True))
    repo = Repo(tmp_path / "repo")
    # Only the root is a block: the six raw leaves stay in the file, by reference.
    assert len(list(repo.blocks.iter_multihashes())) == 1
    assert not any(repo.blocks.tmp_dir.iterdir())
    assert backend.cat(str(result.root)) == source.read_bytes()
