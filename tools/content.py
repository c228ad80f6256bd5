"""Content tools: store, add, fetch, list, pin, unpin and collect garbage.

Plain async functions over a :class:`~ipfs_mcp.backends.backend.Backend` (the server passes
its Router, so reads fall back and say which backend answered). Blocking work runs in a
worker thread through :func:`run_blocking`; every error is one of the project's
(``InvalidCID``, ``NotFound``, ``UnsafePath``, ``TooLarge``, ``Unsupported``...), raised,
never returned. The server turns them into tool error results. Optional powers (the
embedded repo's GC) are the backend's typed attributes, tested with ``is None``.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import Protocol, TypeVar

from ipfs_mcp.backends.backend import Backend, Replication
from ipfs_mcp.backends.core.cids import cid_str, parse_cid, split_path
from ipfs_mcp.backends.core.exporter import Entry
from ipfs_mcp.backends.core.importer import ImportOptions, ImportResult
from ipfs_mcp.backends.core.rooted import OutputTarget
from ipfs_mcp.backends.errors import (
    InvalidInput,
    NotFound,
    TooLarge,
    Unsupported,
)
from ipfs_mcp.backends.hub import layout as hf_layout
from ipfs_mcp.backends.hub import models as hub
from ipfs_mcp.backends.hub import receive as hf_receive
from ipfs_mcp.backends.router import ReadReport

from .import_options import ImportArgs
from .listings import added_page, files_page, folder_page, pins_page
from .models import (
    AddResult,
    FetchResult,
    FileEntry,
    GCResult,
    LsEntry,
    LsResult,
    PinInfo,
    PinList,
    PinResult,
    StoreResult,
    UnpinResult,
)
from .paging import DEFAULT_PAGE, Cursors
from .progress import Progress, run_blocking
from .roots import AllowedRoots

_PATH_PREFIXES = ("/", "~", "./", "../", ".\\")


def _read(backend: Backend, entry: Entry, offset: int, length: int) -> bytes:
    # The CID resolved by the stat: no second parse or path walk.
    return backend.cat(cid_str(entry.cid), offset=offset, length=length)


def _check_cid(value: str) -> str:
    """Validate ``CID[/path]`` early, for a clear error before any I/O."""
    cid, path = split_path(value)
    return f"{cid_str(cid)}/{path}" if path else cid_str(cid)


def _with_nocopy(options: ImportOptions, nocopy: bool) -> ImportOptions:
    """``options`` with Kubo's ``--nocopy`` (which implies raw leaves)."""
    return replace(options, nocopy=True) if nocopy else options


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for folder, _, files in os.walk(path, followlinks=True):
        for name in files:
            try:
                total += os.stat(os.path.join(folder, name)).st_size
            except OSError:
                continue
    return total


def _looks_like_path(source: str) -> bool:
    return source.startswith(_PATH_PREFIXES) or source in (".", "..") or os.path.isabs(source)


