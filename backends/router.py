"""The backend router: the seed ``ipfs_backend_router`` API, made real.

Module functions (``add_bytes``, ``cat``, ``pin``, ...) run on the selected backend; each
also takes ``backend=`` (a name or a backend instance). Selection:

1. an explicit ``backend=`` argument, else the one set with ``set_default_ipfs_backend``,
   else ``IPFS_BACKEND``: that backend or a clear error (never a silent switch);
2. otherwise the first that really works, in the order ipfs_kit, hf_cache, kubo.

A backend is "working" only if its factory built it and its probe passed; nothing hands
out made-up CIDs. :func:`selection` says which backend is in use and why each other one
was skipped; :func:`backend_health` probes every one of them.

Reads (``cat``, ``get_to_path``, ``block_get``, ``ls``) that fail on the selected backend
(not found, unavailable, corrupt) fall back to the next working backend in preference
order; the CID proves the answer right wherever it comes from, and the hf_cache backend
goes on to the P2P node when it has a fetcher. :func:`last_read` says which backend
answered. ``IPFS_READ_FALLBACK=0`` turns this off. Writes never switch: if the chosen
backend fails, the write fails and says so.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from .backend import Backend
from .errors import (
    AllBackendsFailed,
    BackendUnavailable,
    InvalidInput,
    IpfsMcpError,
    OperationCancelled,
)
from .exporter import Entry
from .fetcher import BlockFetcher
from .settings import BackendSettings

PREFERENCE = ("ipfs_kit", "hf_cache", "kubo")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RouterDeps:
    """What backends are built from: settings and, when a node runs, its fetcher."""

    settings: BackendSettings = field(default_factory=BackendSettings.from_env)
    fetcher: BlockFetcher | None = None


BackendFactory = Callable[[RouterDeps], Backend]
_T = TypeVar("_T")


@dataclass(frozen=True)
class Selection:
    backend: str
    reason: str
    skipped: dict[str, str]


def _hf_cache_factory(deps: RouterDeps) -> Backend:
    from .hf_cache import HFCacheBackend
    from .repo import Repo

    if not deps.settings.enable_hf_cache:
        raise BackendUnavailable("disabled by ENABLE_HF_CACHE=0")
    repo = Repo(deps.settings.repo_path)
    return HFCacheBackend(repo, hub_cache=deps.settings.hf_hub_cache, fetcher=deps.fetcher)


def _kubo_factory(deps: RouterDeps) -> Backend:
    from .kubo import make_kubo_backend

    return make_kubo_backend(deps.settings)


def _ipfs_kit_factory(deps: RouterDeps) -> Backend:
    from .ipfs_kit import IpfsKitBackend

    if not deps.settings.enable_ipfs_kit:
        raise BackendUnavailable("disabled by ENABLE_IPFS_KIT=0 or IPFS_KIT_DISABLE=1")
    return IpfsKitBackend.connect()


_BUILTIN: dict[str, BackendFactory] = {
    "ipfs_kit": _ipfs_kit_factory,
    "hf_cache": _hf_cache_factory,
    "kubo": _kubo_factory,
}
_registry: dict[str, BackendFactory] = {}
_default: Backend | str | None = None
_cache: dict[tuple[str, int, BackendSettings], Backend] = {}
_last: Selection | None = None
_state_lock = threading.RLock()


def register_ipfs_backend(name: str, factory: BackendFactory) -> None:
    """Make a backend selectable by name (``IPFS_BACKEND`` or ``backend=``).

    Raises:
        ValueError: the name is empty.
    """
    if not name or not name.strip():
        raise ValueError("backend name must not be empty")
    with _state_lock:
        _registry[name.strip()] = factory
        for key in [k for k in _cache if k[0] == name.strip()]:
            del _cache[key]


def set_default_ipfs_backend(b: Backend | str | None) -> None:
    """Use ``b`` (an instance or a name) when no ``backend=`` is given; None resets."""
    global _default
    with _state_lock:
        _default = b


def known_backends() -> list[str]:
    return list(_BUILTIN) + [name for name in _registry if name not in _BUILTIN]


def _build(name: str, deps: RouterDeps) -> Backend:
    factory = _registry.get(name) or _BUILTIN.get(name)
    if factory is None:
        raise InvalidInput(f"unknown backend {name!r}; known: {', '.join(known_backends())}")
    key = (name, id(deps.fetcher), deps.settings)
    if deps.settings.router_cache and key in _cache:
        return _cache[key]
    try:
        backend = factory(deps)
    except BackendUnavailable:
        raise
    except ImportError as exc:
        raise BackendUnavailable(f"{name}: cannot import {exc.name or exc}") from exc
    if deps.settings.router_cache:
        _cache[key] = backend
    return backend


def get_backend(*, deps: RouterDeps | None = None,
                backend: Backend | str | None = None) -> Backend:
    """The backend to use, chosen as the module docstring says.

    Raises:
        BackendUnavailable: an explicitly chosen backend does not work (with why).
        AllBackendsFailed: no backend works; the error names each one's failure.
    """
    global _last
    deps = deps or RouterDeps()
    with _state_lock:
        choice = backend if backend is not None else _default
        if choice is None:
            choice = deps.settings.backend
        if isinstance(choice, str):
            try:
                chosen = _build(choice, deps)
            except BackendUnavailable as exc:
                raise BackendUnavailable(f"backend {choice!r} was chosen but is unavailable: "
                                         f"{exc}") from exc
            _last = Selection(choice, "chosen explicitly", {})
            return chosen
        if choice is not None:
            _last = Selection(getattr(choice, "name", type(choice).__name__), "set as default",
                              {})
            return choice
        skipped: dict[str, str] = {}
        errors: dict[str, BaseException] = {}
        for name in PREFERENCE:
            try:
                chosen = _build(name, deps)
            except BackendUnavailable as exc:
                skipped[name] = str(exc)
                errors[name] = exc
                continue
            for later in PREFERENCE[PREFERENCE.index(name) + 1:]:
                skipped[later] = f"not needed: {name} comes first and works"
            _last = Selection(name, "first working backend in preference order", skipped)
            return chosen
        raise AllBackendsFailed("selecting a backend", errors)


def selection(deps: RouterDeps | None = None) -> Selection:
    """Which backend is in use and why the others were skipped (selecting if needed)."""
    get_backend(deps=deps)
    assert _last is not None
    return _last


@dataclass(frozen=True)
class ReadReport:
    """Which backend answered a read, and why the ones asked before it did not."""

    operation: str
    backend: str
    failed: dict[str, str]


@dataclass(frozen=True)
class BackendHealth:
    name: str
    ok: bool
    detail: str


_reads = threading.local()


def last_read() -> ReadReport | None:
    """The report of this thread's last read through the module functions."""
    return getattr(_reads, "report", None)


