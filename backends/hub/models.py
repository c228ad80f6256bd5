"""The HuggingFace hub cache, both ways, over any backend.

The hub cache is a folder on this machine (``HF_HUB_CACHE``), not a power of one backend:
a cached snapshot can be added to Kubo as well as to the embedded repo, and a folder DAG
read from either can be written back in the hub layout so ``huggingface_hub`` loads it
offline. The layout itself (and its safety: revisions never move silently, blobs never
rewritten, files visible only once verified) is :mod:`.hf_layout`'s.

Adding a snapshot to the embedded repo keeps its leaves by reference by default (nocopy,
:mod:`.filestore`): the blobs are already on disk, so the model is never stored twice.

The snapshot's commit is recorded in the stored folder (:class:`.layout.SnapshotRecord`,
``.cache/huggingface/ipfs-snapshot.json``): the snapshot is added as it is, then one
folder is made of its entries and the record, and that folder is what is pinned. The
record's blocks are built here with the importer and imported as one CAR (its root not
pinned on its own), so this works over any backend. A snapshot whose root is sharded (thousands of top-level files), or
that holds a ``.cache`` entry of its own, is stored without a record.
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import replace as with_changes
from pathlib import Path

from ipfs_mcp.backends.backend import Backend, ProgressFn
from ipfs_mcp.backends.core import car, dagpb, limits, unixfs
from ipfs_mcp.backends.core.cids import cid_from_bytes, cid_str, split_path
from ipfs_mcp.backends.core.importer import AddedEntry, Importer, ImportOptions, ImportResult
from ipfs_mcp.backends.errors import UnsafePath
from ipfs_mcp.backends.hub import layout as hf_layout


def nocopy_default(backend: Backend, nocopy: bool | None) -> bool:
    """Whether a hub snapshot is added by reference: by default yes wherever the embedded
    repo takes the add (its filestore keeps the references); ``nocopy=False`` copies."""
    return backend.repo is not None if nocopy is None else nocopy


def check_inside_hub(snapshot: Path, hub_cache: Path) -> None:
    """Every file of a snapshot must resolve inside the hub cache to be referenced.

    Raises:
        UnsafePath: a symlink of the snapshot leads out of the hub cache, or the snapshot
            is larger than any real one.
    """
    hub = Path(hub_cache).resolve()
    stack, seen, entries = [snapshot.resolve()], set(), 0
    while stack:
        folder = stack.pop()
        if folder in seen:
            continue
        seen.add(folder)
        with os.scandir(folder) as listing:  # closed even when a bad entry stops the walk
            for entry in listing:
                entries += 1
                if entries > limits.MAX_WALK_BLOCKS:
                    raise UnsafePath(f"{snapshot} has more than {limits.MAX_WALK_BLOCKS} "
                                     "entries")
                real = Path(entry.path).resolve()
                if not real.is_relative_to(hub):
                    raise UnsafePath(f"{entry.path} leads out of the HuggingFace cache (to "
                                     f"{real}); it is not added by reference")
                if real.is_dir():
                    stack.append(real)


def add_model(backend: Backend, hub_cache: Path, repo_id: str, revision: str | None = None,
              *, pin: bool = True, options: ImportOptions | None = None,
              progress: ProgressFn | None = None, nocopy: bool | None = None) -> ImportResult:
    """Add a cached hub snapshot (``models--org--name/snapshots/<rev>``) to ``backend``.

    ``nocopy`` (default: :func:`nocopy_default`) keeps the leaves as references into the
    cache's ``blobs/`` instead of copying them, so the model is on disk once.

    Raises:
        NotFound: the model (or revision) is not in the local hub cache.
        UnsafePath: nocopy, and a snapshot symlink leads out of the hub cache.
    """
    snapshot = hf_layout.snapshot_path(hub_cache, repo_id, revision)
    by_reference = nocopy_default(backend, nocopy)
    if by_reference:
        check_inside_hub(snapshot, hub_cache)
    # Snapshot files are symlinks into blobs/, and dotfiles (.gitattributes) belong to it.
    follow = with_changes(options or ImportOptions(), follow_symlinks=True, hidden=True,
                          nocopy=by_reference)
    label = f"{repo_id}@{revision}" if revision else repo_id
    record = hf_layout.SnapshotRecord.of(snapshot, repo_id, revision)
    if record is None:
        return backend.add_path(snapshot, pin=pin, options=follow, name=label,
                                progress=progress)
    repo = backend.repo
    # Held from the add to the pin, so a GC cannot take the unpinned snapshot meanwhile.
    with repo.writing() if repo is not None else contextlib.nullcontext():
        added = backend.add_path(snapshot, pin=False, options=follow, name=label,
                                 progress=progress)
        result = with_record(backend, added, record, follow)
        if pin:
            backend.pin(cid_str(result.root), name=label)
    return result


class _Blocks:
    """The blocks an importer makes, kept to be put into a backend together."""

    def __init__(self) -> None:
        self.made: list[tuple[bytes, bytes]] = []

    def put_block(self, cid: bytes, data: bytes) -> None:
        self.made.append((cid, data))


def with_record(backend: Backend, added: ImportResult, record: hf_layout.SnapshotRecord,
                options: ImportOptions) -> ImportResult:
    """``added`` (a snapshot's folder) with ``record`` beside its files, laid out with
    ``options``: the same entries plus ``.cache/huggingface/ipfs-snapshot.json``, so every
    file keeps its CID. ``added`` itself when its root is sharded or has a ``.cache``."""
    root = dagpb.decode(backend.block_get(cid_str(added.root)))
    if root.data is None or unixfs.decode(root.data).type != unixfs.NodeType.DIRECTORY:
        return added  # a HAMT root: not worth re-sharding for one record
    cache, huggingface, name = hf_layout.RECORD_PATH.split("/")
    if any(link.name == cache for link in root.links):
        return added
    blocks = _Blocks()
    # The record is a block, not a reference (no file holds it), laid out as the files are.
    importer = Importer(blocks, with_changes(options, nocopy=False,
                                             raw_leaves=options.leaves_are_raw))
    data = record.encode()
    file = importer.add_bytes(data)
    inner = importer.add_directory([(name, file)])
    folder = importer.add_directory([(huggingface, inner)])
    links = [(link.name, dagpb.Node(bytes(link.cid), link.tsize, 0)) for link in root.links]
    top = importer.add_directory([*links, (cache, folder)])
    # One CAR, its root left unpinned (the caller pins): Kubo and a cluster take it as they
    # take any import, and no block of the record is pinned on its own.
    car_bytes = io.BytesIO()
    car.write_car(car_bytes, [top.cid_obj], ((cid_from_bytes(c), b) for c, b in blocks.made))
    car_bytes.seek(0)
    backend.dag_import(car_bytes, pin_roots=False)
    entries = [e for e in added.entries if e.path != ""] + [
        AddedEntry(hf_layout.RECORD_PATH, file.cid_obj, len(data), "file"),
        AddedEntry(f"{cache}/{huggingface}", inner.cid_obj, 0, "directory"),
        AddedEntry(cache, folder.cid_obj, 0, "directory"),
        AddedEntry("", top.cid_obj, 0, "directory")]
    return ImportResult(top.cid_obj, added.size + len(data), entries)


def export_model(backend: Backend, hub_cache: Path, cid: str,
                 repo_id: str | hf_layout.RevisionPlan, *, revision: str | None = None,
                 commit: str | None = None, replace: bool = False,
                 max_bytes: int | None = None,
                 progress: hf_layout.SizedProgress | None = None) -> hf_layout.HFWriteResult:
    """Write the folder DAG ``cid[/path]`` into the hub cache as ``repo_id@revision``
    (``repo_id`` may be ``org/name@rev``, or a plan already made to ask the user, see
    :func:`.layout.plan_revision`), as the commit the DAG records when it records one.

    Raises:
        TargetExists: the revision already names other content and not ``replace``, or it
            moved since the plan.
        InvalidInput: not a folder, unsafe names, or a revision named like a commit.
    """
    plan = hf_layout.as_plan(hub_cache, repo_id, revision)
    root, path = split_path(cid)
    sizing = backend.exporter()  # block by block: a DAG bomb costs a few blocks
    resolved = sizing.resolve(root, path) if path else root
    sizing.check_fits(resolved, hub_cache, max_bytes)
    return hf_layout.write_snapshot(backend.exporter(whole_dag=True), resolved, hub_cache,
                                    plan, commit=commit, replace=replace,
                                    max_bytes=max_bytes, progress=progress)