# -- store_model / add_content ---------------------------------------------------------------
async def store_model(backend: Backend, source: str, *, roots: AllowedRoots,
                      hub_cache: Path, pin: bool = True, nocopy: bool | None = None,
                      import_args: ImportArgs | None = None, progress: Progress | None = None,
                      replication_min: int | None = None,
                      replication_max: int | None = None,
                      cursors: Cursors | None = None) -> StoreResult:
    """Add a cached HuggingFace model (``org/name[@revision]``) or a local file or folder,
    laid out as ``import_args`` say (Kubo's defaults when None).

    ``nocopy`` keeps the leaves as references into the files instead of copying them; by
    default it is on for sources in the HF cache (when the embedded repo takes the add)
    and off for other paths. Referenced files must resolve inside the allowed roots or the
    hub cache; a symlink that leads out is refused.

    The result lists the first page of the stored files, as :func:`ls` continues it with
    the result's ``cursor``: built from what the add reported, without reading a block
    back (read from the stored DAG only when a folder is HAMT-sharded).

    The result says ``announced=False``; announcing is the network's part
    (:func:`ipfs_mcp.tools.network.announce_quietly`), done by the caller.

    Raises:
        NotFound: neither a cached model nor an existing path.
        UnsafePath: a local path outside the allowed roots.
    """
    options = (import_args or ImportArgs()).to_options()
    source = source.strip()
    progress = progress or Progress()
    progress.message = f"storing {source}"
    chosen: list[bool] = []  # which it was, for the result

    def add_local(path: Path) -> ImportResult:
        in_hub = backend.repo is not None and path.is_relative_to(Path(hub_cache).resolve())
        by_reference = in_hub if nocopy is None else nocopy
        chosen.append(by_reference)
        if by_reference:
            progress.total = roots.check_reference_tree(path)
        else:
            progress.total = _tree_size(path)
        return backend.add_path(path, pin=pin, options=_with_nocopy(options, by_reference),
                                name=source, progress=progress)

    def work() -> ImportResult:
        if _looks_like_path(source):
            return add_local(roots.check_read(source))
        try:
            repo_id, revision = hf_layout.parse_source(source)
        except InvalidInput:
            return add_local(roots.check_read(source))
        try:
            snapshot = hf_layout.snapshot_path(hub_cache, repo_id, revision)
        except NotFound:
            local = roots.roots[0] / source if roots.roots else None
            if local is not None and local.exists():
                return add_local(roots.check_read(source))
            raise
        by_reference = hub.nocopy_default(backend, nocopy)
        chosen.append(by_reference)
        if by_reference:
            progress.total = roots.check_reference_tree(snapshot, hidden=True,
                                                        follow_symlinks=True)
        else:
            progress.total = _tree_size(snapshot)
        return hub.add_model(backend, hub_cache, repo_id, revision, pin=pin, options=options,
                             progress=progress, nocopy=by_reference)

    replicated = _replication(backend, replication_min, replication_max)
    if replicated is not None:
        # The factors go with the add itself (read by work()'s closures), so the cluster
        # places the blocks on that many peers only, never everywhere first.
        backend = replicated.with_replication(replication_min, replication_max)
    result = await run_blocking(work, progress)
    root = cid_str(result.root)
    cursors = cursors or Cursors()
    # The first page comes from what the add reported, reading no block: on a cluster,
    # reading the DAG back through one peer's Kubo would copy blocks onto a peer outside
    # the allocation. A sharded folder lists in hash order, which needs its blocks: only
    # then is the page read from the stored DAG.
    page = await run_blocking(lambda: added_page(
        result.entries, result.root, options=options, cursors=cursors, limit=DEFAULT_PAGE,
        total=len(result.entries)))
    if page is None:
        page = await run_blocking(lambda: files_page(
            backend.exporter(), result.root, cursors=cursors, limit=DEFAULT_PAGE,
            total=len(result.entries)))
    files = sum(1 for e in result.entries if e.kind == "file")
    return StoreResult(
        source=source, root_cid=root, total_size=result.size, file_count=files,
        files=[FileEntry(path=e.name, cid=cid_str(e.cid), size=e.size, kind=e.kind)
               for e in page.entries],
        truncated=page.cursor is not None, total=page.total, cursor=page.cursor,
        pinned=pin, announced=False, announce_note="not asked to announce",
        backend=backend.name, resource_uri=f"ipfs://{root}", nocopy=chosen[-1])


