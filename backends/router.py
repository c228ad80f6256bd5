"""The backend router: one :class:`Router` that the server, the CLI and the seed API share.

A Router owns

* a :class:`BackendRegistry`: the backend factories by name (built-in and registered),
  each built at most once, with what they are built from (:class:`RouterDeps`: settings and
  the retrieval sources a local miss asks: our node's bitswap, trustless gateways);
* the selected **primary** backend, chosen as below, and
* the other working backends in preference order, asked when a read misses.

It implements the :class:`~ipfs_mcp.backends.backend.Backend` protocol itself, so whoever
holds a Router holds "the backend", and :meth:`Router.last_read` says which backend (and
which retrieval source) answered the calling thread's last read. :meth:`Router.block_get_from`
reads one block from the selected backend alone, asking only the retrieval sources named
(the gateway: what is here, or with ``--gateway-recursive`` the HTTP sources).

Selection:

1. an explicit choice (a name or an instance), else ``IPFS_BACKEND``: that backend or a
   clear error (never a silent switch);
2. otherwise the first that really works, in the order ipfs_kit, hf_cache, kubo.

A backend is "working" only if its factory built it and its probe passed; nothing hands
out made-up CIDs. Building (which probes) happens outside the registry's lock, under a
per-name lock, so one slow daemon does not stall selection of another.

Reads that fail on the primary (not found, unavailable, corrupt) fall back to the next
working backend; the CID proves the answer right wherever it came from. Caller mistakes
(an invalid CID, a folder where a file was wanted) and cancellations are not retried.
``IPFS_READ_FALLBACK=0`` turns fallback off. Writes never switch: if the chosen backend
fails, the write fails and says so. Failures are collected and reported together, as
Helia's routing does.

The seed module API (``add_bytes``, ``cat``, ..., ``get_backend``, ``set_default_ipfs_backend``,
``register_ipfs_backend``) is a thin layer over one default Router, built on first use from
the environment. Beyond that one instance there is no module-level mutable state. It is
also importable as the replaced router's guide spells it, :mod:`ipfs_mcp.backends.ipfs_backend_router`.

Registered factories take the :class:`RouterDeps` or nothing (the guide's
``lambda: CustomBackend()``), and may build an object with only the methods it is called
with: it is completed to the protocol under its registered name (see
:func:`~ipfs_mcp.backends.backend.as_backend`).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import threading
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypeVar, cast

from ipfs_mcp.backends.backend import (
    Backend,
    PartialBackend,
    ProgressFn,
    Replication,
    is_complete_backend,
)
from ipfs_mcp.backends.core.car import CarImportReport
from ipfs_mcp.backends.core.exporter import Entry, Exporter
from ipfs_mcp.backends.core.importer import ImportOptions, ImportResult
from ipfs_mcp.backends.core.rooted import OutputTarget
from ipfs_mcp.backends.errors import (
    AllBackendsFailed,
    BackendUnavailable,
    InvalidInput,
    IpfsMcpError,
    OperationCancelled,
)
from ipfs_mcp.backends.repo.pins import Pin
from ipfs_mcp.backends.retrieval.sources import RetrievalSources
from ipfs_mcp.backends.settings import BackendSettings

if TYPE_CHECKING:
    from ipfs_mcp.backends.backend import CacheCounters
    from ipfs_mcp.backends.network import Network
    from ipfs_mcp.backends.repo.repository import Repo

PREFERENCE = ("ipfs_kit", "hf_cache", "kubo")
log = logging.getLogger(__name__)
_T = TypeVar("_T")


@dataclass(frozen=True)
class RouterDeps:
    """What backends are built from: settings and, when a node runs, the retrieval
    sources that a local miss may ask (the embedded backend's ``BlockFetcher``)."""

    settings: BackendSettings = field(default_factory=BackendSettings.from_env)
    sources: RetrievalSources | None = None
    # The embedded repo, when the caller already opened it (the server shares it with the
    # retrieval sources that store into it); otherwise the factory opens it.
    repo: Repo | None = None


BackendFactory = Callable[[RouterDeps], Backend]
# What a registration may hand in: ours take the deps; the replaced router's guide registers
# ``lambda: CustomBackend()``, and either may build an object with only some methods.
AnyFactory = Callable[[RouterDeps], object] | Callable[[], object]
# A backend by instance (whole, or with only some methods) or by name; None: select.
BackendChoice = Backend | object | str | None


@dataclass(frozen=True)
class Selection:
    backend: str
    reason: str
    skipped: dict[str, str]


@dataclass(frozen=True)
class ReadReport:
    """Which backend answered a read, and why the ones asked before it did not."""

    operation: str
    backend: str
    failed: dict[str, str]
    source: str = "local"  # or the retrieval source that fetched what was missing


@dataclass(frozen=True)
class BackendHealth:
    name: str
    ok: bool
    detail: str


# -- built-in factories ----------------------------------------------------------------------
def _hf_cache_factory(deps: RouterDeps) -> Backend:
    from ipfs_mcp.backends.hf_cache import HFCacheBackend
    from ipfs_mcp.backends.repo.repository import Repo

    if not deps.settings.enable_hf_cache:
        raise BackendUnavailable("disabled by ENABLE_HF_CACHE=0")
    repo = deps.repo or Repo.from_settings(deps.settings)
    return HFCacheBackend(repo, hub_cache=deps.settings.hf_hub_cache, fetcher=deps.sources)


def _kubo_factory(deps: RouterDeps) -> Backend:
    from ipfs_mcp.backends.remote.kubo.factory import make_kubo_backend

    return make_kubo_backend(deps.settings)


def _ipfs_kit_factory(deps: RouterDeps) -> Backend:
    from ipfs_mcp.backends.remote.ipfs_kit import IpfsKitBackend

    if not deps.settings.enable_ipfs_kit:
        raise BackendUnavailable("disabled by ENABLE_IPFS_KIT=0 or IPFS_KIT_DISABLE=1")
    return IpfsKitBackend.connect()


def _cluster_factory(deps: RouterDeps) -> Backend:
    from ipfs_mcp.backends.remote.cluster import make_cluster_backend

    return make_cluster_backend(deps.settings)


# Selection tries PREFERENCE in order; "cluster" is chosen only by name (IPFS_BACKEND=cluster),
# since a cluster's REST API answering on the default port is no sign the user wants it.
BUILTIN: dict[str, BackendFactory] = {
    "ipfs_kit": _ipfs_kit_factory,
    "hf_cache": _hf_cache_factory,
    "kubo": _kubo_factory,
    "cluster": _cluster_factory,
}


def as_factory(factory: AnyFactory, name: str = "") -> Callable[[RouterDeps], object]:
    """``factory`` as one that takes :class:`RouterDeps`: one that can take an argument is
    handed the deps; one that takes none (``lambda: CustomBackend()``, a class) is called
    with none. Decided from its signature, never by calling it and catching TypeError,
    which would hide a TypeError raised inside the factory.

    Raises:
        InvalidInput: it is not callable, or takes neither no argument nor one.
    """
    if not callable(factory):
        raise InvalidInput(f"backend factory {name or factory!r} is not callable")
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # no signature to read (some builtins): ours take deps
        return cast(Callable[[RouterDeps], object], factory)
    if _binds(signature, None):
        return cast(Callable[[RouterDeps], object], factory)
    if not _binds(signature):
        raise InvalidInput(f"backend factory {name or factory!r} must take no argument or "
                           f"one (RouterDeps); its signature is {signature}")
    build = cast(Callable[[], object], factory)

    def without_deps(deps: RouterDeps) -> object:
        return build()

    return without_deps


def _binds(signature: inspect.Signature, *args: object) -> bool:
    try:
        signature.bind(*args)
    except TypeError:  # raised by binding alone: nothing was called
        return False
    return True


class BackendRegistry:
    """Backend factories by name, each backend built once per registry (when caching is on).

    Thread-safe: the dictionaries are guarded by one short lock; building (which probes a
    daemon, maybe for seconds) holds only that name's lock.
    """

    def __init__(self, deps: RouterDeps, custom: dict[str, AnyFactory] | None = None
                 ) -> None:
        self.deps = deps
        self.custom: dict[str, Callable[[RouterDeps], object]] = {
            name: as_factory(factory, name) for name, factory in (custom or {}).items()}
        self._built: dict[str, Backend] = {}
        self._lock = threading.Lock()
        self._name_locks: dict[str, threading.Lock] = {}
        # Which backend answered each thread's last read, shared by every Router over this
        # registry (the seed functions' ``backend=`` builds one per call).
        self.reads = threading.local()

    def register(self, name: str, factory: AnyFactory) -> None:
        """Raises:
            InvalidInput: ``factory`` takes neither no argument nor one.
        """
        adapted = as_factory(factory, name)
        with self._lock:
            self.custom[name] = adapted
            old = self._built.pop(name, None)
        if old is not None:
            old.close()

    def known(self) -> list[str]:
        with self._lock:
            return list(BUILTIN) + [n for n in self.custom if n not in BUILTIN]

    def build(self, name: str) -> Backend:
        """The backend called ``name``, built (and probed) now or reused.

        Raises:
            InvalidInput: no backend has that name.
            BackendUnavailable: it does not work here (the message says why).
        """
        with self._lock:
            factory: Callable[[RouterDeps], object] | None = (
                self.custom.get(name) or BUILTIN.get(name))
            if factory is None:
                known = list(BUILTIN) + [n for n in self.custom if n not in BUILTIN]
                raise InvalidInput(f"unknown backend {name!r}; known: {', '.join(known)}")
            cached = self._built.get(name) if self.deps.settings.router_cache else None
            name_lock = self._name_locks.setdefault(name, threading.Lock())
        if cached is not None:
            return cached
        with name_lock:
            with self._lock:
                cached = self._built.get(name) if self.deps.settings.router_cache else None
            if cached is not None:
                return cached
            try:
                built = factory(self.deps)
            except BackendUnavailable:
                raise
            except ImportError as exc:
                raise BackendUnavailable(f"{name}: cannot import {exc.name or exc}") from exc
            backend = self.adopt(built, name)
            if self.deps.settings.router_cache:
                with self._lock:
                    self._built[name] = backend
            return backend

    def adopt(self, obj: object, name: str | None = None) -> Backend:
        """``obj`` as a backend: itself when it is a whole one, else completed to the protocol
        (:class:`PartialBackend`) under ``name``, or the name it was built under here, or its
        own ``name``, or its class's name."""
        if isinstance(obj, PartialBackend) or is_complete_backend(obj):
            return cast(Backend, obj)
        return PartialBackend(obj, name or self._name_of(obj))

    def _name_of(self, obj: object) -> str:
        with self._lock:
            for name, built in self._built.items():
                if getattr(built, "wrapped", None) is obj:
                    return name
        own = getattr(obj, "name", None)
        return own if isinstance(own, str) and own else type(obj).__name__

    def built(self) -> list[Backend]:
        with self._lock:
            return list(self._built.values())

    def close(self) -> None:
        """Close every backend built here (httpx pools, child processes)."""
        with self._lock:
            backends, self._built = list(self._built.values()), {}
        for backend in backends:
            try:
                backend.close()
            except IpfsMcpError as exc:
                log.warning("closing backend %s: %s", backend.name, exc)


class Router:
    """The backend the rest of ipfs-mcp holds (see the module docstring).

    Args:
        registry: where backends come from (and what they are built with).
        choice: a backend name or instance to use instead of selecting; None selects from
            ``IPFS_BACKEND`` or the preference order.
    """

    def __init__(self, registry: BackendRegistry, choice: BackendChoice = None
                 ) -> None:
        self.registry = registry
        self._choice = choice
        self._primary: Backend | None = None
        self._selection: Selection | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: BackendSettings | None = None, *,
                      sources: RetrievalSources | None = None, repo: Repo | None = None,
                      custom: dict[str, AnyFactory] | None = None,
                      choice: BackendChoice = None) -> Router:
        deps = RouterDeps(settings=settings or BackendSettings.from_env(), sources=sources,
                          repo=repo)
        return cls(BackendRegistry(deps, custom), choice)

    @property
    def settings(self) -> BackendSettings:
        return self.registry.deps.settings

    @property
    def sources(self) -> RetrievalSources | None:
        """The retrieval sources a local miss of the embedded backend asks (None: none)."""
        return self.registry.deps.sources

    # -- selection -----------------------------------------------------------------------
    def choose(self, choice: BackendChoice) -> None:
        """Use ``choice`` from now on (None: select again from settings)."""
        with self._lock:
            self._choice = choice
            self._primary = None
            self._selection = None

    def _select(self) -> tuple[Backend, Selection]:
        choice = self._choice if self._choice is not None else self.settings.backend
        if isinstance(choice, str):
            try:
                chosen = self.registry.build(choice)
            except BackendUnavailable as exc:
                raise BackendUnavailable(f"backend {choice!r} was chosen but is unavailable: "
                                         f"{exc}") from exc
            return chosen, Selection(choice, "chosen explicitly", {})
        if choice is not None:
            adopted = self.registry.adopt(choice)
            return adopted, Selection(adopted.name, "set as default", {})
        skipped: dict[str, str] = {}
        errors: dict[str, BaseException] = {}
        for name in PREFERENCE:
            try:
                chosen = self.registry.build(name)
            except BackendUnavailable as exc:
                skipped[name] = str(exc)
                errors[name] = exc
                continue
            for later in PREFERENCE[PREFERENCE.index(name) + 1:]:
                skipped[later] = f"not needed: {name} comes first and works"
            return chosen, Selection(name, "first working backend in preference order",
                                     skipped)
        raise AllBackendsFailed("selecting a backend", errors)

    @property
    def primary(self) -> Backend:
        """The selected backend (selected now if need be).

        Raises:
            BackendUnavailable: an explicitly chosen backend does not work (with why).
            AllBackendsFailed: no backend works; the error names each one's failure.
        """
        primary = self._primary
        if primary is not None:
            return primary
        chosen, selection = self._select()  # probes run outside the lock
        with self._lock:
            if self._primary is None or not self.settings.router_cache:
                self._primary, self._selection = chosen, selection
            return self._primary

    def selection(self) -> Selection:
        """Which backend is in use and why the others were skipped (selecting if needed)."""
        self.primary  # noqa: B018 - selects
        assert self._selection is not None
        return self._selection

    def backend_for(self, backend: BackendChoice) -> Backend:
        """``backend`` by name or instance, or the primary when None."""
        if backend is None:
            return self.primary
        if isinstance(backend, str):
            return self.registry.build(backend)
        return self.registry.adopt(backend)

    def fallbacks(self) -> Iterator[tuple[str, Backend]]:
        """The other working backends by registered name, in preference order, built as
        they are asked for."""
        first = self.primary
        chosen = self.selection().backend
        for name in self.registry.known():
            if name == chosen:
                continue
            try:
                candidate = self.registry.build(name)
            except (BackendUnavailable, InvalidInput):
                continue  # not working here: not a candidate (selection() says why)
            if candidate is not first:
                yield name, candidate

    def backend_health(self) -> list[BackendHealth]:
        """Every known backend, probed now: works, or why not."""
        out = []
        for name in self.registry.known():
            try:
                backend = self.registry.build(name)
                out.append(BackendHealth(name, True, backend.health()))
            except (BackendUnavailable, InvalidInput) as exc:
                out.append(BackendHealth(name, False, str(exc)))
        return out

    # -- the optional powers are the primary's -------------------------------------------
    @property
    def name(self) -> str:
        return self.primary.name

    @property
    def repo(self) -> Repo | None:
        return self.primary.repo

    @property
    def counters(self) -> CacheCounters | None:
        return self.primary.counters

    @property
    def network(self) -> Network | None:
        return self.primary.network

    @property
    def replication(self) -> Replication | None:
        return self.primary.replication

    # -- reads with fallback -------------------------------------------------------------
    def last_read(self) -> ReadReport | None:
        """The report of this thread's last read through this router."""
        report: ReadReport | None = getattr(self.registry.reads, "report", None)
        return report

    def _forget_fetches(self) -> None:
        if self.sources is not None:
            self.sources.forget()

    def _answered(self, op: str, backend: str,
                  failed: dict[str, BaseException] | None = None) -> None:
        """Record this thread's read report: ``backend`` answered, after ``failed``."""
        fetched = self.sources.answered_by() if self.sources is not None else None
        report = ReadReport(op, backend, {k: str(v) for k, v in (failed or {}).items()},
                            fetched or "local")
        self.registry.reads.report = report
        recorded: list[ReadReport] | None = getattr(self.registry.reads, "recorded", None)
        if recorded is not None:
            recorded.append(report)

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[ReadReport]]:
        """The reports of every read this thread makes through this router inside the
        block (a tool's stat, then its read), in order."""
        previous = getattr(self.registry.reads, "recorded", None)
        recorded: list[ReadReport] = []
        self.registry.reads.recorded = recorded
        try:
            yield recorded
        finally:
            self.registry.reads.recorded = previous

    def read(self, op: str, call: Callable[[Backend], _T]) -> _T:
        """Run a read on the primary, then on the next working backends if it fails.

        Raises:
            the primary's error when nothing else was tried; AllBackendsFailed naming
            every backend's failure otherwise.
        """
        first = self.primary
        self._forget_fetches()
        try:
            result = call(first)
        except (InvalidInput, OperationCancelled):
            raise
        except IpfsMcpError as exc:
            if not self.settings.read_fallback:
                raise
            failure: IpfsMcpError = exc
        else:
            self._answered(op, self.selection().backend)
            return result
        errors: dict[str, BaseException] = {self.selection().backend: failure}
        for name, candidate in self.fallbacks():
            try:
                result = call(candidate)
            except (InvalidInput, OperationCancelled):
                raise
            except IpfsMcpError as exc:
                errors[name] = exc
                continue
            self._answered(op, name, errors)
            log.info("%s answered by %s after %s", op, name,
                     "; ".join(f"{k}: {v}" for k, v in errors.items()))
            return result
        if len(errors) == 1:
            raise failure
        raise AllBackendsFailed(op, errors)

    def write(self, op: str, call: Callable[[Backend], _T]) -> _T:
        chosen = self.primary
        try:
            return call(chosen)
        except BackendUnavailable as exc:
            raise BackendUnavailable(f"{op} failed on {chosen.name} and was not tried on any "
                                     f"other backend (writes never switch): {exc}") from exc

    # -- the Backend protocol --------------------------------------------------------------
    def add_bytes(self, data: bytes, *, pin: bool = True, name: str = "",
                  options: ImportOptions | None = None) -> str:
        return self.write("add_bytes", lambda b: b.add_bytes(data, pin=pin, name=name,
                                                             options=options))

    def add_stream(self, stream: BinaryIO, *, pin: bool = True, name: str = "",
                   options: ImportOptions | None = None,
                   progress: ProgressFn | None = None) -> str:
        return self.write("add_stream", lambda b: b.add_stream(
            stream, pin=pin, name=name, options=options, progress=progress))

    def add_path(self, path: str | Path, *, recursive: bool = True, pin: bool = True,
                 name: str = "", options: ImportOptions | None = None,
                 progress: ProgressFn | None = None) -> ImportResult:
        return self.write("add_path", lambda b: b.add_path(
            path, recursive=recursive, pin=pin, name=name, options=options, progress=progress))

    def stat(self, cid: str) -> Entry:
        return self.read("stat", lambda b: b.stat(cid))

    def ls(self, cid: str) -> list[Entry]:
        return self.read("ls", lambda b: b.ls(cid))

    def cat(self, cid: str, *, offset: int = 0, length: int | None = None) -> bytes:
        return self.read("cat", lambda b: b.cat(cid, offset=offset, length=length))

    def cat_stream(self, cid: str, *, offset: int = 0, length: int | None = None
                   ) -> Iterator[bytes]:
        """Streamed bytes; fallback applies until the first piece has arrived (after that
        a failure is the caller's to see: part of the bytes are already out)."""
        def start(b: Backend) -> tuple[bytes | None, Iterator[bytes]]:
            pieces = iter(b.cat_stream(cid, offset=offset, length=length))
            return next(pieces, None), pieces

        head, rest = self.read("cat", start)
        if head is not None:
            yield head
            yield from rest

    def get_to_path(self, cid: str, *, output_path: str | Path | OutputTarget,
                    overwrite: bool = False,
                    max_bytes: int | None = None, progress: ProgressFn | None = None
                    ) -> Entry:
        return self.read("get_to_path", lambda b: b.get_to_path(
            cid, output_path=output_path, overwrite=overwrite, max_bytes=max_bytes,
            progress=progress))

    def exporter(self, *, whole_dag: bool = False) -> Exporter:
        """A verified UnixFS reader whose block loads fall back like every other read."""
        return Exporter(lambda c: self.read(
            "block_get", lambda b: b.exporter(whole_dag=whole_dag).load(c)))

    def pin(self, cid: str, *, recursive: bool = True, name: str = "",
            progress: ProgressFn | None = None) -> Pin:
        return self.write("pin", lambda b: b.pin(cid, recursive=recursive, name=name,
                                                 progress=progress))

    def unpin(self, cid: str) -> list[str]:
        return self.write("unpin", lambda b: b.unpin(cid))

    def pins(self) -> list[Pin]:
        return self.primary.pins()

    def block_put(self, data: bytes, *, codec: str = "raw") -> str:
        return self.write("block_put", lambda b: b.block_put(data, codec=codec))

    def block_get(self, cid: str) -> bytes:
        return self.read("block_get", lambda b: b.block_get(cid))

    def block_get_from(self, cid: str, *, sources: Collection[str] = ()) -> bytes:
        """One block from the selected backend alone (never another backend); a local miss
        asks only the retrieval sources called ``sources`` (none: what the backend holds is
        all there is). A backend that runs its own node (Kubo) reads as that node does.

        Raises:
            BlockNotFound: not there, and no source named had it.
            the source's own error when it failed otherwise (see :class:`RetrievalSources`).
        """
        primary = self.primary
        self._forget_fetches()
        retrieval = self.sources
        with (retrieval.asking_only(sources) if retrieval is not None
              else contextlib.nullcontext()):
            data = primary.block_get(cid)
        self._answered("block_get", self.selection().backend)
        return data

    def dag_export(self, cid: str, out: Path | BinaryIO | None = None) -> bytes | None:
        return self.read("dag_export", lambda b: b.dag_export(cid, out))

    def dag_import(self, stream: BinaryIO, *, pin_roots: bool = True) -> CarImportReport:
        return self.write("dag_import", lambda b: b.dag_import(stream, pin_roots=pin_roots))

    def health(self) -> str:
        return self.primary.health()

    def close(self) -> None:
        self.registry.close()


