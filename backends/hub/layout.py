"""The HuggingFace hub cache layout, in both directions.

The hub cache (``$HF_HUB_CACHE``, by default ``$HF_HOME/hub``) stores each repo as::

    models--<org>--<name>/
      refs/<revision-name>          the commit hash a branch or tag points to
      blobs/<etag>                  file contents (the hub: sha256 for LFS files, git sha1
                                    otherwise; written here: always sha256)
      blobs/<cid>.incomplete        a file being received (see hf_receive.py); named by its
                                    CID so an interrupted fetch finds it again; never linked
      snapshots/<commit>/<path>     relative symlinks into ../../blobs/<etag>

Adding a model resolves the snapshot with ``huggingface_hub`` itself (offline) and imports
it following the symlinks. Writing back lays a UnixFS directory out the same way, so
``hf_hub_download(..., local_files_only=True)`` and ``transformers`` find the files.

The commit travels with the model. Adding a snapshot (``snapshots/<commit>``) records,
inside the stored folder, the file ``.cache/huggingface/ipfs-snapshot.json``::

    {"format": "ipfs-mcp/hf-snapshot/1", "repo_id": "org/name", "repo_type": "model",
     "commit": "<the 40-hex folder name>", "ref": "<the ref it was read through, or null>"}

The hub never holds a file under a ``.cache/`` folder (``huggingface_hub`` refuses such
paths in a commit), so the name cannot collide with a model file; every model file keeps
its CID, only the folder's root changes. A receiver reads the record from the DAG alone
(every block verified, the file bounded to :data:`MAX_RECORD_BYTES`), writes the snapshot
as ``snapshots/<that commit>`` (the record itself is not written there) and points the ref
it was asked for at it. Content without a record keeps a commit derived from its CID
(:func:`commit_for`). A recorded commit is a claim, not a proof: when the receiving cache
already holds that commit, the write must change nothing there (every file of the DAG is
already in that snapshot, naming the same blob), or it is refused unless ``replace``.

The rules of a write, all here (:func:`plan_revision` and :func:`write_snapshot`):

- a revision is a branch or tag name; one that looks like a commit id is refused, because
  ``huggingface_hub`` reads ``refs/<revision>`` before ``snapshots/<revision>``: a ref named
  after a cached commit would make that commit load other files;
- the revision is resolved once, into a :class:`RevisionPlan` that also holds the commit the
  ref named then; the user's confirmation shows that plan and the write uses it, moving the
  ref only from that commit (a ref that moved meanwhile is not moved again);
- ``org/name@rev`` and a separate revision must agree: two different names are refused;
- everything that can be refused is checked before the first folder is made, and a write
  that fails later removes the folders it made and left empty.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import json
import os
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from multiformats import CID

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.core.exporter import Exporter
from ipfs_mcp.backends.core.importer import check_entry_name
from ipfs_mcp.backends.core.rooted import Folder
from ipfs_mcp.backends.errors import (
    DiskFull,
    IntegrityError,
    InvalidInput,
    NotFound,
    TargetExists,
    UnsafePath,
)

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")
_READ_CHUNK = 1 << 20
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK}
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
# huggingface_hub's REGEX_COMMIT_HASH is "[0-9a-f]{40}" (fullmatch); any case is refused here,
# since a name that reads as a commit id to the person confirming it must not be a branch.
_COMMIT_LIKE = re.compile(r"[0-9a-fA-F]{40}")
_ABBREVIATED = re.compile(r"[0-9a-fA-F]{4,39}")  # git abbreviates commit ids to 4 or more
REPO_TYPES = ("model", "dataset", "space")
_MAX_SNAPSHOTS = 10_000  # far more commits than any cached repo keeps
RECORD_PATH = ".cache/huggingface/ipfs-snapshot.json"  # see the module docstring
RECORD_FORMAT = "ipfs-mcp/hf-snapshot/1"
MAX_RECORD_BYTES = 4096  # a record is about 200 bytes; a larger one is not read


class SizedProgress(Protocol):
    """Hears the bytes a write puts into ``blobs/``, and first how many that will be in all,
    as the DAG declares them (so a client's bar knows its end before the first byte)."""

    def __call__(self, nbytes: int) -> None: ...

    def expect(self, total: int) -> None: ...


@dataclass(frozen=True)
class SnapshotRecord:
    """Which hub snapshot a stored folder was added from (see the module docstring)."""

    repo_id: str
    commit: str
    ref: str | None = None
    repo_type: str = "model"

    @classmethod
    def of(cls, snapshot: Path, repo_id: str, revision: str | None,
           repo_type: str = "model") -> SnapshotRecord | None:
        """The record of ``snapshots/<commit>`` read through ``revision`` (a ref, a commit
        or None for ``main``); None when the folder is not named by a commit."""
        if not _COMMIT.fullmatch(snapshot.name):
            return None
        ref = None if revision is not None and _COMMIT_LIKE.fullmatch(revision) else (
            revision or "main")
        return cls(repo_id, snapshot.name, ref, repo_type)

    def encode(self) -> bytes:
        return json.dumps({"format": RECORD_FORMAT, "repo_id": self.repo_id,
                           "repo_type": self.repo_type, "commit": self.commit,
                           "ref": self.ref}, sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes, where: str) -> SnapshotRecord:
        """Raises:
            InvalidInput: not a record this version writes, or a commit that is not 40
                lowercase hex digits.
        """
        try:
            fields = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise InvalidInput(f"{where} is not a snapshot record (not JSON); nothing was "
                               "written") from exc
        if (not isinstance(fields, dict) or fields.get("format") != RECORD_FORMAT
                or not isinstance(fields.get("commit"), str)
                or not _COMMIT.fullmatch(fields["commit"])):
            raise InvalidInput(f"{where} is not a {RECORD_FORMAT} record with a 40-hex commit; "
                               "nothing was written")
        ref, repo_id = fields.get("ref"), fields.get("repo_id")
        return cls(repo_id if isinstance(repo_id, str) else "", fields["commit"],
                   ref if isinstance(ref, str) else None,
                   str(fields.get("repo_type") or "model"))


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
class BlobWritten:
    """How one file reached ``blobs/``."""

    etag: str  # its sha256, the blob's name
    by_reference: bool = False  # written once as it arrived; its leaves kept as references
    why_copied: str = ""  # when not by reference: why (e.g. dag-pb leaves)
    resumed: int = 0  # leaves an earlier, interrupted receive had written already
    written: int = 0  # bytes this call wrote into the blob


# (file CID, declared size, the blobs folder) -> the blob, in place under its etag.
BlobWriter = Callable[[CID, int, Path], BlobWritten]


@dataclass(frozen=True)
class HFWriteResult:
    repo_id: str
    revision: str
    commit: str
    snapshot: Path
    files: tuple[str, ...]
    replaced: str | None = None  # the commit the revision pointed to before, when moved
    by_reference: tuple[str, ...] = ()  # files received once, their leaves referenced
    copied: tuple[str, ...] = ()  # "path: why" for files written by copying
    resumed: int = 0  # leaves found written by an earlier, interrupted fetch
    written: int = 0  # bytes written into blobs/


def commit_for(root: CID) -> str:
    """A stable 40-hex commit name for a DAG that has no hub commit of its own: the same
    CID always gives the same commit, so fetching it again changes nothing."""
    return hashlib.sha1(bytes(root)).hexdigest()


def _check_revision(revision: str) -> None:
    if ("/" in revision or "\\" in revision or revision in ("", ".", "..")
            or revision.startswith(".") or "\x00" in revision):
        raise InvalidInput(f"unsafe revision name {revision!r}")


def current_commit(hub_cache: Path, repo_id: str, revision: str = "main",
                   repo_type: str = "model") -> str | None:
    """The commit ``refs/<revision>`` of a cached repo points to now, or None.

    Raises:
        InvalidInput: an invalid repo id or revision name.
    """
    parse_source(repo_id)
    _check_revision(revision)
    return _read_ref(repo_folder(hub_cache, repo_id, repo_type) / "refs" / revision)


def _read_ref(ref: Path) -> str | None:
    try:
        return ref.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InvalidInput(f"cannot read {ref}: {exc.strerror}") from exc


@dataclass(frozen=True)
class RevisionPlan:
    """Where one write goes, resolved once: what the user is asked about is what is written.

    ``current`` is the commit ``refs/<revision>`` named when the plan was made (None: there
    was no such ref); the write moves the ref only from that commit.
    """

    repo_id: str
    revision: str
    current: str | None
    repo_type: str = "model"

    @property
    def label(self) -> str:
        return f"{self.repo_id}@{self.revision}"


def plan_revision(hub_cache: Path, target: str, revision: str | None = None,
                  repo_type: str = "model") -> RevisionPlan:
    """Resolve ``org/name[@rev]`` (and ``revision``, given separately; default ``main``)
    into the one revision a write uses, with the commit its ref names now.

    Raises:
        InvalidInput: an invalid repo id; an unsafe revision name or one that looks like a
            commit id; ``@rev`` and ``revision`` both given and different.
    """
    repo_id, named = parse_source(target)
    if named is not None and revision is not None and named != revision:
        raise InvalidInput(
            f"{target!r} names revision {named!r} and the revision argument names "
            f"{revision!r}; give one revision (or the same in both). Nothing was written")
    chosen = named if named is not None else revision if revision is not None else "main"
    check_ref_name(hub_cache, repo_id, chosen, repo_type)
    return RevisionPlan(repo_id, chosen, current_commit(hub_cache, repo_id, chosen, repo_type),
                        repo_type)


def as_plan(hub_cache: Path, target: str | RevisionPlan, revision: str | None = None,
            repo_type: str = "model") -> RevisionPlan:
    """``target`` when a caller planned it already (to ask the user), else planned now.

    Raises:
        InvalidInput: as :func:`plan_revision`.
    """
    if isinstance(target, RevisionPlan):
        return target
    return plan_revision(hub_cache, target, revision, repo_type)


def check_ref_name(hub_cache: Path, repo_id: str, revision: str,
                   repo_type: str = "model") -> None:
    """Refuse a revision that cannot safely be written as ``refs/<revision>``: an unsafe
    name, a commit id (40 hex digits), or an abbreviation of a commit the repo has cached.

    Raises:
        InvalidInput: the name is unsafe or looks like a commit id.
    """
    _check_revision(revision)
    if _COMMIT_LIKE.fullmatch(revision):
        why = "is a commit id"
    elif _ABBREVIATED.fullmatch(revision) and any(
            commit.startswith(revision.lower())
            for commit in _cached_commits(repo_folder(hub_cache, repo_id, repo_type))):
        why = "abbreviates a commit this repo has cached"
    else:
        return
    raise InvalidInput(
        f"revision {revision!r} {why}: huggingface_hub reads refs/{revision} before the "
        f"snapshot of a commit, so a ref of that name would make {repo_id}@{revision} load "
        "other files. Name a branch or tag instead (such as 'ipfs'); nothing was written")


def _cached_commits(folder: Path) -> list[str]:
    """The commits whose snapshots a cached repo holds (a bounded listing)."""
    try:
        with os.scandir(folder / "snapshots") as listing:
            return [entry.name.lower() for entry in itertools.islice(listing, _MAX_SNAPSHOTS)]
    except OSError:
        return []


def write_snapshot(exporter: Exporter, root: CID, hub_cache: Path, plan: RevisionPlan, *,
                   commit: str | None = None, replace: bool = False,
                   max_bytes: int | None = None,
                   blob_writer: BlobWriter | None = None,
                   progress: SizedProgress | None = None) -> HFWriteResult:
    """Write the directory DAG ``root`` into the hub cache as ``plan`` says (repo id and
    revision, see :func:`plan_revision`), as the snapshot of ``commit``, else of the commit
    the DAG records, else of one derived from ``root``.

    ``progress`` is told the bytes of the files to write before the first is written, and
    hears them as the default writer copies them (``blob_writer`` reports its own).

    ``blob_writer`` puts each file into ``blobs/`` (default: stream it from ``exporter``
    and copy it; :mod:`.hf_receive` writes it once as it arrives).

    Nothing that already resolves changes silently: when ``refs/<revision>`` points to
    another commit the call fails before writing anything, unless ``replace``; and the ref
    moves only from the commit the plan saw. Blobs are named by their sha256 and never
    rewritten (an existing one is verified instead); a file appears in ``snapshots/`` only
    once its blob is complete and verified; the ref moves last. Everything that can be
    refused is checked before the first folder is made; a write that fails later removes
    the folders it made and left empty.

    Raises:
        InvalidInput: ``root`` is not a directory, or names are unsafe; its snapshot
            record is malformed.
        TargetExists: the revision (or a file of the snapshot) already names other content,
            or the ref moved since the plan was made; the recorded commit is cached and
            this DAG would add to it.
        IntegrityError: an existing blob does not hash to its name, or the folder lists a
            name twice.
        WriteTooLarge: the declared size does not fit (see ``Exporter.check_fits``).
    """
    if exporter.stat(root).kind != "directory":
        raise InvalidInput(f"{cid_str(root)} is a file; a model needs a folder")
    hub = Path(os.path.realpath(hub_cache))  # the configured root: its own links are chosen
    exporter.check_fits(root, hub, max_bytes)
    entries = _files(exporter, root)  # every name checked before any folder is made
    recorded = _take_record(exporter, root, entries)
    commit = commit or (recorded.commit if recorded is not None else commit_for(root))
    if not _COMMIT.match(commit):
        raise InvalidInput(f"commit {commit!r} must be 40 lowercase hex digits")
    _check_ref_move(plan, hub_cache, commit, replace, cid_str(root))
    if recorded is not None and not replace:
        _check_claimed_commit(hub, plan, commit, entries)
    if progress is not None:
        progress.expect(sum(size for _, _, size in entries))
    hub.mkdir(parents=True, exist_ok=True)
    with _Folders(Folder.open(hub)) as folders:
        # Every folder of the repo is opened here, by handle, below the hub cache; a link
        # planted anywhere is refused, and one swapped in later is never followed.
        try:
            repo = folders.make(folders.hub,
                                repo_folder(hub, plan.repo_id, plan.repo_type).name)
            blobs = folders.make(repo, "blobs")
            snapshot = folders.make(folders.make(repo, "snapshots"), commit)
            refs = folders.make(repo, "refs")

            def copy(cid: CID, size: int, into: Path) -> BlobWritten:
                return write_blob(counted(exporter.cat(cid), progress), cid, size, blobs)

            writer = blob_writer or copy
            written = [(rel, writer(child, size, blobs.shown)) for rel, child, size in entries]
            files = [(rel, blob.etag) for rel, blob in written]
            for into, name, target in _plan_links(files, snapshot, folders, replace):
                _place_link(into, name, target)
            _move_ref(refs, plan, commit)
        except BaseException:
            folders.discard_made()
            raise
    return HFWriteResult(
        plan.repo_id, plan.revision, commit, snapshot.shown, tuple(rel for rel, _ in files),
        replaced=plan.current if plan.current not in (None, commit) else None,
        by_reference=tuple(rel for rel, b in written if b.by_reference),
        copied=tuple(f"{rel}: {b.why_copied}" for rel, b in written if not b.by_reference),
        resumed=sum(b.resumed for _, b in written), written=sum(b.written for _, b in written))


def _take_record(exporter: Exporter, root: CID,
                 entries: list[tuple[str, CID, int]]) -> SnapshotRecord | None:
    """The snapshot record of the tree (removed from ``entries``: it is not a model file),
    read through verified blocks; None when there is none.

    Raises:
        InvalidInput: the record is larger than :data:`MAX_RECORD_BYTES` or malformed.
    """
    found = next((i for i, (rel, _, _) in enumerate(entries) if rel == RECORD_PATH), None)
    if found is None:
        return None
    _, cid, size = entries.pop(found)
    where = f"{cid_str(root)}/{RECORD_PATH}"
    if size > MAX_RECORD_BYTES:
        raise InvalidInput(f"{where} declares {size} bytes, over the {MAX_RECORD_BYTES} a "
                           "snapshot record may take; nothing was written")
    return SnapshotRecord.decode(b"".join(exporter.cat(cid, 0, MAX_RECORD_BYTES)), where)


def _check_claimed_commit(hub: Path, plan: RevisionPlan, commit: str,
                          entries: list[tuple[str, CID, int]]) -> None:
    """A commit the DAG records is a claim: where the cache holds that commit already, the
    DAG may only name files it has (whether they name the same blobs is checked once their
    sha256 is known, see :func:`_plan_links`). Read only; nothing is written here.

    Raises:
        TargetExists: the cached snapshot lacks a file of the DAG.
    """
    cached = repo_folder(hub, plan.repo_id, plan.repo_type) / "snapshots" / commit
    if not os.path.lexists(cached) or _empty_folder(cached):
        return  # an empty one is what a killed fetch leaves: nothing there resolves yet
    extra = [rel for rel, _, _ in entries if not os.path.lexists(cached / rel)]
    if extra:
        raise TargetExists(
            f"{plan.repo_id} already has commit {commit} cached, and this DAG, which says it "
            f"is that commit, holds files that snapshot does not ({', '.join(extra[:3])}"
            f"{', ...' if len(extra) > 3 else ''}); a cached commit is never changed "
            "silently. Nothing was written. Pass replace=true to add them")


def _empty_folder(path: Path) -> bool:
    try:
        with os.scandir(path) as listing:
            return next(listing, None) is None
    except NotADirectoryError:
        return False


def counted(pieces: Iterable[bytes], progress: Callable[[int], None] | None
            ) -> Iterable[bytes]:
    """``pieces``, each reported to ``progress`` as it passes."""
    for piece in pieces:
        if progress is not None:
            progress(len(piece))
        yield piece


def _check_ref_move(plan: RevisionPlan, hub_cache: Path, commit: str, replace: bool,
                    what: str) -> None:
    """Before anything is written: the ref still names what the plan saw, and it moves to
    other content only with ``replace``.

    Raises:
        TargetExists: it moved since the plan, or it names other content and not ``replace``.
    """
    now = current_commit(hub_cache, plan.repo_id, plan.revision, plan.repo_type)
    if now not in (plan.current, commit):
        raise TargetExists(f"{_moved(plan, now)}. Nothing was written")
    if plan.current not in (None, commit) and not replace:
        raise TargetExists(
            f"{plan.label} already resolves to commit {plan.current}; writing {what} would "
            f"move it to commit {commit}. Nothing was written. Pass replace=true to move "
            f"{plan.revision!r}, or choose another revision name")


def _moved(plan: RevisionPlan, now: str | None) -> str:
    return (f"{plan.label} moved from commit {plan.current or '(no ref)'} to "
            f"{now or '(no ref)'} while this write was prepared (and, where the client can "
            "ask, confirmed); it was not moved again. Fetch again to decide about the "
            "commit it names now")


def _read_ref_in(refs: Folder, name: str) -> str | None:
    """``refs/<name>`` read through the open ``refs`` folder (a link there is refused)."""
    try:
        fd = refs.open_read(name)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InvalidInput(f"cannot read {refs.path(name)}: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as stream:
        return stream.read(_READ_CHUNK).decode("utf-8", "replace").strip() or None


def _move_ref(refs: Folder, plan: RevisionPlan, commit: str) -> None:
    """Point ``refs/<revision>`` at ``commit``, only from the commit the plan saw: a new ref
    is created only if none appeared meanwhile, an existing one is replaced only if it
    still names what the plan saw (read again just before, the closest a plain file allows).

    Raises:
        TargetExists: the ref moved since the plan.
    """
    name = plan.revision
    now = _read_ref_in(refs, name)
    if now == commit:
        return
    if now != plan.current:
        raise TargetExists(f"{_moved(plan, now)}; the files are in the cache as commit "
                           f"{commit}")
    tmp = f".{name}.{uuid.uuid4().hex}"
    refs.write_file(tmp, commit.encode())
    try:
        if plan.current is not None:
            refs.replace(tmp, name)
        elif not _place_new_in(refs, tmp, name) and (now := _read_ref_in(refs, name)) != commit:
            raise TargetExists(f"{_moved(plan, now)}; the files are in the cache as commit "
                               f"{commit}")
    finally:
        refs.remove(tmp)


class _Folders:
    """The repo's folders, open by handle below the hub cache, and which of them this
    write made (so a failed write removes those it left empty)."""

    def __init__(self, hub: Folder) -> None:
        self.hub = hub
        self._open: list[Folder] = [hub]
        self._made: list[tuple[Folder, str]] = []  # (holder, name), outermost first

    def make(self, holder: Folder, name: str) -> Folder:
        """The folder ``name`` in ``holder``, made if missing, opened without following
        a link.

        Raises:
            UnsafePath: a link or a file is there (it could lead out of the hub cache).
        """
        existed = holder.kind(name) is not None
        try:
            inner = holder.make(name, exist_ok=True)
        except UnsafePath as exc:
            raise UnsafePath(f"{holder.path(name)} is a link or not a folder: a folder of "
                             f"the repo must not lead outside the hub cache "
                             f"{self.hub.shown}; nothing was written through it") from exc
        if not existed:  # made by another writer at the same moment: not ours to remove
            self._made.append((holder, name))
        self._open.append(inner)
        return inner

    def discard_made(self) -> None:
        for holder, name in reversed(self._made):  # deepest first; one holding anything stays
            with contextlib.suppress(OSError):
                holder.rmdir(name)
        self._made.clear()

    def __enter__(self) -> _Folders:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for folder in reversed(self._open):
            folder.close()


def _files(exporter: Exporter, root: CID) -> list[tuple[str, CID, int]]:
    """Every file of the tree as (relative path, CID, declared size), sorted by path; every
    name is checked before anything below it is read (see ``Exporter.tree``).

    Raises:
        UnsafePath: an entry name could leave its folder.
        IntegrityError: a folder lists a name twice.
        DagTooLarge: the tree is deeper or has more entries than the bounds.
    """
    found: list[tuple[str, CID, int]] = []
    for item in exporter.tree(root):
        seen: set[str] = set()
        for name, _ in item.children:
            check_entry_name(name)
            if name in seen:  # two files for one snapshot path: which would it be?
                raise IntegrityError(f"{cid_str(item.entry.cid)} lists {name!r} twice")
            seen.add(name)
        if item.entry.kind == "file":
            found.append((item.path, item.entry.cid, item.entry.size))
    found.sort()
    return found


def _plan_links(files: list[tuple[str, str]], snapshot: Folder, folders: _Folders,
                replace: bool) -> list[tuple[Folder, str, str]]:
    """The snapshot symlinks to create, as (open folder, name, target), checked before any
    is: a file already in the snapshot that points to another blob is a conflict unless
    ``replace``. The folders they need are made (by handle) here."""
    plan: list[tuple[Folder, str, str]] = []
    opened: dict[str, Folder] = {"": snapshot}
    for rel, etag in files:
        parent, _, name = rel.rpartition("/")
        into = _snapshot_folder(parent, opened, folders)
        target = "../" * (rel.count("/") + 2) + f"blobs/{etag}"
        kind = into.kind(name)
        if kind == "link" and into.readlink(name) == target:
            continue  # already there: a repeated fetch changes nothing
        if kind is not None and not replace:
            raise TargetExists(f"{into.path(name)} already exists and names other content; "
                               "pass replace=true to replace it")
        if kind == "dir":
            raise TargetExists(f"{into.path(name)} is a folder in the snapshot; a file "
                               "cannot replace it")
        plan.append((into, name, target))
    return plan


def _snapshot_folder(rel: str, opened: dict[str, Folder], folders: _Folders) -> Folder:
    """The snapshot's folder ``rel`` (``a/b``), made and opened one component at a time
    from the nearest one already open."""
    if rel not in opened:
        holder, _, name = rel.rpartition("/")
        opened[rel] = folders.make(_snapshot_folder(holder, opened, folders), name)
    return opened[rel]


def _place_link(into: Folder, name: str, target: str) -> None:
    """Create (or replace) a snapshot symlink atomically: a temp link, then a rename."""
    tmp = f".{name}.{uuid.uuid4().hex}.incomplete"
    into.symlink(target, tmp)
    try:
        into.replace(tmp, name)
    finally:
        into.remove(tmp)


def _hash_fd(fd: int) -> str:
    digest = hashlib.sha256()
    with os.fdopen(fd, "rb") as stream:
        while piece := stream.read(_READ_CHUNK):
            digest.update(piece)
    return digest.hexdigest()


def _open_folder(path: Path) -> Folder:
    """The folder at ``path`` (a caller's path, resolved this once), open by handle."""
    return Folder(os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), path)


def verify_existing(blob: Path, etag: str) -> None:
    """Raises:
        IntegrityError: ``blob`` is not a regular file whose bytes hash to ``etag``.
    """
    with _open_folder(blob.parent) as folder:
        _verify_existing_in(folder, blob.name, etag)


def _verify_existing_in(folder: Folder, name: str, etag: str) -> None:
    try:
        good = _hash_fd(folder.open_read(name)) == etag
    except (UnsafePath, FileNotFoundError):
        good = False
    if not good:
        raise IntegrityError(
            f"{folder.path(name)} exists but is not a file whose bytes hash to its name (a "
            "corrupt or tampered cache file); it was left as it is. Delete it and fetch again")


def write_blob(pieces: Iterable[bytes], cid: CID, size: int, blobs: Path | Folder,
               why_copied: str = "") -> BlobWritten:
    """Copy a file's bytes (``pieces``, verified) into ``blobs/<sha256>``: into a temp inside
    the repo folder first, then verified by reading it back, then linked into place without
    ever replacing an existing blob (one that is already there is verified instead). Every
    step names one entry of the open ``blobs`` folder (a path is opened once, here).

    Raises:
        IntegrityError: more bytes than ``size``, the temp changed, or an existing blob
            does not hash to its name.
        DiskFull: the disk filled up.
    """
    if isinstance(blobs, Path):
        with _open_folder(blobs) as folder:
            return write_blob(pieces, cid, size, folder, why_copied)
    sha256 = hashlib.sha256()
    tmp = f".{uuid.uuid4().hex}.incomplete"
    try:
        written = 0
        with os.fdopen(blobs.create(tmp), "wb") as out:
            for piece in pieces:
                written += len(piece)
                if written > size:
                    raise IntegrityError(f"{cid_str(cid)} holds more than the {size} bytes "
                                         "it declares; nothing was kept")
                sha256.update(piece)
                out.write(piece)
            out.flush()
            os.fsync(out.fileno())
        etag = sha256.hexdigest()
        if _hash_fd(blobs.open_read(tmp)) != etag:
            raise IntegrityError(f"{blobs.path(tmp)} changed while it was written; nothing "
                                 "was kept")
        if not _place_new_in(blobs, tmp, etag):
            _verify_existing_in(blobs, etag, etag)
    except OSError as exc:
        if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
            raise DiskFull(f"the disk holding {blobs.shown} is full; the partial file was "
                           "removed") from exc
        raise
    finally:
        blobs.remove(tmp)
    return BlobWritten(etag, why_copied=why_copied or "copied", written=written)


def place_blob(tmp: Path, blob: Path, moved: Callable[[], None] | None = None) -> None:
    """Give the complete, verified ``tmp`` the name ``blob`` (in the same folder) without
    ever replacing an existing blob (one already there is verified instead). ``tmp`` is
    left for the caller to remove, unless a file system without hard links renamed it.

    ``moved`` runs once ``blob`` holds the bytes and before ``tmp`` can be gone (the
    receiver moves its references then): with hard links both names stay valid until the
    caller removes ``tmp``; without, ``tmp`` is renamed first, and ``moved`` follows.

    Raises:
        IntegrityError: an existing blob does not hash to its name.
        OSError: as raised by the file system.
    """
    if tmp.parent != blob.parent:
        raise InvalidInput(f"{tmp} and {blob} must be in one folder")
    with _open_folder(blob.parent) as folder:
        if not _place_new_in(folder, tmp.name, blob.name):
            _verify_existing_in(folder, blob.name, blob.name)
    if moved is not None:
        moved()


def _place_new_in(folder: Folder, tmp: str, dest: str) -> bool:
    """Give ``tmp`` the name ``dest`` (both entries of ``folder``) only if nothing has it
    (True); False leaves ``dest`` as it is. A hard link where the file system has them
    (``tmp`` stays for the caller to remove), else a rename after looking once more.

    Raises:
        OSError: as raised by the file system.
    """
    try:
        folder.link(tmp, dest)  # fails if dest exists: never replaces it
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        if folder.kind(dest) is not None:
            return False
        folder.rename(tmp, dest)
    return True
