"""The HuggingFace hub cache, both ways, over any backend.

The hub cache is a folder on this machine (``HF_HUB_CACHE``), not a power of one backend:
a cached snapshot can be added to Kubo as well as to the embedded repo, and a folder DAG
read from either can be written back in the hub layout so ``huggingface_hub`` loads it
offline. The layout itself (and its safety: revisions never move silently, blobs never
rewritten, files visible only once verified) is :mod:`.hf_layout`'s.
"""

from __future__ import annotations

from dataclasses import replace as with_changes
from pathlib import Path

from . import hf_layout
from .backend import Backend, ProgressFn
from .hf_cache import split_path
from .importer import ImportOptions, ImportResult


def add_model(backend: Backend, hub_cache: Path, repo_id: str, revision: str | None = None,
              *, pin: bool = True, options: ImportOptions | None = None,
              progress: ProgressFn | None = None) -> ImportResult:
    """Add a cached hub snapshot (``models--org--name/snapshots/<rev>``) to ``backend``.

    Raises:
        NotFound: the model (or revision) is not in the local hub cache.
    """
    snapshot = hf_layout.snapshot_path(hub_cache, repo_id, revision)
    # Snapshot files are symlinks into blobs/, and dotfiles (.gitattributes) belong to it.
    follow = with_changes(options or ImportOptions(), follow_symlinks=True, hidden=True)
    label = f"{repo_id}@{revision}" if revision else repo_id
    return backend.add_path(snapshot, pin=pin, options=follow, name=label, progress=progress)


def export_model(backend: Backend, hub_cache: Path, cid: str, repo_id: str, *,
                 revision: str = "main", commit: str | None = None, replace: bool = False,
                 max_bytes: int | None = None) -> hf_layout.HFWriteResult:
    """Write the folder DAG ``cid[/path]`` into the hub cache as ``repo_id@revision``.

    Raises:
        TargetExists: the revision already names other content and not ``replace``.
        InvalidInput: not a folder, or unsafe names.
    """
    root, path = split_path(cid)
    exporter = backend.exporter(whole_dag=True)
    resolved = exporter.resolve(root, path) if path else root
    return hf_layout.write_snapshot(exporter, resolved, hub_cache, repo_id, revision=revision,
                                    commit=commit, replace=replace, max_bytes=max_bytes)
