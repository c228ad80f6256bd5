"""The HuggingFace hub cache layout, in both directions.

The hub cache (``$HF_HUB_CACHE``, by default ``$HF_HOME/hub``) stores each repo as::

    models--<org>--<name>/
      refs/<revision-name>          the commit hash a branch or tag points to
      blobs/<etag>                  file contents (sha256 for LFS files, git sha1 otherwise)
      snapshots/<commit>/<path>     relative symlinks into ../../blobs/<etag>

Adding a model resolves the snapshot with ``huggingface_hub`` itself (offline) and imports
it following the symlinks. Writing back lays a UnixFS directory out the same way, so
``hf_hub_download(..., local_files_only=True)`` and ``transformers`` find the files.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from multiformats import CID

from .cids import cid_str
from .errors import InvalidInput, NotFound
from .exporter import Exporter
from .importer import check_entry_name

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")
_LFS_THRESHOLD = 10 * 1024 * 1024  # files at least this large are LFS on the hub
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
REPO_TYPES = ("model", "dataset", "space")


def parse_source(source: str) -> tuple[str, str | None]:
    """Split ``org/name@revision`` into the repo id and optional revision.

    Raises:
        InvalidInput: not a valid repo id.
    """
    repo_id, _, revision = source.partition("@")
    if not _REPO_ID.match(repo_id) or ".." in repo_id:
        raise InvalidInput(f"{repo_id!r} is not a HuggingFace repo id (org/name)")
    return repo_id, revision or None


def repo_folder(hub_cache: Path, repo_id: str, repo_type: str = "model") -> Path:
    if repo_type not in REPO_TYPES:
        raise InvalidInput(f"repo_type must be one of {REPO_TYPES}")
    return Path(hub_cache) / f"{repo_type}s--{repo_id.replace('/', '--')}"


def snapshot_path(hub_cache: Path, repo_id: str, revision: str | None = None,
                  repo_type: str = "model") -> Path:
    """The local snapshot folder of a cached repo, resolved offline by huggingface_hub.

    Raises:
        NotFound: the repo or revision is not in the local cache.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = snapshot_download(repo_id, revision=revision, repo_type=repo_type,
                                 cache_dir=str(hub_cache), local_files_only=True)
    except (LocalEntryNotFoundError, FileNotFoundError, OSError) as exc:
        where = repo_folder(hub_cache, repo_id, repo_type)
        raise NotFound(f"{repo_id}@{revision or 'main'} is not in the HuggingFace cache "
                       f"({where}); download it first or pass a local folder") from exc
    return Path(path)


@dataclass(frozen=True)
class HFWriteResult:
    repo_id: str
    revision: str
    commit: str
    snapshot: Path
    files: tuple[str, ...]


def commit_for(root: CID) -> str:
    """A stable 40-hex commit name for a DAG that has no hub commit of its own."""
    return hashlib.sha1(bytes(root)).hexdigest()


def write_snapshot(exporter: Exporter, root: CID, hub_cache: Path, repo_id: str, *,
                   revision: str = "main", commit: str | None = None,
                   repo_type: str = "model") -> HFWriteResult:
    """Write the directory DAG ``root`` into the hub cache as ``repo_id``.

    Raises:
        InvalidInput: ``root`` is not a directory, or names are unsafe.
    """
    parse_source(repo_id)
    commit = commit or commit_for(root)
    if not _COMMIT.match(commit):
        raise InvalidInput(f"commit {commit!r} must be 40 lowercase hex digits")
    if "/" in revision or revision in ("", ".", ".."):
        raise InvalidInput(f"unsafe revision name {revision!r}")
    folder = repo_folder(hub_cache, repo_id, repo_type)
    blobs = folder / "blobs"
    snapshot = folder / "snapshots" / commit
    blobs.mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    files: list[str] = []
    if exporter.stat(root).kind != "directory":
        raise InvalidInput(f"{cid_str(root)} is a file; a model needs a folder")
    _write_tree(exporter, root, snapshot, "", blobs, files)
    refs = folder / "refs"
    refs.mkdir(exist_ok=True)
    tmp = refs / f".{revision}.{uuid.uuid4().hex}"
    tmp.write_text(commit)
    os.replace(tmp, refs / revision)
    return HFWriteResult(repo_id, revision, commit, snapshot, tuple(files))


def _write_tree(exporter: Exporter, cid: CID, snapshot: Path, rel: str, blobs: Path,
                files: list[str]) -> None:
    for name, child in exporter.children(cid):
        check_entry_name(name)
        child_rel = f"{rel}/{name}" if rel else name
        entry = exporter.stat(child, name)
        if entry.kind == "directory":
            _write_tree(exporter, child, snapshot, child_rel, blobs, files)
        elif entry.kind == "file":
            etag = _write_blob(exporter, child, entry.size, blobs)
            link = snapshot / child_rel
            link.parent.mkdir(parents=True, exist_ok=True)
            depth = child_rel.count("/")
            target = "../" * (depth + 2) + f"blobs/{etag}"
            if link.is_symlink() or link.exists():
                link.unlink()
            os.symlink(target, link)
            files.append(child_rel)


def _write_blob(exporter: Exporter, cid: CID, size: int, blobs: Path) -> str:
    sha256 = hashlib.sha256()
    sha1 = hashlib.sha1(f"blob {size}\0".encode())
    tmp = blobs / f".{uuid.uuid4().hex}.incomplete"
    try:
        with open(tmp, "xb") as out:
            for piece in exporter.cat(cid):
                sha256.update(piece)
                sha1.update(piece)
                out.write(piece)
        etag = sha256.hexdigest() if size >= _LFS_THRESHOLD else sha1.hexdigest()
        os.replace(tmp, blobs / etag)
    finally:
        tmp.unlink(missing_ok=True)
    return etag
