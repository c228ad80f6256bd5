"""The node's persistent Ed25519 identity, and the reading and writing of key files.

Stored as ``identity.key`` in the repo folder: the private key in libp2p's protobuf
encoding (``crypto.pb.PrivateKey``, the same bytes Kubo base64-encodes into its config),
file mode 0600. Written to a temp file and renamed, so a crash never leaves half a key.
"""

from __future__ import annotations

import logging
import os
import stat
import uuid
from pathlib import Path

from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.serialization import deserialize_private_key

from ipfs_mcp.backends.errors import IpfsMcpError

log = logging.getLogger(__name__)

IDENTITY_FILE = "identity.key"


def load_or_create_identity(repo_path: Path) -> KeyPair:
    """The key pair stored in ``repo_path/identity.key``, created on first use.

    Raises:
        IpfsMcpError: the file exists but is not a private key, or cannot be written.
    """
    path = Path(repo_path) / IDENTITY_FILE
    try:
        return read_key_pair(path)
    except FileNotFoundError:
        pair = create_new_key_pair()
        write_private_key(path, pair.private_key.serialize())
        return pair


def read_key_pair(path: Path) -> KeyPair:
    """The key pair in ``path`` (libp2p's protobuf ``PrivateKey``), its mode kept at 0600.

    Raises:
        FileNotFoundError: there is no such file.
        IpfsMcpError: the file is not a private key, or cannot be read.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise IpfsMcpError(f"cannot read the key {path}: {exc.strerror}") from exc
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        # Someone loosened it; a key readable by others lets them impersonate us.
        log.warning("key %s had mode %o; tightening to 0600", path, mode)
        path.chmod(0o600)
    try:
        private = deserialize_private_key(raw)
    except Exception as exc:  # the library raises assorted errors for bad key bytes
        raise IpfsMcpError(f"{path} is not a libp2p private key: {exc}") from exc
    return KeyPair(private, private.get_public_key())


def write_private_key(path: Path, data: bytes, *, replace: bool = True) -> None:
    """Write key bytes as ``path``, mode 0600 from the first byte: a temp file, synced,
    then renamed (``replace=False``: linked, so an existing key is never overwritten).

    Raises:
        FileExistsError: ``replace`` is False and ``path`` exists.
        IpfsMcpError: the key cannot be written.
    """
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # atomic, and refuses a name that is taken
    except FileExistsError:
        raise
    except OSError as exc:
        raise IpfsMcpError(f"cannot write the key {path}: {exc.strerror}") from exc
    finally:
        tmp.unlink(missing_ok=True)
