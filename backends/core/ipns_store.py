"""The repo's IPNS records: one signed record per name, kept on disk so that the node, the
CLI and the gateway resolve a name offline from it (as Kubo resolves from its datastore
after ``ipfs routing put --allow-offline``).

::

    <repo>/ipns-published/<k51…>.ipns   the best record held for that name: the one we
                                        last published under our key, or one put here
                                        (``ipfs-mcp routing put``), each as signed

A record is validated before it is kept (signature, the name's key, validity) and never
replaces a better one (higher sequence, then longer validity: the order every resolver
uses). Files are written mode 0600 through a temp file and a rename, so a reader never
sees half a record.
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

from ipfs_mcp.backends.errors import InvalidRecord, IpfsMcpError

from . import ipns

log = logging.getLogger(__name__)

__all__ = ["RECORDS_FOLDER", "RecordStore"]

RECORDS_FOLDER = "ipns-published"


class RecordStore:
    """The IPNS records a repo holds, by name (blocking: call from a worker thread)."""

    def __init__(self, repo_path: Path) -> None:
        self.folder = Path(repo_path) / RECORDS_FOLDER

    def path(self, name: str) -> Path:
        """Where ``name``'s record is kept (any spelling of a key's name maps to its k51…).

        Raises:
            InvalidInput: not a key's name.
        """
        key_name = ipns.ipns_name(ipns.name_multihash(name))
        return self.folder / f"{key_name.removeprefix('/ipns/')}.ipns"

    def held(self, name: str) -> ipns.IpnsRecord | None:
        """The record held for ``name``, expired or not (an expired one still holds its
        sequence); None when there is none or it no longer validates.

        Raises:
            InvalidInput: not a key's name. IpfsMcpError: the file cannot be read.
        """
        path = self.path(name)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise IpfsMcpError(f"cannot read the held record of {name}: {exc}") from exc
        try:
            return ipns.parse_record(name, raw)
        except InvalidRecord as exc:
            log.warning("ipns: the held record of %s is invalid (%s); ignored", name, exc)
            return None

    def valid(self, name: str) -> ipns.IpnsRecord | None:
        """The held record of ``name`` when it is still valid (not expired), else None.

        Raises:
            InvalidInput, IpfsMcpError: as :meth:`held`.
        """
        record = self.held(name)
        if record is None:
            return None
        try:
            return ipns.validate_record(name, record.raw)
        except InvalidRecord:
            return None

    def put(self, name: str, raw: bytes) -> ipns.IpnsRecord:
        """Validate ``raw`` as a record of ``name`` and keep it unless a better one is held.

        Raises:
            InvalidRecord: malformed, badly signed, another key's, expired, or older than
                the record held (a lower sequence, or the same with a shorter validity).
            InvalidInput: not a key's name. IpfsMcpError: it cannot be written.
        """
        record = ipns.validate_record(name, raw)
        current = self.held(name)
        if current is not None and current.raw != raw and \
                ipns.best_record([current, record]) is current:
            raise InvalidRecord(f"a better record of {record.name} is held (sequence "
                                f"{current.sequence}, valid until {current.validity})")
        self.keep(record)
        return record

    def keep(self, record: ipns.IpnsRecord) -> None:
        """Write ``record`` as its name's held record (the caller made or validated it).

        Raises:
            IpfsMcpError: it cannot be written.
        """
        path = self.path(record.name)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(record.raw)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise IpfsMcpError(f"cannot keep the record of {record.name}: {exc}") from exc
