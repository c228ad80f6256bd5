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

An object with only some of these methods (the replaced router's guide registers one with
``add_bytes(data, *, pin=True)`` and ``cat(cid)``) is completed by :func:`as_backend`: each
call passes only the keywords its method takes, and a method it lacks is ``Unsupported``.

Implementations raise the project's errors (``InvalidCID``, ``BlockNotFound``,
``IntegrityError``, ``BackendUnavailable``, ``Unsupported``...), never a made-up CID, and
call ``progress(nbytes)`` as bytes are handled; a progress callback may raise
``OperationCancelled`` to stop the work, which then unwinds through its own cleanup.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, cast, runtime_checkable

from multiformats import CID

from ipfs_mcp.backends.core.car import CarImportReport
from ipfs_mcp.backends.core.cids import cid_str, parse_cid, verify_block
from ipfs_mcp.backends.core.exporter import Entry, Exporter
from ipfs_mcp.backends.core.importer import ImportOptions, ImportResult
from ipfs_mcp.backends.core.rooted import OutputTarget
from ipfs_mcp.backends.errors import (
    BackendUnavailable,
    IntegrityError,
    InvalidCID,
    IpfsMcpError,
    TargetExists,
    Unsupported,
)
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

    def with_replication(self, replication_min: int | None, replication_max: int | None
                         ) -> Backend:
        """This backend with every add and pin carrying these factors, so a write is
        placed on that many peers from its first block (not everywhere, then trimmed)."""
        ...


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


# -- completing a partial backend ------------------------------------------------------------
# The replaced router's guide registers plain objects with just the methods they use
# (``add_bytes(data, *, pin=True)`` and ``cat(cid)``). ``as_backend`` completes such an object
# to the protocol: each call passes only the keywords its method takes, and a method it lacks
# is an ``Unsupported`` naming both, never a silent no-op.
_MISSING = object()
# Keywords a method may lose without changing what it does: progress is a report, not a
# request, and get_to_path's overwrite=False is enforced before the call (PartialBackend
# .get_to_path), so what is left of it is a permission. Any other keyword a method does not
# take may be dropped only at its default.
_ADVISORY = frozenset({"progress", "overwrite"})


def _protocol_members() -> tuple[str, ...]:
    return tuple(n for n in vars(Backend) if not n.startswith("_"))


def is_complete_backend(obj: object) -> bool:
    """Whether ``obj`` has every member of :class:`Backend`, looked up without running any
    property (a Router's ``name`` would select a backend)."""
    return all(inspect.getattr_static(obj, n, _MISSING) is not _MISSING
               for n in _protocol_members())


def as_backend(obj: object, name: str) -> Backend:
    """``obj`` itself when it is a complete backend, else ``obj`` completed to the protocol
    under ``name`` (what it was registered as)."""
    if is_complete_backend(obj):
        return cast(Backend, obj)
    return PartialBackend(obj, name)


def _protocol_default(method: str, keyword: str) -> object:
    parameter = inspect.signature(getattr(Backend, method)).parameters.get(keyword)
    return _MISSING if parameter is None else parameter.default