def _name_of(b: Backend) -> str:
    return getattr(b, "name", type(b).__name__)


def _read(op: str, call: Callable[[Backend], _T], backend: Backend | str | None,
          deps: RouterDeps | None) -> _T:
    """Run a read on the selected backend, then on the next working ones if it fails.

    Caller mistakes (invalid CIDs, a folder where a file was wanted) are not retried
    elsewhere: every backend would refuse them alike.
    """
    deps = deps or RouterDeps()
    first = get_backend(deps=deps, backend=backend)
    name = _name_of(first)
    try:
        result = call(first)
    except (InvalidInput, OperationCancelled):
        raise
    except IpfsMcpError as exc:
        if not deps.settings.read_fallback:
            raise
        failure: BaseException = exc
    else:
        _reads.report = ReadReport(op, name, {})
        return result
    errors: dict[str, BaseException] = {name: failure}
    for other in [n for n in known_backends() if n != name]:
        try:
            with _state_lock:
                candidate = _build(other, deps)
        except (BackendUnavailable, InvalidInput):
            continue  # not working here: not a candidate (selection() says why)
        try:
            result = call(candidate)
        except (InvalidInput, OperationCancelled):
            raise
        except IpfsMcpError as exc:
            errors[other] = exc
            continue
        _reads.report = ReadReport(op, other, {k: str(v) for k, v in errors.items()})
        log.info("%s answered by %s after %s", op, other,
                 "; ".join(f"{k}: {v}" for k, v in errors.items()))
        return result
    if len(errors) == 1:
        raise failure
    raise AllBackendsFailed(op, errors)


