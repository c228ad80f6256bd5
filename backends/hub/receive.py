"""Fetching a model into the HuggingFace cache, each byte written once.

``fetch_cid(into_hf_cache=...)`` and ``ipfs-mcp get --hf`` come here. For every file of
the folder whose leaves are raw blocks (``--nocopy``/``--raw-leaves``/CIDv1 adds, which
is what ``store_model`` gives for a hub model), the file is built by :mod:`.receiver`
straight into ``blobs/<cid>.incomplete`` as its leaves arrive, and its leaves are kept as
filestore references into it: the repo holds no copy. Other files (dag-pb leaves) are
fetched as blocks and copied, as before, and the result says which and why.

huggingface_hub's own rule holds: a blob becomes visible only when the whole file is
complete and verified. Until then it is ``blobs/<cid>.incomplete`` (the CID, not the
sha256, which is only known at the end, names it, so a later fetch finds it again);
nothing in ``snapshots/`` points to it, and huggingface_hub never looks at it.

Finishing a file, in this order:

1. the read-back ends: every leaf verified in place, the sha256 known, the file fsynced;
2. ``os.link(incomplete, blobs/<sha256>)``: both names now hold the same bytes;
3. the references move to the final name (``UPDATE refs SET path``, one transaction);
4. the ``.incomplete`` name is removed; the snapshot symlink is created later, once every
   file of the folder is in place (hf_layout), and the ref moves last.

A crash at any point leaves references that name an existing file with the right bytes:
before 3 they name the ``.incomplete`` (still there), after 3 the blob. The next fetch
repairs the rest: it finds the ``.incomplete``, checks its references, fetches nothing it
has, and redoes 2-4 (an existing blob is verified, never replaced). We chose this over
writing references against the final name up front because that name is the sha256, which
is not known until the last byte is in. On a file system without hard links step 2 is a
rename and 3 follows it; a crash between them leaves references to the vanished
``.incomplete``, which the next fetch finds bad and drops (it then fetches those leaves
again: slower, never wrong).

An interrupted fetch (Ctrl-C, a timeout, kill -9) keeps the ``.incomplete`` and the
references committed into it, so the next fetch resumes; ``repo gc`` may drop references
of a fetch that is not running (nothing pins them), which only costs the resume.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from multiformats import CID

from ipfs_mcp.backends.backend import Backend
from ipfs_mcp.backends.core.cids import cid_str, split_path
from ipfs_mcp.backends.errors import IntegrityError
from ipfs_mcp.backends.hub import layout as hf_layout
from ipfs_mcp.backends.hub import models as hub
from ipfs_mcp.backends.repo.receiver import FileLayout, file_layout, holds, receive
from ipfs_mcp.backends.repo.repository import Repo

ProgressFn = Callable[[int], None]
_RAW = 0x55


def export_model(backend: Backend, hub_cache: Path, cid: str,
                 repo_id: str | hf_layout.RevisionPlan, *, revision: str | None = None,
                 commit: str | None = None, replace: bool = False,
                 max_bytes: int | None = None,
                 progress: hf_layout.SizedProgress | None = None,
                 nocopy: bool = True) -> hf_layout.HFWriteResult:
    """Write the folder DAG ``cid[/path]`` into the hub cache as ``repo_id@revision``
    (or as a plan already made to ask the user, see :func:`.layout.plan_revision`), each
    raw-leaf file written once as it arrives (see the module docstring). ``progress`` is
    told the bytes of the files before the first arrives, then hears each as it is written.

    Without the embedded repo (a Kubo backend) or with ``nocopy=False`` every file is
    copied, as :func:`.hub.export_model` does.

    Raises:
        TargetExists: the revision already names other content and not ``replace``, or it
            moved since the plan.
        InvalidInput: not a folder, unsafe names, or a revision named like a commit.
        WriteTooLarge: the declared size does not fit.
        DiskFull: the file system filled up (what was received is kept for a resume).
    """
    plan = hf_layout.as_plan(hub_cache, repo_id, revision)
    repo = backend.repo
    if not nocopy or repo is None or repo.filestore is None:
        return hub.export_model(backend, hub_cache, cid, plan, commit=commit,
                                replace=replace, max_bytes=max_bytes, progress=progress)
    root, path = split_path(cid)
    walker = backend.exporter()  # block by block: internal nodes only, never the leaves
    resolved = walker.resolve(root, path) if path else root
    walker.check_fits(resolved, hub_cache, max_bytes)
    writer = _ReceivingWriter(backend, repo, progress)
    # Held shared while receiving, so a GC cannot drop the references being written.
    with repo.writing():
        return hf_layout.write_snapshot(walker, resolved, hub_cache, plan, commit=commit,
                                        replace=replace, max_bytes=max_bytes,
                                        blob_writer=writer, progress=progress)


class _ReceivingWriter:
    """A ``BlobWriter`` that receives raw-leaf files in place and copies the others."""

    def __init__(self, backend: Backend, repo: Repo, progress: ProgressFn | None) -> None:
        self.backend = backend
        self.repo = repo
        self.progress = progress

    def _read(self, cid: CID) -> Iterator[bytes]:
        # A whole-file read: the first missing leaf fetches the file's DAG at once.
        return self.backend.cat_stream(cid_str(cid))

    def __call__(self, cid: CID, size: int, blobs: Path) -> hf_layout.BlobWritten:
        layout = file_layout(self.backend.exporter().load, cid, size)
        if isinstance(layout, str):
            return hf_layout.write_blob(hf_layout.counted(self._read(cid), self.progress),
                                        cid, size, blobs,
                                        why_copied=f"copied: {layout}")
        return self._receive(layout, blobs)

    def _already_here(self, layout: FileLayout, blobs: Path) -> str | None:
        """The etag of a blob of this folder that an earlier fetch completed (its first
        leaf's reference names it) and that holds every leaf of this file at its offset,
        all verified; else None."""
        filestore = self.repo.filestore
        assert filestore is not None
        ref = filestore.ref(bytes(layout.slots[0].cid.digest)) if layout.slots else None
        if ref is None:
            return None
        blob = Path(ref.path)
        if blob.parent != blobs or blob.name.endswith(".incomplete"):
            return None
        try:
            if not holds(blob, layout):
                return None
            hf_layout.verify_existing(blob, blob.name)
        except (OSError, IntegrityError):
            return None
        return blob.name

    def _receive(self, layout: FileLayout, blobs: Path) -> hf_layout.BlobWritten:
        etag = self._already_here(layout, blobs)
        if etag is not None:
            if self.progress is not None:
                self.progress(layout.size)
            return hf_layout.BlobWritten(etag, by_reference=True)
        incomplete = blobs / f"{cid_str(layout.cid)}.incomplete"
        got = receive(layout, incomplete, self.repo.blocks, self._read, self.progress)
        blob = blobs / got.sha256
        filestore = self.repo.filestore
        assert filestore is not None
        try:
            hf_layout.place_blob(incomplete, blob,
                                 moved=lambda: filestore.repoint(str(incomplete), str(blob)))
        except FileNotFoundError:
            # Another fetch of the same file (the server and the CLI at once) finished
            # first and removed the .incomplete name: its blob must be ours, byte for byte.
            hf_layout.verify_existing(blob, blob.name)
            filestore.repoint(str(incomplete), str(blob))
        with contextlib.suppress(FileNotFoundError):
            incomplete.unlink()
        key = bytes(layout.cid.digest)
        ref = filestore.ref(key)
        if layout.cid.codec.code == _RAW and ref is not None and ref.path == str(blob):
            # A one-block file arrived as a block while the folder was sized (every entry's
            # root is read then, before any layout is known): the blob holds it now and the
            # reference serves it, so the copy in blocks/ goes.
            self.repo.blocks.delete_path(self.repo.blocks.path_of(key))
        return hf_layout.BlobWritten(got.sha256, by_reference=True, resumed=got.resumed,
                                     written=got.placed_bytes + got.copied_bytes)
