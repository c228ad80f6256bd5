"""The ``Backend`` protocol: everything the tools, the CLI and the seed API need of a backend.

One small interface, implemented by every backend module (``hf_cache``, ``kubo`` over its
RPC or CLI, ``cluster``, ``ipfs_kit``) and by the :class:`~ipfs_mcp.backends.router.Router` itself.
CIDs go in as strings (``CID[/path]`` where a path makes sense), as in the seed API.

Powers that only some backends have are typed attributes that may be None; callers test
them with ``is None``, never with ``hasattr``:

* ``repo``: the embedded repo (GC, stat, verify, integrity), for the embedded backend;
* ``counters``: local cache hit/miss counters, where reads can miss and fetch;
* ``replication``: pins kept on several machines with a replication factor (the cluster);
* ``network``: the node this backend *is* (Kubo's own swarm and routing), for backends
  that run one; the embedded backend leaves it None, and the server pairs it with our own
  P2P node instead.

Implementations raise the project's errors (``InvalidCID``, ``BlockNotFound``,
``IntegrityError``, ``BackendUnavailable``, ``Unsupported``...), never a made-up CID, and
call ``progress(nbytes)`` as bytes are handled; a progress callback may raise
``OperationCancelled`` to stop the work, which then unwinds through its own cleanup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol, runtime_checkable

from ipfs_mcp.backends.core.car import CarImportReport
from ipfs_mcp.backends.core.exporter import Entry, Exporter
from ipfs_mcp.backends.core.importer import ImportOptions, ImportResult
from ipfs_mcp.backends.core.rooted import OutputTarget
from ipfs_mcp.backends.repo.pins import Pin

if TYPE_CHECKING:
    from ipfs_mcp.backends.network import Network
    from ipfs_mcp.backends.repo.repository import Repo

ProgressFn = Callable[[int], None]


@dataclass
class CacheCounters:
    """Local cache hits and misses of a backend whose reads can fetch from the network."""


    hits: int = 0
    misses: int = 0
    fetched: int = 0


class Replication(Protocol):
    """Pins that a backend keeps on several machines (an IPFS Cluster): how many peers
    must hold it (``replication_min``) and may (``replication_max``)."""

    def pin(self, cid: str, *, recursive: bool = True, name: str = "",
            progress: ProgressFn | None = None, replication_min: int | None = None,
            replication_max: int | None = None) -> Pin: ...

    def add_path(self, path: str | Path, *, recursive: bool = True, pin: bool = True,
                 name: str = "", options: ImportOptions | None = None,
                 progress: ProgressFn | None = None, replication_min: int | None = None,
                 replication_max: int | None = None) -> ImportResult: ...


@runtime_checkable
class Backend(Protocol):
    """What every backend does (see the module docstring for the optional attributes)."""

    # Read-only to callers: a plain attribute or a property both satisfy it.
    @property
    def name(self) -> str: ...
    @property
    def repo(self) -> Repo | None: ...
    @property
    def counters(self) -> CacheCounters | None: ...
    @property
    def network(self) -> Network | None: ...
    @property
    def replication(self) -> Replication | None: ...

    # -- adding (every add reports progress and may carry a pin name) ------------------
    def add_bytes(self, data: bytes, *, pin: bool = True, name: str = "",
                  options: ImportOptions | None = None) -> str: ...

    def add_stream(self, stream: BinaryIO, *, pin: bool = True, name: str = "",
                   options: ImportOptions | None = None,
                   progress: ProgressFn | None = None) -> str: ...

    def add_path(self, path: str | Path, *, recursive: bool = True, pin: bool = True,
                 name: str = "", options: ImportOptions | None = None,
                 progress: ProgressFn | None = None) -> ImportResult: ...

    # -- reading (every byte verified against its CID) -----------------------------------
    def stat(self, cid: str) -> Entry: ...

    def ls(self, cid: str) -> list[Entry]: ...

    def cat(self, cid: str, *, offset: int = 0, length: int | None = None) -> bytes: ...

    def cat_stream(self, cid: str, *, offset: int = 0, length: int | None = None
                   ) -> Iterator[bytes]: ...

    def get_to_path(self, cid: str, *, output_path: str | Path | OutputTarget,
                    overwrite: bool = False,
                    max_bytes: int | None = None, progress: ProgressFn | None = None
                    ) -> Entry:
        """Write ``cid`` to ``output_path`` atomically; an existing file or non-empty folder
        needs ``overwrite``; the declared size must fit the disk and ``max_bytes``."""
        ...

    def exporter(self, *, whole_dag: bool = False) -> Exporter:
        """A UnixFS reader over this backend's verified blocks (``whole_dag``: a miss may
        fetch the whole DAG under the missing block at once, for reads of whole content)."""
        ...

    # -- pins ----------------------------------------------------------------------------
    def pin(self, cid: str, *, recursive: bool = True, name: str = "",
            progress: ProgressFn | None = None) -> Pin: ...

    def unpin(self, cid: str) -> list[str]: ...

    def pins(self) -> list[Pin]: ...

    # -- blocks and CARs -----------------------------------------------------------------
    def block_put(self, data: bytes, *, codec: str = "raw") -> str: ...

    def block_get(self, cid: str) -> bytes: ...

    def dag_export(self, cid: str, out: Path | BinaryIO | None = None) -> bytes | None: ...

    def dag_import(self, stream: BinaryIO, *, pin_roots: bool = True) -> CarImportReport: ...

    # -- life ----------------------------------------------------------------------------
    def health(self) -> str:
        """One line for the health report, asked now.

        Raises:
            BackendUnavailable: it does not work right now (the message says why).
        """
        ...

    def close(self) -> None: ...
