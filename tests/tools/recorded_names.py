"""A small in-memory NameSystem for tests of the layers above it (the name tools, the CLI's
and the gateway's wiring): it keeps each key's records as a network would, so another
publisher's newer record can be planted. The real ones (our node, Kubo) are tested on their
own and end to end."""

from __future__ import annotations

import hashlib

from multiformats import CID

from ipfs_mcp.backends.errors import InvalidInput, NameNotFound
from ipfs_mcp.backends.names import KeyInfo, NameRecord


def _name_of(key: str) -> str:
    digest = hashlib.sha256(key.encode()).digest()
    return "/ipns/" + CID("base36", 1, "libp2p-key", ("sha2-256", digest)).encode()


class RecordedNameSystem:
    def __init__(self) -> None:
        self.key_names: dict[str, str] = {"self": _name_of("self")}
        self.network: dict[str, NameRecord] = {}  # by /ipns/ name: the best record known
        self.published: dict[str, NameRecord] = {}  # by key: what this node published
        self.publishes = 0

    async def publish(self, value: str, *, key: str = "self", lifetime_seconds: float = 48 * 3600,
                      ttl_seconds: float = 300) -> NameRecord:
        name = self.key_names[key]
        held = self.network.get(name)
        record = NameRecord(name, value, (held.sequence + 1) if held else 0,
                            "2099-01-01T00:00:00Z", ttl_seconds, "local")
        self.network[name] = self.published[key] = record
        self.publishes += 1
        return record

    async def resolve(self, name: str) -> NameRecord:
        try:
            return self.network[name if name.startswith("/ipns/") else f"/ipns/{name}"]
        except KeyError:
            raise NameNotFound(f"no record for {name}") from None

    async def last_published(self, key: str = "self") -> NameRecord | None:
        return self.published.get(key)

    async def keys(self) -> list[KeyInfo]:
        return [KeyInfo(name, ipns) for name, ipns in sorted(self.key_names.items())]

    async def generate_key(self, name: str) -> KeyInfo:
        if name in self.key_names:
            raise InvalidInput(f"a key named {name!r} exists")
        self.key_names[name] = _name_of(name)
        return KeyInfo(name, self.key_names[name])

    def plant(self, name: str, value: str, sequence: int) -> None:
        """Another publisher's record under ``name`` (``/ipns/…``)."""
        self.network[name] = NameRecord(name, value, sequence, None, 60.0, "dht")


class RecordedRecords(RecordedNameSystem):
    """The recorded NameSystem that also hands out each name's record as bytes (a stand-in
    for the signed protobuf, which only the node's own system makes)."""

    async def ipns_record(self, name: str) -> bytes | None:
        record = self.network.get(name)
        return None if record is None else f"{record.value}@{record.sequence}".encode()
