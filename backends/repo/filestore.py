"""The filestore: raw leaf blocks kept as references into files, not as copies (``--nocopy``).

A model in the HuggingFace cache is already on disk as ``blobs/<etag>``; storing its leaves
again as blocks would double the disk it takes. A *reference* records where a leaf's bytes
are, ``(file, offset, length)``, under the leaf's multihash, as Kubo's filestore records a
``DataObj{FilePath, Offset, Size}``. Only raw leaves are kept this way (``--nocopy`` implies
raw leaves); internal and root nodes are ordinary blocks in ``blocks/``.

On disk (inside the repo folder)::

    filestore/
      refs.sqlite               one table, one row per referenced leaf:
                                  refs(multihash BLOB PRIMARY KEY,  -- the leaf's multihash
                                       path TEXT,                   -- resolved, absolute
                                       offset INTEGER,              -- byte offset in path
                                       size INTEGER)                -- the leaf's length
                                  index refs_by_path (path, offset)
      refs.sqlite-wal, -shm     SQLite's write-ahead log while the store is open

SQLite (the standard library's) keeps the index: a transaction is atomic and durable
(``synchronous=FULL``), several processes may share it, and a kill -9 in the middle of an
add leaves either every reference of the transaction or none. Each row costs about a
hundred bytes, so a 1 GiB model with 256 KiB leaves takes about 0.05 % of its size here.
References are written in one transaction per batch (:meth:`Filestore.batch`), after the
leaves were hashed and before the pin that needs them.

A reference is never trusted: every read opens the file (not following a symlink in its
last component, so a swapped-in link cannot redirect it), reads the leaf with ``pread``
(bounded memory, no whole-file read) and rehashes it. A file that changed or got shorter is
an :class:`IntegrityError`, a deleted one a :class:`BlockNotFound`; both name the file and
the offset. The user's files are only ever read: GC and ``--remove-bad-blocks`` drop rows,
never files. :meth:`Filestore.verify` gives Kubo's ``filestore verify`` statuses.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from multiformats import CID

from ipfs_mcp.backends.core.cids import binary_mh_key, cid_str, verify_block
from ipfs_mcp.backends.errors import BlockNotFound, IntegrityError, IpfsMcpError

# Kubo's filestore statuses (filestore/util.go): ok, changed (bytes differ or the file is
# shorter), no-file (the file is gone), error (it cannot be read), missing (no reference).
RefStatus = Literal["ok", "changed", "no-file", "error", "missing"]
BAD_STATUSES: frozenset[str] = frozenset({"changed", "no-file", "error", "missing"})

_SCHEMA = ("CREATE TABLE IF NOT EXISTS refs (multihash BLOB PRIMARY KEY, path TEXT NOT NULL, "
           "offset INTEGER NOT NULL, size INTEGER NOT NULL) WITHOUT ROWID")
# By file: a received blob's references move with its rename, and resume lists them.
_PATH_INDEX = "CREATE INDEX IF NOT EXISTS refs_by_path ON refs (path, offset)"
_BUSY_TIMEOUT = 60.0  # seconds another process may hold the write lock (one add's commit)


@dataclass(frozen=True, slots=True)
class FileRef:
    """Where a leaf's bytes are."""

    path: str
    offset: int
    size: int


@dataclass(frozen=True, slots=True)
class RefCheck:
    """One reference as ``filestore ls`` / ``filestore verify`` report it."""

    status: RefStatus
    cid: str  # CIDv1 raw of the multihash, as Kubo lists filestore keys
    size: int
    path: str
    offset: int
    detail: str = ""  # why it is not ok

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def leaf_cid(multihash: bytes) -> CID:
    return CID("base32", 1, "raw", multihash)