async def add_content(backend: Backend, *, roots: AllowedRoots, text: str | None = None,
                      data_base64: str | None = None, path: str | None = None,
                      name: str = "", pin: bool = True, max_inline: int,
                      nocopy: bool = False, import_args: ImportArgs | None = None,
                      progress: Progress | None = None, replication_min: int | None = None,
                      replication_max: int | None = None) -> AddResult:
    """Add inline text, inline base64 bytes, or a file/folder inside the allowed roots,
    laid out as ``import_args`` say (Kubo's defaults when None). On a cluster the
    replication factors go with the add.

    ``nocopy`` (a path only, as Kubo's ``--nocopy``) keeps the file's leaves as references
    into it instead of copying them; it implies raw leaves.

    Raises:
        InvalidInput: not exactly one of text, data_base64 and path; bad base64.
        TooLarge: inline content over ``max_inline`` bytes.
        UnsafePath: a path outside the allowed roots.
    """
    given = [v is not None for v in (text, data_base64, path)]
    if sum(given) != 1:
        raise InvalidInput("pass exactly one of text, data_base64 or path")
    if nocopy and path is None:
        raise InvalidInput("nocopy needs a path: inline content has no file to refer to")
    options = _with_nocopy((import_args or ImportArgs()).to_options(), nocopy)
    name_ = backend.name
    replicated = _replication(backend, replication_min, replication_max)
    if replicated is not None:
        backend = replicated.with_replication(replication_min, replication_max)
    if path is not None:
        progress = progress or Progress()
        progress.message = f"adding {path}"

        def add_path() -> ImportResult:
            real = roots.check_read(path)
            progress.total = (roots.check_reference_tree(real) if nocopy
                              else _tree_size(real))
            return backend.add_path(real, pin=pin, options=options, name=name or real.name,
                                    progress=progress)

        result = await run_blocking(add_path, progress)
        root = cid_str(result.root)
        root_entry = next((e for e in result.entries if e.path == ""), None)
        kind = root_entry.kind if root_entry else "file"
        return AddResult(cid=root, kind=kind, size=result.size, pinned=pin,
                         name=name or Path(path).name,
                         file_count=sum(1 for e in result.entries if e.kind == "file"),
                         backend=name_, resource_uri=f"ipfs://{root}", nocopy=nocopy)
    if text is not None:
        data = text.encode("utf-8")
    else:
        assert data_base64 is not None
        if len(data_base64) > (max_inline * 4) // 3 + 4:
            raise TooLarge(_inline_add_too_large(max_inline))
        try:
            data = base64.b64decode(data_base64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput(f"data_base64 is not valid base64: {exc}") from exc
    if len(data) > max_inline:
        raise TooLarge(_inline_add_too_large(max_inline, len(data)))

    def add_bytes() -> str:
        return backend.add_stream(io.BytesIO(data), pin=pin, name=name, options=options)

    cid = await run_blocking(add_bytes)
    return AddResult(cid=cid, kind="file", size=len(data), pinned=pin, name=name,
                     backend=name_, resource_uri=f"ipfs://{cid}")


def _inline_add_too_large(cap: int, size: int | None = None) -> str:
    what = f"{size} bytes" if size is not None else "the inline data"
    return (f"{what} is over the inline cap of {cap} bytes; write the content to a file "
            "inside an allowed root and pass path= instead")


# -- fetch_cid / ls --------------------------------------------------------------------------
def _decodecid_str(data: bytes) -> tuple[str, int] | None:
    """UTF-8 text and how many bytes it used, allowing a multi-byte character cut at the end
    of a page; None for binary content."""
    if b"\x00" in data:
        return None
    for cut in range(0, min(4, len(data) + 1)):
        try:
            return data[:len(data) - cut].decode("utf-8"), len(data) - cut
        except UnicodeDecodeError:
            continue
    return None


_T = TypeVar("_T")


class ReadReports(Protocol):
    """Which backend and retrieval source answered the reads a thread makes (the Router)."""

    def recording(self) -> AbstractContextManager[list[ReadReport]]: ...


def _recorded(reads: ReadReports | None, seen: list[ReadReport],
              work: Callable[[], _T]) -> Callable[[], _T]:
    """``work``, adding the reports of the reads it makes (in its worker thread) to ``seen``."""
    if reads is None:
        return work

    def run() -> _T:
        with reads.recording() as reports:
            try:
                return work()
            finally:
                seen.extend(reports)

    return run


def _answered(result: FetchResult, seen: list[ReadReport]) -> FetchResult:
    """``result``, saying which backend answered and which sources fetched what was missing."""
    result.answered_by = ", ".join(dict.fromkeys(r.backend for r in seen)) or None
    result.fetched_from = ", ".join(dict.fromkeys(
        r.source for r in seen if r.source != "local")) or None
    return result


async def fetch_cid(backend: Backend, cid: str, *, roots: AllowedRoots, hub_cache: Path,
                    output_path: str | None = None,
                    into_hf_cache: str | hf_layout.RevisionPlan | None = None,
                    hf_revision: str | None = None, offset: int = 0, length: int | None = None,
                    max_inline: int, progress: Progress | None = None,
                    overwrite: bool = False, replace: bool = False,
                    max_write: int | None = None, max_write_files: int | None = None,
                    reads: ReadReports | None = None, cursor: str | None = None,
                    cursors: Cursors | None = None) -> FetchResult:
    """Read, write to disk, or write into the HF cache the content under ``cid[/path]``;
    with ``reads`` (the Router), the result says which backend and source answered.

    ``into_hf_cache`` is ``org/name[@rev]`` (with ``hf_revision``, which must agree with
    ``@rev`` when both are given; default ``main``), or the plan the server made of them to
    ask the user (:func:`.layout.plan_revision`): the write then uses that plan.

    A folder is answered as a page of its entries, as :func:`ls` answers it; ``cursor``
    (from an earlier page, of ``ls`` too) continues it.

    Raises:
        InvalidCID: a malformed CID.
        NotFound: the CID or sub-path is not local and no peer had it.
        UnsafePath: ``output_path`` outside the writable roots or inside a protected folder
            (the hub cache, the IPFS repo), symlinks followed.
        TargetExists: ``output_path`` is an existing file or non-empty folder and not
            ``overwrite``; or ``into_hf_cache`` at ``hf_revision`` names other content and
            not ``replace``, or moved since it was planned.
        TooLarge: ``length`` over the inline cap.
        InvalidInput: both output_path and into_hf_cache, or negative offset/length; a
            revision named like a commit, or ``@rev`` and ``hf_revision`` that differ; a
            cursor that is not this folder's.
    """
    target = _check_cid(cid)
    cursors = cursors or Cursors()
    uri = f"ipfs://{target}"
    if output_path is not None and into_hf_cache is not None:
        raise InvalidInput("pass output_path or into_hf_cache, not both")
    if offset < 0 or (length is not None and length < 0):
        raise InvalidInput("offset and length must not be negative")
    if length is not None and length > max_inline:
        raise TooLarge(f"length={length} is over the inline cap of {max_inline} bytes; read "
                       f"pages of at most {max_inline} bytes with offset/length, or pass "
                       "output_path to write the content to disk")
    progress = progress or Progress()
    progress.message = f"fetching {target}"
    seen: list[ReadReport] = []  # the reports of the reads below

    if output_path is not None:
        def write() -> tuple[Entry, Path, Path | None]:
            dest = roots.check_write(output_path, overwrite=overwrite)
            replaced = roots.would_replace(dest) if overwrite else None
            # Held from the check on: the waits below (the network) cannot redirect it.
            with OutputTarget.at(dest, max_entries=max_write_files) as held:
                entry = backend.stat(target)
                # A folder declares its size too (its entries' root blocks, bounded).
                progress.total = (entry.size if entry.kind == "file"
                                  else backend.exporter().declared_size(entry.cid))
                return backend.get_to_path(target, output_path=held, overwrite=overwrite,
                                           max_bytes=max_write, progress=progress), dest, replaced

        entry, dest, replaced = await run_blocking(_recorded(reads, seen, write), progress)
        return _answered(FetchResult(
            cid=target, resolved_cid=cid_str(entry.cid), kind=entry.kind, size=entry.size,
            delivery="file", output_path=str(dest), replaced=str(replaced) if replaced else None,
            resource_uri=uri), seen)

    if into_hf_cache is not None:
        hub_target = into_hf_cache  # not None, also inside the closure

        def export() -> tuple[Entry, hf_layout.HFWriteResult]:
            # Planned once (unless the caller did, to ask the user), before any network wait.
            plan = hf_layout.as_plan(hub_cache, hub_target, hf_revision)
            entry = backend.stat(target)
            progress.check()
            # Raw-leaf files are written once, as they arrive; others are copied.
            return entry, hf_receive.export_model(backend, hub_cache, target, plan,
                                                  replace=replace, max_bytes=max_write,
                                                  progress=progress)

        entry, written = await run_blocking(_recorded(reads, seen, export), progress)
        return _answered(FetchResult(
            cid=target, resolved_cid=cid_str(entry.cid), kind=entry.kind, size=entry.size,
            delivery="hf_cache", hf_repo_id=written.repo_id, hf_revision=written.revision,
            hf_commit=written.commit, hf_snapshot=str(written.snapshot),
            files_written=len(written.files), replaced=written.replaced, resource_uri=uri,
            nocopy=bool(written.files) and not written.copied, copied=list(written.copied),
            resumed_leaves=written.resumed,
            hint=f"load it offline: huggingface_hub.snapshot_download({written.repo_id!r}, "
                 f"revision={written.revision!r}, local_files_only=True)"), seen)

    def read() -> FetchResult:
        entry = backend.stat(target)
        if entry.kind == "directory":
            # A page, as ls lists it: the work stays bounded however large the folder.
            page = folder_page(backend.exporter(), entry.cid, cursors=cursors,
                               limit=DEFAULT_PAGE, cursor=cursor)
            return FetchResult(
                cid=target, resolved_cid=cid_str(entry.cid), kind="directory", size=0,
                delivery="listing", entries=_ls_entries(page.entries), total=page.total,
                cursor=page.cursor, resource_uri=uri,
                hint="a folder: fetch a file inside it as CID/path, or pass output_path" + (
                    "; pass cursor for the next page" if page.cursor else ""))
        if entry.kind == "symlink":
            return FetchResult(cid=target, resolved_cid=cid_str(entry.cid), kind="symlink", size=0,
                               delivery="text", text=entry.target or "", resource_uri=uri,
                               hint="a symlink; text is its target")
        start = min(offset, entry.size)
        want = entry.size - start if length is None else min(length, entry.size - start)
        if want > max_inline:
            return FetchResult(
                cid=target, resolved_cid=cid_str(entry.cid), kind="file", size=entry.size,
                delivery="resource_link", offset=start, resource_uri=uri, eof=False,
                hint=f"{want} bytes is over the inline cap of {max_inline}; page with "
                     f"offset/length (at most {max_inline} bytes each), or pass output_path")
        data = _read(backend, entry, start, want)
        decoded = _decodecid_str(data)
        if decoded is not None:
            text, used = decoded
            return FetchResult(cid=target, resolved_cid=cid_str(entry.cid), kind="file",
                               size=entry.size, delivery="text", offset=start, length=used,
                               eof=start + used >= entry.size, text=text, resource_uri=uri)
        return FetchResult(cid=target, resolved_cid=cid_str(entry.cid), kind="file",
                           size=entry.size, delivery="base64", offset=start, length=len(data),
                           eof=start + len(data) >= entry.size,
                           base64=base64.b64encode(data).decode("ascii"), resource_uri=uri)

    return _answered(await run_blocking(_recorded(reads, seen, read)), seen)


def _ls_entries(entries: Iterable[Entry]) -> list[LsEntry]:
    return [LsEntry(name=e.name, cid=cid_str(e.cid), kind=e.kind, size=e.size)
            for e in entries]


async def ls(backend: Backend, cid: str, *, limit: int = DEFAULT_PAGE, offset: int = 0,
             cursor: str | None = None, cursors: Cursors | None = None) -> LsResult:
    """``limit`` entries of a folder from ``offset`` on (or the file itself); the work is
    the page's, not the folder's (see :meth:`Exporter.listing`). ``cursor`` and
    ``next_offset`` say where the next page starts; a cursor from ``store_model``
    continues its list of every file under the root (each entry's name is then its path).

    Raises:
        InvalidCID, NotFound, InvalidInput (a negative offset, a limit below 1, a cursor
        that is not this listing's).
    """
    target = _check_cid(cid)
    cursors = cursors or Cursors()
    if cursor is not None and offset:
        raise InvalidInput("pass offset or cursor, not both")

    def work() -> LsResult:
        entry = backend.stat(target)
        exporter = backend.exporter()
        if cursor is not None and cursors.listing_of(cursor) == "files":
            page = files_page(exporter, entry.cid, cursors=cursors, limit=limit,
                              cursor=cursor)
        else:
            page = folder_page(exporter, entry.cid, cursors=cursors, limit=limit,
                               offset=offset, cursor=cursor)
        more = page.cursor is not None
        return LsResult(cid=target, resolved_cid=cid_str(entry.cid), kind=entry.kind,
                        entries=_ls_entries(page.entries), total=page.total,
                        truncated=more, cursor=page.cursor,
                        next_offset=page.offset + len(page.entries)
                        if more and cursor is None else None)

    return await run_blocking(work)


# -- pins and GC -----------------------------------------------------------------------------
def _replication(backend: Backend, low: int | None, high: int | None) -> Replication | None:
    """The backend's replication, when a factor was asked for.

    Raises:
        Unsupported: a factor for a backend that keeps each pin on one machine.
        InvalidInput: a minimum above the maximum.
    """
    if low is None and high is None:
        return None
    if low is not None and high is not None and 0 < high < low:
        raise InvalidInput(f"replication_min={low} is above replication_max={high}")
    replication = backend.replication
    if replication is None:
        raise Unsupported(backend.name, "a replication factor",
                          "only the cluster backend (IPFS_BACKEND=cluster) replicates pins")
    return replication


async def pin(backend: Backend, cid: str, *, recursive: bool = True, name: str = "",
              progress: Progress | None = None, replication_min: int | None = None,
              replication_max: int | None = None) -> PinResult:
    """Pin ``cid[/path]``: a recursive pin first makes sure every block is present,
    fetching missing ones from peers when the node runs. On a cluster, the replication
    factor says how many peers must (and may) hold it.

    Raises:
        InvalidCID, NotFound (a block is missing everywhere), Unsupported (a factor on a
        backend without replication), Timeout (not on enough peers in time).
    """
    target = _check_cid(cid)
    replicated = _replication(backend, replication_min, replication_max)

    def work() -> PinResult:
        if replicated is not None:
            pinned = replicated.pin(target, recursive=recursive, name=name, progress=progress,
                                    replication_min=replication_min,
                                    replication_max=replication_max)
            return PinResult(cid=target, pinned=True, recursive=recursive, size=pinned.size)
        pinned = backend.pin(target, recursive=recursive, name=name, progress=progress)
        return PinResult(cid=target, pinned=True, recursive=recursive, size=pinned.size)

    return await run_blocking(work, progress)


async def unpin(backend: Backend, cid: str) -> UnpinResult:
    """Remove the pins of ``cid`` (its blocks go at the next ``repo_gc``).

    Raises:
        InvalidCID, PinNotFound.
    """
    parsed = cid_str(parse_cid(cid))
    removed = await run_blocking(lambda: backend.unpin(parsed))
    return UnpinResult(cid=parsed, removed=list(removed))


async def list_pins(backend: Backend, *, limit: int = DEFAULT_PAGE, name_contains: str = "",
                    cursor: str | None = None, cursors: Cursors | None = None) -> PinList:
    """Pinned roots (recursive and direct), newest first where the backend records when,
    ``limit`` at a time; ``cursor`` continues after an earlier page.

    Raises:
        InvalidInput: a cursor of another listing (another ``name_contains``) or not ours.
    """
    cursors = cursors or Cursors()

    def work() -> PinList:
        pins, total, following = pins_page(backend.pins(), cursors=cursors,
                                           limit=max(limit, 1),
                                           name_contains=name_contains, cursor=cursor)
        shown = [PinInfo(cid=cid_str(p.cid), type=p.type, name=p.name, size=p.size,
                         created=p.created) for p in pins]
        return PinList(pins=shown, total=total, truncated=following is not None,
                       cursor=following)

    return await run_blocking(work)


async def repo_gc(backend: Backend) -> GCResult:
    """Delete every block not reachable from a pin.

    Raises:
        Unsupported: the backend keeps no embedded repo (Kubo collects its own garbage).
    """
    repo = backend.repo
    if repo is None:
        raise Unsupported(backend.name, "repo_gc", "its node collects its own garbage, e.g. "
                                                   "`ipfs repo gc` on the Kubo node")
    report = await run_blocking(repo.gc)
    return GCResult(removed_blocks=report.removed, freed_bytes=report.freed,
                    kept_blocks=report.kept, missing_pinned=list(report.missing))
