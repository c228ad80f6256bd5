"""A CAR fetch pays for durability per batch and hashes each block once.

A 40 MiB file (Kubo's defaults: CIDv0, 256 KiB chunks) is sent as one honest CAR by an HTTP
server of the test's own and streamed into a real blockstore. The blockstore's
:class:`DiskSync` notes every sync it is asked for, and one verifier, handed to both the CAR
stream and the blockstore, counts every hash the receive path makes.
"""

from __future__ import annotations

import io
import os
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import httpx
import pytest
from multiformats import CID

from ipfs_mcp.backends.core.car import write_car
from ipfs_mcp.backends.core.cids import VerifiedBlock, cid_of_block, verify_block
from ipfs_mcp.backends.core.dag import walk
from ipfs_mcp.backends.errors import IntegrityError
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.repo import blockstore
from ipfs_mcp.backends.repo.blockstore import Blockstore
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.backends.retrieval.car_stream import CarStreams
from tests.backends.test_batched_durability import NotingSync

SIZE = 40 << 20
CAR_TYPE = "application/vnd.ipld.car; version=1; order=dfs; dups=n"
TIMEOUT = 60.0  # seconds the CAR request may take (a slow machine); nothing is timed


class CountingVerifier:
    """``verify_block``, counting each block it hashes."""

    def __init__(self) -> None:
        self.hashed: Counter[bytes] = Counter()

    def __call__(self, cid: CID, data: bytes) -> VerifiedBlock:
        self.hashed[bytes(cid.digest)] += 1
        return verify_block(cid, data)


class SizingSync(NotingSync):
    """NotingSync, also noting each batch sync's ``(bytes, files)``."""

    def __init__(self, *, use_syncfs: bool = True) -> None:
        super().__init__(use_syncfs=use_syncfs)
        self.batches: list[tuple[int, int]] = []

    def files(self, paths: Iterable[Path], anchor: Path) -> None:
        paths = list(paths)
        self.batches.append((sum(p.stat().st_size for p in paths), len(paths)))
        super().files(paths, anchor)


class OneProvider:
    """The providers of one fetch (``car_stream.Providers``): one URL, its record kept."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.verified = 0
        self.failures: list[str] = []

    def ranked(self) -> list[str]:
        return [self.url]

    def succeeded(self, url: str, seconds: float, nbytes: int) -> None:
        self.verified += 1

    def failed(self, url: str) -> None:
        self.failures.append(f"{url} failed")

    def lied(self, url: str, why: str) -> None:
        self.failures.append(why)


def honest_car(tmp_path: Path) -> tuple[CID, list[tuple[CID, bytes]], bytes]:
    """A random file added with Kubo's defaults: its root, its blocks in CAR order, its CAR."""
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(SIZE))
    provider = HFCacheBackend(Repo(tmp_path / "provider", fsync=False))
    root = provider.add_path(data).root
    blocks = list(walk(root, provider.repo.blocks.get))
    out = io.BytesIO()
    write_car(out, [root], iter(blocks))
    return root, blocks, out.getvalue()


def car_server(http_server_of_own: Callable[..., str], car: bytes) -> str:
    def answer(target: str) -> tuple[int, dict[str, str], bytes]:
        if "format=car" not in target:
            return 404, {}, b"CARs only"
        return 200, {"Content-Type": CAR_TYPE}, car

    return http_server_of_own(answer)


@pytest.mark.parametrize("use_syncfs", [True, False], ids=["syncfs", "per-file"])
def test_a_car_fetch_syncs_per_batch_and_hashes_each_block_once(
        tmp_path: Path, http_server_of_own: Callable[..., str], use_syncfs: bool) -> None:
    root, blocks, car = honest_car(tmp_path)
    sync = SizingSync(use_syncfs=use_syncfs)
    verifier = CountingVerifier()
    store = Blockstore(tmp_path / "fetcher", sync=sync, verify=verifier)
    provider = OneProvider(car_server(http_server_of_own, car))
    with httpx.Client() as client:
        left = CarStreams(provider, store, client, timeout=TIMEOUT, stall=TIMEOUT,
                          verify=verifier).fetch(root)

    assert left == [] and provider.failures == []
    assert provider.verified == len(blocks)
    # Hashed once each on the way in: by the CAR reader, never again by the blockstore.
    assert verifier.hashed == Counter(bytes(cid.digest) for cid, _ in blocks)

    kinds = sync.kinds()
    assert "file" not in kinds and "folder" not in kinds  # no block synced on its own
    batches = len(sync.batches)
    assert 1 <= batches < len(blocks) / 10
    # A batch is cut at its bounds; only the last one (the fetch's end) may be smaller.
    assert all(size >= blockstore.BATCH_BYTES or count >= blockstore.BATCH_BLOCKS
               for size, count in sync.batches[:-1])
    synced = [p for kind, paths in sync.calls if kind == "files" for p in paths]
    assert len(synced) == len(set(synced)) == len(blocks)  # each temp file synced once
    # Each batch's files synced before its renames; the renames made durable, the last of
    # them before the fetch returned (by the next batch's syncfs and one at the end, or by
    # a folders sync after each batch).
    per_batch = ["files"] if sync.whole_file_system else ["files", "folders"]
    tail = ["folders"] if sync.whole_file_system else []
    assert kinds == per_batch * batches + tail, kinds
    assert not any(store.tmp_dir.iterdir())
    assert list(walk(root, store.get)) == blocks

    # The count is not blind: a put outside the receive path is hashed by the same verifier.
    cid, data = blocks[-1]
    before = verifier.hashed[bytes(cid.digest)]
    assert store.put(cid, data) is False  # already stored, but hashed first
    assert verifier.hashed[bytes(cid.digest)] == before + 1


def test_only_verify_block_makes_the_proof_a_receiving_batch_takes(tmp_path: Path) -> None:
    data = b"a block a receiver verified"
    cid = cid_of_block(data)
    with pytest.raises(TypeError):
        VerifiedBlock(cid, data, object())  # no proof without hashing
    with pytest.raises(IntegrityError):
        verify_block(cid, data + b"!")
    proof = verify_block(cid, data)
    with pytest.raises(AttributeError):
        proof.data = b"other bytes"
    store = Blockstore(tmp_path / "repo", fsync=False)
    with store.receiving() as batch:
        with pytest.raises(TypeError):
            batch.put_verified((cid, data))  # type: ignore[arg-type]
        batch.put_verified(proof)
    assert store.get(cid) == data
    assert not any(store.tmp_dir.iterdir())


def test_a_receive_that_fails_keeps_the_verified_blocks_that_arrived(tmp_path: Path) -> None:
    """Each received block stands alone (verified, and no pin waits on it), so a receive
    cut short still makes what arrived durable and in place: the next one resumes there."""
    sync = NotingSync()
    store = Blockstore(tmp_path / "repo", sync=sync)
    blocks = [verify_block(cid_of_block(b), b) for b in (os.urandom(1000) for _ in range(5))]
    with pytest.raises(OSError, match="the provider went away"), store.receiving() as batch:
        for block in blocks[:3]:
            batch.put_verified(block)
        batch.flush()  # a receiver about to ask what is missing sees these three
        assert all(store.has(b.cid) for b in blocks[:3])
        for block in blocks[3:]:
            batch.put_verified(block)
        raise OSError("the provider went away")
    assert all(store.get(b.cid) == b.data for b in blocks)
    assert not any(store.tmp_dir.iterdir())
    assert sync.kinds()[-1] == "folders" and "file" not in sync.kinds()
