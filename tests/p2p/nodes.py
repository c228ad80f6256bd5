"""Helpers that start our nodes (and deliberately faulty peers) for the tests."""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import anyio.from_thread
import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from multiaddr import Multiaddr
from multiformats import CID

from ipfs_mcp.backends.core.importer import Importer, ImportOptions
from ipfs_mcp.backends.repo.blockstore import Blockstore
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.p2p import BitswapConfig, NodeConfig, P2PNode, open_node
from ipfs_mcp.p2p._net import FrameReader
from ipfs_mcp.p2p.bitswap.message import (
    MAX_MESSAGE_SIZE,
    PROTOCOLS,
    WantEntry,
    decode_message,
)
from ipfs_mcp.p2p.host import build_host

# Short enough that a silent peer costs about a second; long enough for a loaded CI box.
FAST = NodeConfig(
    bitswap=BitswapConfig(want_timeout=1.0, send_timeout=5.0, bad_peer_timeout=30.0),
    find_providers_timeout=5.0,
    provide_timeout=5.0,
    fetch_block_timeout=20.0,
    fetch_dag_timeout=60.0,
)


def config(**overrides: object) -> NodeConfig:
    return replace(FAST, **overrides)  # type: ignore[arg-type]


# A patient fetcher: its wants never time out within a test, so only the behaviour under
# test (a cancellation, a re-issue from a peer's own pace) can end or move them.
PATIENT = config(bitswap=replace(FAST.bitswap, want_timeout=3600.0))


def repo_at(path: Path) -> Repo:
    # No fsync: these repos are thrown away, and fsync per block only slows the tests.
    return Repo(path, fsync=False)


@asynccontextmanager
async def node_at(path: Path, cfg: NodeConfig | None = None,
                  blockstore: object | None = None) -> AsyncIterator[P2PNode]:
    async with open_node(repo_at(path), cfg or FAST, blockstore=blockstore) as node:  # type: ignore[arg-type]
        yield node


def add_bytes(repo: Repo | Blockstore, data: bytes, cid_version: int = 0) -> CID:
    blocks = repo.blocks if isinstance(repo, Repo) else repo
    return Importer(sink=blocks, options=ImportOptions(cid_version=cid_version)
                    ).add_bytes(data).cid_obj


def add_path(repo: Repo, path: Path, cid_version: int = 0) -> CID:
    return Importer(sink=repo.blocks, options=ImportOptions(cid_version=cid_version)
                    ).add_path(path).root


def make_tree(root: Path, seed: int = 1) -> Path:
    """A nested folder with small files, an empty file and a multi-block file."""
    rnd = __import__("random").Random(seed)
    (root / "docs" / "deep" / "deeper").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "readme.txt").write_text("hello from ipfs-mcp\n")
    (root / "docs" / "a.bin").write_bytes(rnd.randbytes(1000))
    (root / "docs" / "deep" / "big.bin").write_bytes(rnd.randbytes(600_000))
    (root / "docs" / "deep" / "deeper" / "z.txt").write_text("z" * 10)
    (root / "zero").write_bytes(b"")
    return root


class CorruptingStore(Blockstore):
    """A real blockstore that serves every block with one byte flipped.

    Used as the block source of one of our own nodes: a real peer speaking real bitswap,
    with bad data.
    """

    def get(self, cid: CID) -> bytes:
        data = bytearray(super().get(cid))
        if data:
            data[len(data) // 2] ^= 0xFF
        else:
            data = bytearray(b"\x00")
        return bytes(data)


class GatedStore(Blockstore):
    """A real blockstore that, after serving ``after`` blocks, signals and then holds
    further reads until released: the test disconnects the peer while it is serving."""

    def __init__(self, root: Path, after: int, served: trio.Event) -> None:
        super().__init__(root, fsync=False)
        self.after = after
        self.served = served
        self.release = threading.Event()
        self.count = 0
        self._lock = threading.Lock()

    def get(self, cid: CID) -> bytes:
        with self._lock:
            self.count += 1
            n = self.count
        if n == self.after:
            anyio.from_thread.run_sync(self.served.set)
        if n > self.after:
            # Longer than any test's bound, so a test cannot pass by outwaiting it; the
            # bound only keeps a thread from hanging if a test forgot to release.
            self.release.wait(timeout=120)
        return super().get(cid)


class WantLog:
    """Every want entry a peer was sent, in order; ``until`` waits for more to arrive."""

    def __init__(self) -> None:
        self.entries: list[WantEntry] = []
        self._changed = trio.Event()

    def add(self, entries: list[WantEntry]) -> None:
        self.entries.extend(entries)
        self._changed.set()
        self._changed = trio.Event()

    async def until(self, holds: Callable[[list[WantEntry]], bool]) -> None:
        """Return once ``holds(entries)``; the caller bounds the wait."""
        while not holds(self.entries):
            await self._changed.wait()


@asynccontextmanager
async def silent_peer() -> AsyncIterator[object]:
    """A real libp2p host (noise, yamux) that accepts bitswap streams and never answers.

    It keeps what it was asked: ``host.wants``, a :class:`WantLog`.
    """
    host = build_host(create_new_key_pair(), FAST)
    heard = trio.Event()
    wants = WantLog()

    async def swallow(stream: object) -> None:
        heard.set()
        reader = FrameReader(stream, MAX_MESSAGE_SIZE)  # type: ignore[arg-type]
        try:
            while (body := await reader.next()) is not None:
                wants.add(decode_message(body).wants)
        except Exception:  # the stream ends however the other side ends it
            return

    for proto in PROTOCOLS:
        host.set_stream_handler(proto, swallow)  # type: ignore[arg-type]
    async with host.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        try:
            host.heard = heard  # type: ignore[attr-defined]
            host.wants = wants  # type: ignore[attr-defined]
            yield host
        finally:
            with trio.CancelScope(shield=True):
                await host.close()


@dataclass
class RunningSlot:
    """A server's node slot holding a node that is already up: what ``NodeNetwork`` and
    the gateway wait on."""

    node: P2PNode
    status: str = "running"

    async def wait(self, timeout: float = 0) -> P2PNode:
        return self.node


def fd_count() -> int:
    if os.path.isdir("/proc/self/fd"):
        return len(os.listdir("/proc/self/fd"))
    import psutil  # macOS and other POSIX systems without /proc

    return psutil.Process().num_fds()

