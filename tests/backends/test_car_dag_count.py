"""A CAR receive says how many blocks the DAG holds once nothing is missing, counting what
it found stored as well as what was sent, and says nothing while something is missing.

An honest HTTP server of the test's own answers each CAR request with the subtree asked
for, or, deliberately short, with its first blocks only.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import httpx
from multiformats import CID

from ipfs_mcp.backends.core.car import write_car
from ipfs_mcp.backends.core.cids import parse_cid
from ipfs_mcp.backends.core.dag import walk
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.repo.blockstore import Blockstore
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.backends.retrieval.car_stream import CarStreams
from tests.retrieval.test_car_receive_batched import CAR_TYPE, OneProvider

TIMEOUT = 60.0  # seconds a CAR request may take (a slow machine); nothing is timed


def provider(tmp_path: Path, size: int) -> tuple[Repo, CID]:
    """A random file added with Kubo's defaults (dag-pb leaves), and its root."""
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(size))
    repo = Repo(tmp_path / "provider", fsync=False)
    return repo, HFCacheBackend(repo).add_path(data).root


def car_server(start: Callable[..., str], repo: Repo, *, only: int | None = None) -> str:
    """CARs of the subtree each request names; ``only``: a deliberately short server that
    ends every CAR after that many blocks."""
    def answer(target: str) -> tuple[int, dict[str, str], bytes]:
        sub = parse_cid(target.split("?")[0].removeprefix("/ipfs/"))
        blocks = list(walk(sub, repo.blocks.get))[:only]
        out = io.BytesIO()
        write_car(out, [sub], iter(blocks))
        return 200, {"Content-Type": CAR_TYPE}, out.getvalue()

    return start(answer)


def test_the_count_covers_blocks_sent_and_blocks_found_stored(
        tmp_path: Path, http_server_of_own: Callable[..., str]) -> None:
    repo, root = provider(tmp_path, 3 * 1024 * 1024 + 777)
    blocks = list(walk(root, repo.blocks.get))
    store = Blockstore(tmp_path / "fetcher", fsync=False)
    for cid, block in blocks[:5]:  # the root and its first leaves are here already
        store.put(cid, block)
    url = car_server(http_server_of_own, repo)
    with httpx.Client() as client:
        received = CarStreams(OneProvider(url), store, client, timeout=TIMEOUT,
                              stall=TIMEOUT).receive(root)
    assert received.left == []
    assert received.dag_blocks == len(blocks) > 10
    assert list(walk(root, store.get)) == blocks


def test_no_count_while_something_is_missing(
        tmp_path: Path, http_server_of_own: Callable[..., str]) -> None:
    repo, root = provider(tmp_path, 3 * 1024 * 1024 + 777)
    store = Blockstore(tmp_path / "fetcher", fsync=False)
    short = OneProvider(car_server(http_server_of_own, repo, only=4))
    with httpx.Client() as client:
        received = CarStreams(short, store, client, timeout=TIMEOUT,
                              stall=TIMEOUT).receive(root)
    assert received.left and received.dag_blocks is None
    assert short.failures  # it was counted as failing, not believed
