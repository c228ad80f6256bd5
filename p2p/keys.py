"""The node's signing keys for IPNS: ``self`` (the node identity) and named Ed25519 keys.

::

    <repo>/
      identity.key          "self": the node's peer id is its name     (identity.py)
      keys/
        <name>.key          a named key, libp2p protobuf PrivateKey, mode 0600

Named keys are written as the identity is (temp file, synced, linked into place), with
the identity's permissions, and a name is taken at most once: generating a key under a
name that exists is refused, never an overwrite.
"""

from __future__ import annotations

import re
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.keys import KeyPair

from ipfs_mcp.backends.core.ipns import KeyInfo, ipns_name, key_multihash
from ipfs_mcp.backends.errors import InvalidInput, IpfsMcpError, NotFound

from .identity import read_key_pair, write_private_key

__all__ = ["KeyStore", "SELF"]

SELF = "self"
KEYS_FOLDER = "keys"
# A file name on every system, and no path: letters, digits, '.', '_', '-'; no leading dot.
_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$")


def signing_key(pair: KeyPair) -> Ed25519PrivateKey:
    """The ``cryptography`` form of a libp2p Ed25519 key pair (what records are signed with).

    Raises:
        InvalidInput: the key is not Ed25519.
    """
    seed = pair.private_key.to_bytes()
    if len(seed) != 32:
        raise InvalidInput("IPNS keys here are Ed25519; this key is of another type")
    return Ed25519PrivateKey.from_private_bytes(seed)


class KeyStore:
    """The keys in a repo folder; ``identity`` is the node's own key pair (``self``)."""

    def __init__(self, folder: Path, identity: KeyPair) -> None:
        self.folder = Path(folder) / KEYS_FOLDER
        self.identity = identity

    def _path(self, name: str) -> Path:
        if name == SELF or not _NAME.match(name):
            raise InvalidInput(f"a key name is 1-64 letters, digits, '.', '_' or '-' and not "
                               f"{SELF!r}; not {name[:70]!r}")
        return self.folder / f"{name}.key"

    def pair(self, name: str = SELF) -> KeyPair:
        """The key pair called ``name``.

        Raises:
            NotFound: no such key.
            InvalidInput: not a key name.
            IpfsMcpError: the key file is unreadable or not a key.
        """
        if name == SELF:
            return self.identity
        path = self._path(name)
        try:
            return read_key_pair(path)
        except FileNotFoundError as exc:
            raise NotFound(f"no key named {name!r} (see the key list)") from exc

    def info(self, name: str = SELF) -> KeyInfo:
        """Raises: as :meth:`pair`."""
        return KeyInfo(name, ipns_name(key_multihash(signing_key(self.pair(name)).public_key())))

    def keys(self) -> list[KeyInfo]:
        """``self`` first, then the named keys by name.

        Raises:
            IpfsMcpError: a key file is unreadable.
        """
        found = [self.info(SELF)]
        try:
            names = sorted(p.stem for p in self.folder.glob("*.key") if _NAME.match(p.stem))
        except OSError as exc:
            raise IpfsMcpError(f"cannot list the keys in {self.folder}: {exc}") from exc
        found.extend(self.info(name) for name in names)
        return found

    def generate(self, name: str) -> KeyInfo:
        """A new Ed25519 key called ``name``.

        Raises:
            InvalidInput: ``self``, not a key name, or a name already taken.
            IpfsMcpError: the key cannot be written.
        """
        path = self._path(name)
        pair = create_new_key_pair()
        try:
            write_private_key(path, pair.private_key.serialize(), replace=False)
        except FileExistsError as exc:
            raise InvalidInput(f"a key named {name!r} exists already") from exc
        return self.info(name)