class PartialBackend:
    """A backend object with only some of the protocol's methods, seen as a whole one.

    Args:
        wrapped: the object (kept as ``wrapped``).
        name: what it is called in errors and reports.

    Raises (from every method):
        Unsupported: the object has no such method, or its method takes no keyword that the
            call needs (a non-default ``name=``, ``options=``, ``offset=``...).
        BackendUnavailable: its method raised an error of its own (chained as the cause).
        IntegrityError: what it returned is not a CID, or a block that does not hash to its
            CID (blocks and raw CIDs are checked; a UnixFS file's bytes cannot be without
            its DAG).
    """

    repo: Repo | None = None
    counters: CacheCounters | None = None
    network: Network | None = None
    replication: Replication | None = None

    def __init__(self, wrapped: object, name: str) -> None:
        self.wrapped = wrapped
        self.name = name

    def __repr__(self) -> str:
        return f"PartialBackend({self.name!r}, {self.wrapped!r})"

    def _call(self, method: str, *args: object, **keywords: object) -> Any:
        bound = getattr(self.wrapped, method, None)
        if not callable(bound):
            raise Unsupported(self.name, method, f"{type(self.wrapped).__name__} has no "
                              f"{method} method")
        passed = self._keywords(method, bound, keywords)
        try:
            return bound(*args, **passed)
        except IpfsMcpError:
            raise
        except Exception as exc:
            # Foreign code's error, translated at its boundary: a read then falls back to
            # the next backend, and the cause stays chained for whoever debugs it.
            raise BackendUnavailable(f"backend {self.name}: {method} raised "
                                     f"{type(exc).__name__}: {exc}") from exc

    def _keywords(self, method: str, bound: Callable[..., object],
                  keywords: dict[str, object]) -> dict[str, object]:
        """The keywords ``bound`` takes; one it does not take is dropped only at the
        protocol's default (or when advisory)."""
        try:
            parameters = inspect.signature(bound).parameters
        except (TypeError, ValueError):  # a builtin without a signature: pass everything
            return keywords
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            return keywords
        passed = {}
        for key, value in keywords.items():
            if key in parameters:
                passed[key] = value
            elif key not in _ADVISORY and value != _protocol_default(method, key):
                raise Unsupported(self.name, f"{method} with {key}={value!r}",
                                  f"{type(self.wrapped).__name__}.{method} takes no {key}")
        return passed

    def _cid(self, method: str, value: object) -> CID:
        try:
            return parse_cid(value)  # type: ignore[arg-type]  # checked by parsing
        except InvalidCID as exc:
            raise IntegrityError(f"backend {self.name}: {method} returned {value!r}, "
                                 "not a CID") from exc

    def add_bytes(self, data: bytes, *, pin: bool = True, name: str = "",
                  options: ImportOptions | None = None) -> str:
        cid = self._cid("add_bytes", self._call("add_bytes", data, pin=pin, name=name,
                                                options=options))
        if cid.codec.name == "raw":  # one block: its CID says what its bytes hash to
            verify_block(cid, data)
        return cid_str(cid)

    def add_stream(self, stream: BinaryIO, *, pin: bool = True, name: str = "",
                   options: ImportOptions | None = None,
                   progress: ProgressFn | None = None) -> str:
        return cid_str(self._cid("add_stream", self._call(
            "add_stream", stream, pin=pin, name=name, options=options, progress=progress)))

    def add_path(self, path: str | Path, *, recursive: bool = True, pin: bool = True,
                 name: str = "", options: ImportOptions | None = None,
                 progress: ProgressFn | None = None) -> ImportResult:
        result = self._call("add_path", path, recursive=recursive, pin=pin, name=name,
                            options=options, progress=progress)
        if isinstance(result, ImportResult):
            return result
        # The guide's backends answer with the root CID alone; the size is the bytes added.
        files = [Path(path)] if Path(path).is_file() else Path(path).rglob("*")
        size = sum(f.lstat().st_size for f in files if f.is_file() and not f.is_symlink())
        return ImportResult(self._cid("add_path", result), size)

    def stat(self, cid: str) -> Entry:
        return cast(Entry, self._call("stat", cid))

    def ls(self, cid: str) -> list[Entry]:
        return cast(list[Entry], self._call("ls", cid))

    def cat(self, cid: str, *, offset: int = 0, length: int | None = None) -> bytes:
        return bytes(self._call("cat", cid, offset=offset, length=length))

    def cat_stream(self, cid: str, *, offset: int = 0, length: int | None = None
                   ) -> Iterator[bytes]:
        return cast(Iterator[bytes], self._call("cat_stream", cid, offset=offset,
                                                length=length))

    def get_to_path(self, cid: str, *, output_path: str | Path | OutputTarget,
                    overwrite: bool = False,
                    max_bytes: int | None = None, progress: ProgressFn | None = None
                    ) -> Entry:
        """As the protocol's, where the object allows: it is handed paths only (a folder
        held open would be written through by its string, undoing the write by handle), and
        an existing target is refused here unless ``overwrite``, since a method that takes
        no ``overwrite`` cannot refuse. The guide's ``get_to_path`` returns None, as here.

        Raises:
            Unsupported: ``output_path`` is a held-open folder.
            TargetExists: it exists (a file, a link, a non-empty folder) and no overwrite.
        """
        if isinstance(output_path, OutputTarget):
            raise Unsupported(self.name, "get_to_path into a folder held open",
                              f"{type(self.wrapped).__name__} writes by path")
        target = Path(output_path)
        if not overwrite and (target.is_symlink() or target.is_file()
                              or (target.is_dir() and any(target.iterdir()))):
            raise TargetExists(f"{target} exists; pass overwrite to replace it")
        return cast(Entry, self._call("get_to_path", cid, output_path=output_path,
                                      overwrite=overwrite, max_bytes=max_bytes,
                                      progress=progress))

    def exporter(self, *, whole_dag: bool = False) -> Exporter:
        return cast(Exporter, self._call("exporter", whole_dag=whole_dag))

    def pin(self, cid: str, *, recursive: bool = True, name: str = "",
            progress: ProgressFn | None = None) -> Pin:
        result = self._call("pin", cid, recursive=recursive, name=name, progress=progress)
        if isinstance(result, Pin):
            return result
        # The guide's pin returns None: it pinned what was asked, as it was asked.
        return Pin(parse_cid(cid), "recursive" if recursive else "direct", name)

    def unpin(self, cid: str) -> list[str]:
        result = self._call("unpin", cid)
        return [cid] if result is None else list(result)

    def pins(self) -> list[Pin]:
        return cast(list[Pin], self._call("pins"))

    def block_put(self, data: bytes, *, codec: str = "raw") -> str:
        cid = self._cid("block_put", self._call("block_put", data, codec=codec))
        verify_block(cid, data)
        return cid_str(cid)

    def block_get(self, cid: str) -> bytes:
        data = bytes(self._call("block_get", cid))
        verify_block(parse_cid(cid), data)
        return data

    def dag_export(self, cid: str, out: Path | BinaryIO | None = None) -> bytes | None:
        return cast("bytes | None", self._call("dag_export", cid, out=out))

    def dag_import(self, stream: BinaryIO, *, pin_roots: bool = True) -> CarImportReport:
        return cast(CarImportReport, self._call("dag_import", stream, pin_roots=pin_roots))

    def health(self) -> str:
        # Lifecycle, not a capability: an object without a check of its own is one that
        # was built, and says so.
        if not callable(getattr(self.wrapped, "health", None)):
            return f"{type(self.wrapped).__name__} (no health check of its own)"
        return str(self._call("health"))

    def close(self) -> None:
        if callable(getattr(self.wrapped, "close", None)):
            self._call("close")