# -- the seed API: one default Router ---------------------------------------------------------
class _Default:
    """The one default Router, built from the environment on first use."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.router: Router | None = None
        self.custom: dict[str, AnyFactory] = {}
        self.choice: BackendChoice = None

    def get(self) -> Router:
        with self.lock:
            settings = BackendSettings.from_env()
            current = self.router
            # Settings are read once per Router; a changed environment (tests, or a user
            # who changed it) gets a fresh one, as a new process would.
            if current is None or current.settings != settings \
                    or not settings.router_cache:
                self.router = Router.from_settings(settings, custom=self.custom,
                                                   choice=self.choice)
                if current is not None:
                    current.close()
            return self.router


_default = _Default()


def default_router() -> Router:
    """The Router the seed functions use (built from the environment)."""
    return _default.get()


def register_ipfs_backend(name: str, factory: AnyFactory) -> None:
    """Make a backend selectable by name (``IPFS_BACKEND`` or ``backend=``). ``factory``
    takes the :class:`RouterDeps` or nothing, and may build an object with only the methods
    it is called with (see :func:`~ipfs_mcp.backends.backend.as_backend`).

    Raises:
        ValueError: the name is empty.
        InvalidInput: ``factory`` takes neither no argument nor one.
    """
    if not name or not name.strip():
        raise ValueError("backend name must not be empty")
    as_factory(factory, name)  # refused now, not at its first use
    with _default.lock:
        _default.custom[name.strip()] = factory
        current = _default.router
    if current is not None:
        current.registry.register(name.strip(), factory)


def set_default_ipfs_backend(b: BackendChoice) -> None:
    """Use ``b`` (an instance, whole or with only some methods, or a name) when no
    ``backend=`` is given; None resets."""
    with _default.lock:
        _default.choice = b
        current = _default.router
    if current is not None:
        current.choose(b)


def custom_backends() -> dict[str, AnyFactory]:
    """The registered factories, for a Router built elsewhere (the server's)."""
    with _default.lock:
        return dict(_default.custom)


def known_backends() -> list[str]:
    return default_router().registry.known()


def get_backend(*, deps: RouterDeps | None = None,
                backend: BackendChoice = None) -> Backend:
    """The backend to use, chosen as the module docstring says.

    Raises:
        BackendUnavailable: an explicitly chosen backend does not work (with why).
        AllBackendsFailed: no backend works; the error names each one's failure.
    """
    if deps is not None:
        return Router(BackendRegistry(deps, custom_backends()), backend or _default.choice
                      ).primary
    return default_router().backend_for(backend)


def selection(deps: RouterDeps | None = None) -> Selection:
    """Which backend is in use and why the others were skipped (selecting if needed)."""
    if deps is not None:
        return Router(BackendRegistry(deps, custom_backends()), _default.choice).selection()
    return default_router().selection()


def backend_health(deps: RouterDeps | None = None) -> list[BackendHealth]:
    """Every known backend, probed now: works, or why not."""
    if deps is not None:
        return Router(BackendRegistry(deps, custom_backends())).backend_health()
    return default_router().backend_health()


def last_read() -> ReadReport | None:
    """The report of this thread's last read through the seed functions."""
    return default_router().last_read()


def reset() -> None:
    """Back to a fresh process: close and forget the default Router, the default choice
    and custom registrations (tests, or after changing settings)."""
    with _default.lock:
        _default.custom.clear()
        _default.choice = None
    clear_caches()


def clear_caches() -> None:
    """Close and forget the default Router's backends, keeping registrations and the default
    choice: the next call selects again from the environment."""
    with _default.lock:
        current, _default.router = _default.router, None
    if current is not None:
        current.close()


def _target(backend: BackendChoice, deps: RouterDeps | None = None) -> Router:
    """The Router a seed call runs on: the default one, or one over the same registry with
    another choice (``backend=``), or one built from ``deps``."""
    if deps is not None:
        return Router(BackendRegistry(deps, custom_backends()), backend or _default.choice)
    router = default_router()
    return router if backend is None else Router(router.registry, backend)


def add_bytes(data: bytes, *, pin: bool = True, backend: BackendChoice = None) -> str:
    return _target(backend).add_bytes(data, pin=pin)


def cat(cid: str, *, backend: BackendChoice = None,
        deps: RouterDeps | None = None) -> bytes:
    return _target(backend, deps).cat(cid)


def pin(cid: str, *, backend: BackendChoice = None) -> None:
    _target(backend).pin(cid)


def unpin(cid: str, *, backend: BackendChoice = None) -> None:
    _target(backend).unpin(cid)


def block_put(data: bytes, *, codec: str = "raw", backend: BackendChoice = None) -> str:
    return _target(backend).block_put(data, codec=codec)


def block_get(cid: str, *, backend: BackendChoice = None,
              deps: RouterDeps | None = None) -> bytes:
    return _target(backend, deps).block_get(cid)


def add_path(path: str | Path, *, recursive: bool = True, pin: bool = True,
             backend: BackendChoice = None) -> str:
    from ipfs_mcp.backends.core.cids import cid_str

    return cid_str(_target(backend).add_path(path, recursive=recursive, pin=pin).root)


def get_to_path(cid: str, *, output_path: str | Path,
                backend: BackendChoice = None, deps: RouterDeps | None = None) -> Entry:
    return _target(backend, deps).get_to_path(cid, output_path=output_path)


def ls(cid: str, *, backend: BackendChoice = None,
       deps: RouterDeps | None = None) -> list[Entry]:
    return _target(backend, deps).ls(cid)


def dag_export(cid: str, *, backend: BackendChoice = None) -> bytes:
    data = _target(backend).dag_export(cid)
    assert data is not None
    return data


__all__ = [
    "PREFERENCE", "BUILTIN", "AnyFactory", "BackendChoice", "BackendFactory", "BackendHealth",
    "BackendRegistry", "ReadReport", "Router", "RouterDeps", "Selection", "add_bytes",
    "add_path", "as_factory", "backend_health", "block_get", "block_put", "cat", "clear_caches",
    "custom_backends", "dag_export", "default_router", "get_backend", "get_to_path",
    "known_backends", "last_read", "ls", "pin", "reset", "selection",
    "set_default_ipfs_backend", "unpin", "register_ipfs_backend",
]
