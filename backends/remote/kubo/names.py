"""Kubo as the name system: the ``NameSystem`` protocol over Kubo's commands.

Where the backend is Kubo (or a cluster in front of Kubo), names are Kubo's: it signs with
its keys (``key/gen``, ``key/list``), publishes (``name/publish``) and looks records up in
its routing (``name/get``). What Kubo answers is checked here like any peer's record: the
raw record from ``name/get`` must validate for the name (signature, validity, size) before
its value, sequence and validity are reported, so a record is never taken on Kubo's word.

The commands are blocking (httpx or a child process), so they run in worker threads, each
bounded by the transport's own timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread

from ipfs_mcp.backends.core import ipns
from ipfs_mcp.backends.core.ipns import KeyInfo, NameRecord
from ipfs_mcp.backends.errors import InvalidInput, IpfsMcpError, NameNotFound, NotFound, Timeout
from ipfs_mcp.backends.remote.kubo.transport import KuboTransport

__all__ = ["KuboNames"]

_T = TypeVar("_T")
SELF = "self"


def _seconds(value: float) -> str:
    """A Go duration Kubo parses (``172800s``)."""
    return f"{max(0, round(value))}s"


class KuboNames:
    """IPNS through a Kubo daemon (see the module docstring)."""

    def __init__(self, transport: KuboTransport) -> None:
        self.transport = transport

    async def _call(self, fn: Callable[[], _T]) -> _T:
        return await anyio.to_thread.run_sync(fn, abandon_on_cancel=True)

    def _translated(self, exc: IpfsMcpError, name: str) -> IpfsMcpError:
        text = str(exc).lower()
        if isinstance(exc, Timeout | NotFound):
            return exc
        if "not found" in text and "routing" in text:
            return NameNotFound(f"{self.transport.node} has no record of {name}")
        if "no key by the given name" in text:
            return NotFound(f"{self.transport.node} has no key named {name!r}")
        if "already exists" in text:
            return InvalidInput(f"{self.transport.node} has a key named {name!r} already")
        return exc

    def _record(self, name: str) -> ipns.IpnsRecord:
        """The record Kubo's routing holds for ``name``, validated here."""
        try:
            chunks = self.transport.stream("name/get", name, search=True)
            raw = b""
            for chunk in chunks:
                raw += chunk
                if len(raw) > ipns.MAX_RECORD_SIZE:
                    break  # validation refuses it for its size; read no further
        except IpfsMcpError as exc:
            raise self._translated(exc, name) from exc
        return ipns.validate_record(name, raw)

    async def resolve(self, name: str) -> NameRecord:
        key_name = ipns.ipns_name(ipns.name_multihash(name))
        record = await self._call(lambda: self._record(key_name))
        return record.to_name_record("kubo")

    async def publish(self, value: str, *, key: str = SELF, lifetime_seconds: float = 48 * 3600,
                      ttl_seconds: float = 300) -> NameRecord:
        if not value.startswith(("/ipfs/", "/ipns/")):
            raise InvalidInput(f"an IPNS value is a path /ipfs/… or /ipns/…, not {value[:60]!r}")

        def publish() -> ipns.IpnsRecord:
            try:
                answers = self.transport.records("name/publish", value, options={
                    "key": key, "lifetime": _seconds(lifetime_seconds),
                    "ttl": _seconds(ttl_seconds), "ipns-base": "base36",
                    # The value is a path we checked; Kubo need not fetch it first, and a
                    # Kubo with no peers still holds and serves the record.
                    "resolve": False, "allow-offline": True})
            except IpfsMcpError as exc:
                raise self._translated(exc, key) from exc
            name = str(answers[0].get("Name", "")) if answers else ""
            return self._record(ipns.ipns_name(ipns.name_multihash(name)))

        return (await self._call(publish)).to_name_record("kubo")

    async def last_published(self, key: str = SELF) -> NameRecord | None:
        known = {k.name: k for k in await self.keys()}
        if key not in known:
            raise NotFound(f"{self.transport.node} has no key named {key!r}")
        try:
            record = await self._call(lambda: self._record(known[key].ipns_name))
        except NameNotFound:
            return None
        return record.to_name_record("kubo")

    async def keys(self) -> list[KeyInfo]:
        answers = await self._call(lambda: self.transport.records(
            "key/list", options={"ipns-base": "base36"}))
        keys = [k for answer in answers for k in answer.get("Keys") or []]
        return [KeyInfo(str(k["Name"]), ipns.ipns_name(ipns.name_multihash(str(k["Id"]))))
                for k in keys]

    async def generate_key(self, name: str) -> KeyInfo:
        if name == SELF or not name or "/" in name:
            raise InvalidInput(f"a key name is not {SELF!r}, empty or a path; not {name!r}")

        def generate() -> list[dict[str, object]]:
            try:
                return self.transport.records("key/gen", name, options={
                    "type": "ed25519", "ipns-base": "base36"})
            except IpfsMcpError as exc:
                raise self._translated(exc, name) from exc

        answer = (await self._call(generate))[0]
        return KeyInfo(str(answer["Name"]), ipns.ipns_name(ipns.name_multihash(str(answer["Id"]))))