class _Broken(Exception):
    """A reference that cannot give its bytes (internal: turned into a project error)."""

    def __init__(self, status: RefStatus, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _read_ref(multihash: bytes, ref: FileRef) -> bytes:
    """The leaf's bytes, re-read from its file and re-hashed.

    Raises:
        _Broken: with Kubo's status and a sentence naming the file and offset.
    """
    where = f"{ref.path} at offset {ref.offset}"
    try:
        fd = os.open(ref.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise _Broken("no-file", f"{ref.path} no longer exists (leaf at offset "
                                 f"{ref.offset}, {ref.size} bytes)") from None
    except OSError as exc:
        why = "is now a symlink" if exc.errno == errno.ELOOP else f"cannot be read: {exc.strerror}"
        raise _Broken("error", f"{ref.path} {why} (leaf at offset {ref.offset})") from None
    try:
        parts: list[bytes] = []
        got = 0
        while got < ref.size:  # pread may return less than asked only at the end of the file
            part = os.pread(fd, ref.size - got, ref.offset + got)
            if not part:
                break
            parts.append(part)
            got += len(part)
    except OSError as exc:
        raise _Broken("error", f"cannot read {where}: {exc.strerror}") from None
    finally:
        os.close(fd)
    data = parts[0] if len(parts) == 1 else b"".join(parts)
    if len(data) < ref.size:
        raise _Broken("changed", f"{ref.path} is shorter than when it was added: the "
                                 f"{ref.size}-byte leaf at offset {ref.offset} ends past it")
    try:
        verify_block(leaf_cid(multihash), data)
    except IntegrityError:
        raise _Broken("changed", f"{where} changed since it was added: its "
                                 f"{ref.size} bytes no longer match the leaf's hash") from None
    return data


class Filestore:
    """References into files, keyed by multihash; implements the importer's ``ReferenceSink``."""

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.folder = Path(root) / "filestore"
        self.db_path = self.folder / "refs.sqlite"
        self.fsync = fsync
        self._local = threading.local()
        self._created = False
        self._batch: contextvars.ContextVar[list[tuple[bytes, str, int, int]] | None] = (
            contextvars.ContextVar(f"filestore-batch-{id(self)}", default=None))

    # -- the database ---------------------------------------------------------------------
    def _exists(self) -> bool:
        if not self._created:
            self._created = self.db_path.exists()
        return self._created

    def _db(self) -> sqlite3.Connection:
        """This thread's connection (sqlite3 connections are not shared across threads)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.db_path, timeout=_BUSY_TIMEOUT,
                                       isolation_level=None, check_same_thread=True)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(f"PRAGMA synchronous={'FULL' if self.fsync else 'OFF'}")
                conn.execute(_SCHEMA)
                conn.execute(_PATH_INDEX)
            except (OSError, sqlite3.Error) as exc:
                raise IpfsMcpError(f"cannot open the filestore index {self.db_path}: "
                                   f"{exc}") from exc
            self._local.conn = conn
            self._created = True
        return conn

    def _query(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        if not self._exists():
            return []
        try:
            return self._db().execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise IpfsMcpError(f"cannot read the filestore index {self.db_path}: {exc}") from exc

    def _write(self, sql: str, rows: Iterable[tuple[object, ...]]) -> int:
        conn = self._db()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                cursor = conn.executemany(sql, rows)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return cursor.rowcount
        except sqlite3.Error as exc:
            raise IpfsMcpError(f"cannot write the filestore index {self.db_path}: {exc}") from exc

    # -- writes -----------------------------------------------------------------------------
    def put_reference(self, cid: bytes, path: str, offset: int, size: int) -> None:
        """``ReferenceSink`` for the importer: the leaf ``cid`` (binary CIDv1 raw) is the
        ``size`` bytes of the file ``path`` (resolved, absolute) at ``offset``."""
        row = (binary_mh_key(cid), path, offset, size)
        pending = self._batch.get()
        if pending is None:
            self._write("INSERT OR REPLACE INTO refs VALUES (?, ?, ?, ?)", [row])
        else:
            pending.append(row)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """References put within this block are written in one transaction when it exits
        without an error (an add that failed leaves no reference behind)."""
        if self._batch.get() is not None:
            yield
            return
        pending: list[tuple[bytes, str, int, int]] = []
        token = self._batch.set(pending)
        try:
            yield
        finally:
            self._batch.reset(token)
        if pending:
            self._write("INSERT OR REPLACE INTO refs VALUES (?, ?, ?, ?)", pending)

    def remove(self, multihashes: Iterable[bytes]) -> int:
        """Drop references (never the files); returns how many were dropped."""
        rows = [(m,) for m in multihashes]
        if not rows or not self._exists():
            return 0
        return self._write("DELETE FROM refs WHERE multihash = ?", rows)

    def put_references(self, rows: Iterable[tuple[bytes, str, int, int]]) -> None:
        """Several ``(multihash, path, offset, size)`` rows in one transaction."""
        rows = list(rows)
        if rows:
            self._write("INSERT OR REPLACE INTO refs VALUES (?, ?, ?, ?)", rows)

    def repoint(self, old: str, new: str) -> int:
        """Every reference into the file ``old`` now names ``new`` (the same bytes under a
        new name, e.g. a received blob renamed into place), in one transaction."""
        if not self._exists():
            return 0
        return self._write("UPDATE refs SET path = ? WHERE path = ?", [(new, old)])

    def refs_in(self, path: str) -> list[tuple[bytes, FileRef]]:
        """The references into one file, by offset."""
        return [(bytes(m), FileRef(str(p), int(o), int(s)))  # type: ignore[call-overload]
                for m, p, o, s in self._query(
                    "SELECT multihash, path, offset, size FROM refs WHERE path = ? "
                    "ORDER BY offset", (path,))]

    def drop_unreachable(self, live: set[bytes]) -> int:
        """GC's sweep: drop every reference whose multihash is not in ``live``."""
        return self.remove([m for m, _ in self.iter_refs() if m not in live])

    # -- reads ------------------------------------------------------------------------------
    def ref(self, multihash: bytes) -> FileRef | None:
        rows = self._query("SELECT path, offset, size FROM refs WHERE multihash = ?",
                           (multihash,))
        if not rows:
            return None
        path, offset, size = rows[0]
        return FileRef(str(path), int(offset), int(size))  # type: ignore[call-overload]

    def has(self, multihash: bytes) -> bool:
        return bool(self._query("SELECT 1 FROM refs WHERE multihash = ?", (multihash,)))

    def get(self, cid: CID) -> bytes:
        """The verified bytes of a referenced leaf.

        Raises:
            BlockNotFound: no reference, or its file is gone (the error names the file).
            IntegrityError: the file changed, got shorter or cannot be read (named, with
                the offset); the reference is kept, so ``filestore verify`` reports it.
        """
        ref = self.ref(bytes(cid.digest))
        if ref is None:
            raise BlockNotFound(cid_str(cid), f"the filestore at {self.folder}")
        return self.read(cid, ref)

    @staticmethod
    def read(cid: CID, ref: FileRef) -> bytes:
        """The verified bytes ``ref`` points at, for the leaf ``cid`` (a reference of this
        store, or one a receiver holds until its next commit, see :mod:`.placement`).

        Raises:
            BlockNotFound: the file is gone (named).
            IntegrityError: the file changed, got shorter or cannot be read (named, with
                the offset).
        """
        multihash = bytes(cid.digest)
        try:
            return _read_ref(multihash, ref)
        except _Broken as exc:
            if exc.status == "no-file":
                raise BlockNotFound(cid_str(cid), f"its referenced file: {exc.detail}") from None
            raise IntegrityError(f"referenced block {cid_str(cid)} is bad: {exc.detail}; "
                                 "add the file again or fetch the block") from None

    def iter_refs(self) -> Iterator[tuple[bytes, FileRef]]:
        for multihash, path, offset, size in self._query(
                "SELECT multihash, path, offset, size FROM refs ORDER BY path, offset"):
            yield bytes(multihash), FileRef(str(path), int(offset), int(size))  # type: ignore[call-overload]

    def count(self) -> int:
        rows = self._query("SELECT COUNT(*) FROM refs")
        return int(rows[0][0]) if rows else 0  # type: ignore[call-overload]

    # -- ls / verify --------------------------------------------------------------------------
    def ls(self) -> list[RefCheck]:
        """Every reference, unchecked (``filestore ls``: status ``ok`` means listed)."""
        return [RefCheck("ok", cid_str(leaf_cid(m)), r.size, r.path, r.offset)
                for m, r in self.iter_refs()]

    def check(self, multihash: bytes, ref: FileRef | None = None) -> RefCheck:
        """One reference re-read and re-hashed; ``missing`` when there is none."""
        ref = ref or self.ref(multihash)
        cid = cid_str(leaf_cid(multihash))
        if ref is None:
            return RefCheck("missing", cid, 0, "", 0, "no reference for this block")
        try:
            _read_ref(multihash, ref)
        except _Broken as exc:
            return RefCheck(exc.status, cid, ref.size, ref.path, ref.offset, exc.detail)
        return RefCheck("ok", cid, ref.size, ref.path, ref.offset)

    def verify(self, *, remove_bad_blocks: bool = False) -> list[RefCheck]:
        """Every reference checked (``filestore verify``), in file and offset order; with
        ``remove_bad_blocks`` the bad ones are dropped (the files stay as they are)."""
        results = [self.check(m, r) for m, r in self.iter_refs()]
        if remove_bad_blocks:
            self.remove(bytes(leaf_cid_digest(c.cid)) for c in results if not c.ok)
        return results


def leaf_cid_digest(cid: str) -> bytes:
    return bytes(CID.decode(cid).digest)
