"""``hf_cache``: the embedded default backend, a complete IPFS repo under ``$HF_HOME/ipfs``.

No daemon and no network of its own: blocks, pins, GC and CARs live in :class:`Repo`. When
a block is missing locally and a :class:`BlockFetcher` was given (the P2P node), reads fetch
it from peers; the fetcher verifies and stores every block before it is used.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from multiformats import CID

from ipfs_mcp.backends.backend import CacheCounters
from ipfs_mcp.backends.cancel import current_cancel
from ipfs_mcp.backends.core import car
from ipfs_mcp.backends.core.cids import block_codec, cid_of_block, cid_str, parse_cid, split_path
from ipfs_mcp.backends.core.exporter import Entry, Exporter
from ipfs_mcp.backends.core.importer import Importer, ImportOptions, ImportResult
from ipfs_mcp.backends.core.rooted import OutputTarget
from ipfs_mcp.backends.errors import BlockNotFound, InvalidInput
from ipfs_mcp.backends.fetcher import BlockFetcher
from ipfs_mcp.backends.hub import layout as hf_layout
from ipfs_mcp.backends.network import Network
from ipfs_mcp.backends.repo.pins import Pin
from ipfs_mcp.backends.repo.prefetch import DagPrefetch
from ipfs_mcp.backends.repo.repository import Repo

if TYPE_CHECKING:
    from ipfs_mcp.backends.backend import Replication


def _bytes_under(path: Path, recursive: bool) -> int:
    """The bytes of the regular files an add of ``path`` reads (links not followed): what
    it may store, before deduplication."""
    if not path.is_dir():
        return path.stat().st_size if path.is_file() else 0
    if not recursive:
        return 0
    total = 0
    for base, _, names in os.walk(path):
        for name in names:
            st = os.lstat(os.path.join(base, name))
            total += st.st_size if stat.S_ISREG(st.st_mode) else 0
    return total


class HFCacheBackend:
    """The embedded repo as a :class:`~ipfs_mcp.backends.backend.Backend`.

    ``network`` is None: this backend has no node of its own; the server runs our P2P node
    beside it (and hands its fetcher in as ``fetcher``).
    """

    name = "hf_cache"
    network: Network | None = None
    replication: Replication | None = None  # one machine: no replication factor

    def __init__(self, repo: Repo, *, hub_cache: Path | None = None,
                 fetcher: BlockFetcher | None = None) -> None:
        self.repo = repo
        self.hub_cache = hub_cache
        self.fetcher = fetcher
        self.counters = CacheCounters()
        self._lock = threading.Lock()

    # -- loading with fetch-on-miss -----------------------------------------------------
    def load(self, cid: CID, *, whole_dag: bool = False, dag_root: CID | None = None,
             prefetch: DagPrefetch | None = None) -> bytes:
        """A verified block; on a local miss, ask the fetcher: for whole content, the whole
        DAG under ``dag_root`` (the content being read) or else under the missing block, so
        the transfer runs many blocks at once rather than block by block. With a
        ``prefetch``, that DAG fetch runs in the background and the block is taken as soon
        as it arrives (:mod:`.prefetch`).

        Raises:
            BlockNotFound: not local and no fetcher found it.
        """
        # A block the background fetch has just stored is handed over as it was verified,
        # before any look at the disk: the fetch usually runs ahead of the reader.
        taken = prefetch.take(cid) if prefetch is not None else True
        if prefetch is not None and taken is not True:
            with self._lock:
                self.counters.misses += 1
            # Not stored yet: the background fetch brings it (and hands it over).
            data = taken if isinstance(taken, bytes) else prefetch.load(cid)
            with self._lock:
                self.counters.fetched += 1
            return data
        try:
            data = self.repo.blocks.get(cid)
        except BlockNotFound:
            with self._lock:
                self.counters.misses += 1
            if self.fetcher is None:
                raise
            cancel = current_cancel()  # the calling tool's, so a cancel stops the network
            if prefetch is not None:
                data = prefetch.load(cid)
            elif whole_dag:
                self.fetcher.fetch_dag(dag_root or cid, cancel)
                data = self.repo.blocks.get(cid)
            else:
                data = self.fetcher.fetch_block(cid, cancel)
            with self._lock:
                self.counters.fetched += 1
            return data
        with self._lock:
            self.counters.hits += 1
        return data

    def exporter(self, *, whole_dag: bool = False, dag_root: CID | None = None,
                 prefetch: DagPrefetch | None = None) -> Exporter:
        return Exporter(lambda cid: self.load(cid, whole_dag=whole_dag, dag_root=dag_root,
                                              prefetch=prefetch))

    def _prefetch(self, root: CID) -> DagPrefetch | contextlib.nullcontext[None]:
        """A background fetch of the DAG under ``root`` for one whole read (none when
        there is no fetcher: everything is local or missing)."""
        if self.fetcher is None:
            return contextlib.nullcontext()
        return DagPrefetch(self.fetcher, self.repo.blocks, root, current_cancel())

    def _resolve(self, value: str) -> CID:
        cid, path = split_path(value)
        return self.exporter().resolve(cid, path) if path else cid

    # -- adding -------------------------------------------------------------------------
    def importer(self, options: ImportOptions | None = None,
                 progress: Callable[[int], None] | None = None) -> Importer:
        return Importer(self.repo.blocks, options, progress, references=self.repo.filestore)

    def add_bytes(self, data: bytes, *, pin: bool = True, name: str = "",
                  options: ImportOptions | None = None) -> str:
        self.repo.make_room("the added bytes", len(data))
        with self.repo.writing():
            with self.repo.blocks.batch():  # every block durable before the pin is written
                node = self.importer(options).add_bytes(data)
            cid = node.cid_obj
            if pin:
                self.repo.pins.add(cid, "recursive", name=name, size=node.size)
        return cid_str(cid)

    def add_stream(self, stream: BinaryIO, *, pin: bool = True, name: str = "",
                   options: ImportOptions | None = None,
                   progress: Callable[[int], None] | None = None) -> str:
        with self.repo.writing():
            with self.repo.blocks.batch():
                node = self.importer(options, progress).add_stream(stream)
            if pin:
                self.repo.pins.add(node.cid_obj, "recursive", name=name, size=node.size)
        return cid_str(node.cid_obj)

    def add_path(self, path: str | Path, *, recursive: bool = True, pin: bool = True,
                 name: str = "", options: ImportOptions | None = None,
                 progress: Callable[[int], None] | None = None) -> ImportResult:
        if self.repo.bound is not None and not (options is not None and options.nocopy):
            # Nocopy leaves stay in the user's files: only a copy needs room in the repo.
            self.repo.make_room(str(path), _bytes_under(Path(path), recursive))
        with self.repo.writing():
            with self.repo.blocks.batch():
                result = self.importer(options, progress).add_path(Path(path),
                                                                   recursive=recursive)
            if pin:
                self.repo.pins.add(result.root, "recursive", name=name or Path(path).name,
                                   size=result.size)
        return result

    def add_hf_model(self, repo_id: str, revision: str | None = None, *, pin: bool = True,
                     options: ImportOptions | None = None,
                     progress: Callable[[int], None] | None = None,
                     nocopy: bool | None = None) -> ImportResult:
        """Add a cached hub snapshot (see :func:`.hub.add_model`; by reference unless
        ``nocopy=False``).

        Raises:
            NotFound: the model is not in the local hub cache.
        """
        from ipfs_mcp.backends.hub import models as hub

        if self.hub_cache is None:
            raise InvalidInput("no HuggingFace hub cache configured")
        return hub.add_model(self, self.hub_cache, repo_id, revision, pin=pin,
                             options=options, progress=progress, nocopy=nocopy)

    def export_to_hf(self, cid: str, repo_id: str, *, revision: str = "main",
                     commit: str | None = None, replace: bool = False,
                     max_bytes: int | None = None) -> hf_layout.HFWriteResult:
        """Write a folder DAG into the hub cache (see :func:`.hub.export_model`);
        a revision that already names other content moves only with ``replace``."""
        from ipfs_mcp.backends.hub import models as hub

        if self.hub_cache is None:
            raise InvalidInput("no HuggingFace hub cache configured")
        return hub.export_model(self, self.hub_cache, cid, repo_id, revision=revision,
                                commit=commit, replace=replace, max_bytes=max_bytes)

    # -- reading ------------------------------------------------------------------------
    def cat_stream(self, cid: str, *, offset: int = 0, length: int | None = None
                   ) -> Iterator[bytes]:
        root = self._resolve(cid)
        # All of it: fetch the DAG under the file at once, read as it arrives; a page: only
        # what it touches.
        if offset == 0 and length is None:
            return self._cat_arriving(root)
        return self._leased(root, self.exporter(whole_dag=True).cat(root, offset, length))

    def _cat_arriving(self, root: CID) -> Iterator[bytes]:
        with self.repo.lease(root):
            self._make_room(root)
            with self._prefetch(root) as prefetch:
                yield from self.exporter(whole_dag=True, dag_root=root,
                                         prefetch=prefetch).cat(root, 0, None)

    def _leased(self, root: CID, chunks: Iterator[bytes]) -> Iterator[bytes]:
        """``chunks`` read under a lease on ``root``: a bounded repo evicts none of its
        blocks meanwhile."""
        with self.repo.lease(root):
            yield from chunks

    def _make_room(self, root: CID, declared: int | None = None) -> None:
        """Before a fetch of ``root``'s DAG into a bounded repo: evict to make room for
        what is not stored yet, or refuse before the first byte past the root.

        Raises:
            RepoFull: it would not fit under the bound even after eviction.
        """
        if self.repo.bound is None or self.fetcher is None:
            return
        if declared is None:
            declared = self.exporter().declared_size(root)
        self.repo.make_room(cid_str(root), declared - self.repo.stored_under(root))

    def cat(self, cid: str, *, offset: int = 0, length: int | None = None) -> bytes:
        return b"".join(self.cat_stream(cid, offset=offset, length=length))

    def stat(self, cid: str) -> Entry:
        return self.exporter().stat(self._resolve(cid))

    def ls(self, cid: str) -> list[Entry]:
        return self.exporter().ls(self._resolve(cid))

    def get_to_path(self, cid: str, *, output_path: str | Path | OutputTarget,
                    overwrite: bool = False, max_bytes: int | None = None,
                    progress: Callable[[int], None] | None = None) -> Entry:
        """Write atomically to ``output_path`` (best an :class:`OutputTarget`, held since the
        path was checked); an existing target needs ``overwrite``.

        The declared size and entry count are checked against the disk, ``max_bytes`` and
        the target's budget block by block, before the whole DAG is fetched, so a DAG bomb
        costs a few blocks, not the disk.
        """
        root = self._resolve(cid)
        target = output_path if isinstance(output_path, OutputTarget) else Path(output_path)
        shown = target.shown if isinstance(target, OutputTarget) else target
        budget = target.max_entries if isinstance(target, OutputTarget) else None
        declared = self.exporter().check_fits(root, shown, max_bytes, budget)
        # Written as the blocks arrive, so the output's writes overlap the transfer.
        with self.repo.lease(root):
            self._make_room(root, declared)
            with self._prefetch(root) as prefetch:
                return self.exporter(whole_dag=True, dag_root=root,
                                     prefetch=prefetch).get_to_path(
                    root, target, overwrite=overwrite, max_bytes=max_bytes, progress=progress)

    # -- pins ---------------------------------------------------------------------------
    def pin(self, cid: str, *, recursive: bool = True, name: str = "",
            progress: Callable[[int], None] | None = None) -> Pin:
        root = self._resolve(cid)
        if recursive:
            self._make_room(root)
        return self.repo.pin(root, recursive=recursive, name=name,
                             load=lambda c: self.load(c, whole_dag=recursive, dag_root=root),
                             progress=progress)

    def unpin(self, cid: str) -> list[str]:
        """Raises: PinNotFound: it was not pinned."""
        return list(self.repo.unpin(self._resolve(cid)))

    def pins(self) -> list[Pin]:
        return list(self.repo.pins)

    # -- blocks -------------------------------------------------------------------------
    def block_put(self, data: bytes, *, codec: str = "raw") -> str:
        codec_name = block_codec(codec)
        cid = cid_of_block(data, version=1, codec=codec_name)
        self.repo.blocks.put(cid, data)
        return cid_str(cid)

    def block_get(self, cid: str) -> bytes:
        return self.load(parse_cid(cid))

    # -- CAR ----------------------------------------------------------------------------
    def dag_export(self, cid: str, out: Path | BinaryIO | None = None) -> bytes | None:
        """Write the DAG as a CAR v1 to ``out`` (a path or stream), or return its bytes."""
        root = self._resolve(cid)
        load = self.exporter(whole_dag=True, dag_root=root).load
        with self.repo.lease(root):
            self._make_room(root)
            return car.write_export(out, lambda stream: car.export_dag(stream, root, load))

    def health(self) -> str:
        stat = self.repo.stat()
        return f"embedded repo at {stat.path}: {stat.blocks} blocks, {stat.pins} pins"

    def close(self) -> None:
        """Nothing to release: files are opened per operation."""

    def dag_import(self, stream: BinaryIO, *, pin_roots: bool = True) -> car.CarImportReport:
        """Import a CAR, verifying every block, and pin its roots (as ``ipfs dag import``).

        Raises:
            BlockNotFound: pinning a root whose DAG the CAR did not complete.
        """
        with self.repo.writing():
            roots, blocks = car.read_car(stream)
            count = size = 0
            for cid, block in blocks:
                self.repo.blocks.put(cid, block)
                count += 1
                size += len(block)
            if pin_roots:
                for root in roots:
                    self.repo.pin(root, recursive=True)
        return car.CarImportReport(tuple(roots), count, size)