def _write(op: str, call: Callable[[Backend], _T], backend: Backend | str | None) -> _T:
    chosen = get_backend(backend=backend)
    try:
        return call(chosen)
    except BackendUnavailable as exc:
        raise BackendUnavailable(f"{op} failed on {_name_of(chosen)} and was not tried on any "
                                 f"other backend (writes never switch): {exc}") from exc


def backend_health(deps: RouterDeps | None = None) -> list[BackendHealth]:
    """Every known backend, probed now: works, or why not. Unlike :func:`selection`, this
    also asks backends that come after the selected one (for the health resource)."""
    deps = deps or RouterDeps()
    out = []
    for name in known_backends():
        try:
            with _state_lock:
                backend = _build(name, deps)
            check = getattr(backend, "health", None)
            detail = check() if callable(check) else "built and probed"
            out.append(BackendHealth(name, True, str(detail)))
        except (BackendUnavailable, InvalidInput) as exc:
            out.append(BackendHealth(name, False, str(exc)))
    return out


def reset() -> None:
    """Back to a fresh process: forget cached instances, the default and custom
    registrations (tests, or after changing settings)."""
    global _default, _last
    with _state_lock:
        _cache.clear()
        _registry.clear()
        _default = None
        _last = None


# -- the seed API --------------------------------------------------------------------------
def add_bytes(data: bytes, *, pin: bool = True, backend: Backend | str | None = None) -> str:
    return _write("add_bytes", lambda b: b.add_bytes(data, pin=pin), backend)


def cat(cid: str, *, backend: Backend | str | None = None,
        deps: RouterDeps | None = None) -> bytes:
    return _read("cat", lambda b: b.cat(cid), backend, deps)


def pin(cid: str, *, backend: Backend | str | None = None) -> None:
    _write("pin", lambda b: b.pin(cid), backend)


def unpin(cid: str, *, backend: Backend | str | None = None) -> None:
    _write("unpin", lambda b: b.unpin(cid), backend)


def block_put(data: bytes, *, codec: str = "raw", backend: Backend | str | None = None) -> str:
    return _write("block_put", lambda b: b.block_put(data, codec=codec), backend)


def block_get(cid: str, *, backend: Backend | str | None = None,
              deps: RouterDeps | None = None) -> bytes:
    return _read("block_get", lambda b: b.block_get(cid), backend, deps)


def add_path(path: str | Path, *, recursive: bool = True, pin: bool = True,
             backend: Backend | str | None = None) -> str:
    from .cids import cid_str

    result = _write("add_path", lambda b: b.add_path(path, recursive=recursive, pin=pin),
                    backend)
    return cid_str(result.root)


def get_to_path(cid: str, *, output_path: str | Path,
                backend: Backend | str | None = None, deps: RouterDeps | None = None) -> Entry:
    return _read("get_to_path", lambda b: b.get_to_path(cid, output_path=output_path), backend,
                 deps)


def ls(cid: str, *, backend: Backend | str | None = None,
       deps: RouterDeps | None = None) -> list[Entry]:
    return _read("ls", lambda b: b.ls(cid), backend, deps)


def dag_export(cid: str, *, backend: Backend | str | None = None) -> bytes:
    data = get_backend(backend=backend).dag_export(cid)
    assert data is not None
    return data
