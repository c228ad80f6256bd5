"""Names that move, for the name tools, the CLI and the gateway: a name (an IPNS key's
``/ipns/k51…`` or a DNSLink domain) resolved to ``/ipfs/<cid>[/path]``, and a value
published under a key.

A name resolves through the :class:`~ipfs_mcp.backends.names.NameSystem` it is given (our
node, or Kubo) when it is a key, and through DNSLink when it is a domain (a label with a
dot). A value that is itself a name is followed, as Kubo does, to a depth of
:data:`MAX_DEPTH`; a name met twice is a loop and refused.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import anyio
from multiformats import CID
from pydantic import BaseModel, Field

from ipfs_mcp.backends.core import ipns
from ipfs_mcp.backends.core.ipns_store import RecordStore
from ipfs_mcp.backends.errors import (
    InvalidInput,
    NameNotFound,
    NetworkError,
    NodeNotRunning,
    Unsupported,
)
from ipfs_mcp.backends.names import KeyInfo, NameRecord, NameSystem
from ipfs_mcp.backends.retrieval.dnslink import (
    DnsLinkResolver,
    DnsTxtLookup,
    normalize_domain,
)

MAX_DEPTH = 32  # Kubo's DefaultDepthLimit
MAX_NAME_PATH = 4096  # a name and its path, as written by a caller


@dataclass(frozen=True)
class Resolved:
    """A name resolved: where it points now, each name followed on the way, and how long
    the shortest-lived step may be cached."""

    name: str  # as asked, normalised: ``/ipns/<name>[/path]``
    path: str  # ``/ipfs/<cid>[/path]``, or ``/ipns/…`` when not followed (recursive=False)
    steps: tuple[str, ...]  # ``/ipns/<name>`` of every record read, in order
    ttl_seconds: float | None
    source: str  # "dnslink" or the NameSystem's source of the last IPNS step


def split_name(name: str) -> tuple[str, str, str]:
    """``(namespace, label, rest)`` of ``/ipns/<label>/<rest>``, ``ipns://<label>/<rest>``,
    ``/ipfs/<cid>/<rest>``, or a bare ``<label>[/<rest>]`` (taken as ``/ipns/``).

    Raises:
        InvalidInput: empty, over :data:`MAX_NAME_PATH`, or with ``..``/empty segments.
    """
    text = name.strip()
    if len(text) > MAX_NAME_PATH:
        raise InvalidInput(f"a name and its path are at most {MAX_NAME_PATH} characters")
    for scheme in ("ipns://", "ipfs://"):
        if text.startswith(scheme):
            text = f"/{scheme[:4]}/{text[len(scheme):]}"
    namespace = "ipns"
    if text.startswith(("/ipns/", "/ipfs/")):
        namespace, text = text[1:5], text[6:]
    label, _, rest = text.strip("/").partition("/")
    segments = [s for s in rest.split("/")] if rest else []
    if not label or any(s in ("", ".", "..") for s in segments):
        raise InvalidInput(f"{name!r} is not a name: write /ipns/<k51… key or domain>[/path]")
    return namespace, label, "/".join(segments)


def join_path(value: str, rest: str) -> str:
    """``value`` with the remaining path of the name appended."""
    return f"{value.rstrip('/')}/{rest}" if rest else value


def is_domain(label: str) -> bool:
    """A DNSLink domain has a dot; an IPNS key (k51…, 12D3Koo…) never does."""
    return "." in label


class NameResolver:
    """Resolves names to content paths. ``names`` is None when the node cannot (no node
    runs); ``why`` then says so, and DNSLink still works."""

    def __init__(self, names: NameSystem | None, dnslink: DnsLinkResolver,
                 why: str = "no node to resolve IPNS names") -> None:
        self.names = names
        self.dnslink = dnslink
        self.why = why

    def name_system(self) -> NameSystem:
        """The NameSystem, or why there is none.

        Raises:
            Unsupported: no node resolves or publishes IPNS names here.
        """
        if self.names is None:
            raise Unsupported("this server", "IPNS names", self.why)
        return self.names

    async def step(self, label: str) -> tuple[str, float | None, str]:
        """One record: ``(value, ttl, source)`` of ``/ipns/<label>``.

        Raises:
            NameNotFound, InvalidInput, Timeout, NetworkError, Unsupported.
        """
        if is_domain(label):
            link = await self.dnslink.resolve(label)
            return link.value, link.ttl_seconds, "dnslink"
        record = await self.name_system().resolve(f"/ipns/{label}")
        return record.value, record.ttl_seconds, record.source

    async def resolve_path(self, name: str, *, recursive: bool = True) -> Resolved:
        """``name`` as ``/ipfs/<cid>/<path>``, following names to :data:`MAX_DEPTH`.

        Raises:
            InvalidInput: a malformed name, a loop, or deeper than MAX_DEPTH.
            NameNotFound: a name on the way has no valid record.
            Timeout, NetworkError: the lookups failed.
            Unsupported: an IPNS key, with no node to resolve it.
        """
        namespace, label, rest = split_name(name)
        asked = f"/{namespace}/{join_path(label, rest)}"
        if namespace == "ipfs":
            return Resolved(asked, asked, (), None, "local")
        steps: list[str] = []
        ttls: list[float] = []
        source = ""
        while namespace == "ipns":
            current = f"/ipns/{normalize_domain(label) if is_domain(label) else label}"
            if current in steps:
                raise InvalidInput(f"{asked} loops: {' -> '.join([*steps, current])}")
            if len(steps) >= MAX_DEPTH:
                raise InvalidInput(f"{asked} is more than {MAX_DEPTH} names deep; "
                                   f"stopped at {current}")
            steps.append(current)
            value, ttl, source = await self.step(label)
            if ttl is not None:
                ttls.append(ttl)
            namespace, label, more = split_name(value)
            rest = join_path(more, rest) if more else rest
            if not recursive:
                break
        path = f"/{namespace}/{join_path(label, rest)}"
        return Resolved(asked, path, tuple(steps), min(ttls) if ttls else None, source)


@runtime_checkable
class RecordSource(Protocol):
    async def ipns_record(self, name: str) -> bytes | None:
        """The best valid record of ``/ipns/<k51…>`` as signed (None: none found)."""
        ...


class HeldNames:
    """A ``NameSystem`` that also answers from the repo's held records (what we published,
    what ``routing put`` kept), so a name resolves offline; where a node (``inner``) answers
    too, the best record of both wins. Publishing and keys need ``inner``."""

    def __init__(self, inner: NameSystem | None, records: RecordStore, why: str) -> None:
        self.inner = inner
        self.records = records
        self.why = why

    def _inner(self) -> NameSystem:
        if self.inner is None:
            raise Unsupported("this server", "IPNS names", self.why)
        return self.inner

    async def _held(self, name: str) -> ipns.IpnsRecord | None:
        return await anyio.to_thread.run_sync(self.records.valid, name)

    async def resolve(self, name: str) -> NameRecord:
        """Raises: InvalidInput, NameNotFound, and the node's errors when nothing is held."""
        held = await self._held(name)
        try:
            found = await self._inner().resolve(name)
        except (NameNotFound, NetworkError, NodeNotRunning, Unsupported):
            if held is None:
                raise
            return held.to_name_record("local")
        if held is not None and (held.sequence, held.validity_ns) > (
                found.sequence, ipns.parse_validity(found.validity or held.validity)):
            return held.to_name_record("local")
        return found

    async def ipns_record(self, name: str) -> bytes | None:
        """The best valid record of ``name`` held here or found by the node.

        Raises:
            InvalidInput: not a key's name.
        """
        found = [r for r in [await self._held(name)] if r is not None]
        if isinstance(self.inner, RecordSource):
            try:
                raw = await self.inner.ipns_record(name)
            except (NetworkError, NodeNotRunning):
                raw = None
            if raw is not None:
                found.append(ipns.validate_record(name, raw))
        return ipns.best_record(found).raw if found else None

    async def publish(self, value: str, *, key: str = "self",
                      lifetime_seconds: float = 48 * 3600, ttl_seconds: float = 300
                      ) -> NameRecord:
        return await self._inner().publish(value, key=key, lifetime_seconds=lifetime_seconds,
                                           ttl_seconds=ttl_seconds)

    async def last_published(self, key: str = "self") -> NameRecord | None:
        return await self._inner().last_published(key)

    async def keys(self) -> list[KeyInfo]:
        return await self._inner().keys()

    async def generate_key(self, name: str) -> KeyInfo:
        return await self._inner().generate_key(name)


def name_resolver(node: object, dns_resolvers: Collection[tuple[str, str]] = (), *,
                  repo_path: Path | None = None,
                  ns_map: Collection[tuple[str, str]] = ()) -> NameResolver:
    """Names for the tools and the gateway: IPNS through ``node`` when it is a NameSystem
    and from the records held in ``repo_path``; DNSLink through the static ``ns_map``
    (domain, value) first, then the resolvers given as (suffix, address) pairs (none: the
    system's)."""
    names: NameSystem | None = node if isinstance(node, NameSystem) else None
    why = ("the node in use publishes and resolves no IPNS names" if node is not None
           else "no node runs (--no-p2p, or the backend has none)")
    if repo_path is not None:
        names = HeldNames(names, RecordStore(repo_path), why)
    return NameResolver(names, DnsLinkResolver(DnsTxtLookup(dict(dns_resolvers)),
                                               static=dict(ns_map)), why)


@dataclass(frozen=True)
class Replacing:
    """What a publish would replace when the network holds a newer record under the key
    than this node last published (someone else, or this key on another machine)."""

    key: str
    name: str
    network_sequence: int
    network_value: str
    last_published_sequence: int | None


def publish_value(value: str) -> str:
    """A value as a record carries it: a bare CID becomes ``/ipfs/<cid>``; paths are kept.

    Raises:
        InvalidInput: not a CID, ``/ipfs/<cid>[/path]`` or ``/ipns/<name>[/path]``.
    """
    namespace, label, rest = split_name(value if value.strip().startswith(("/", "ipfs://",
                                                                             "ipns://"))
                                         else f"/ipfs/{value}")
    if namespace == "ipfs":
        try:
            label = CID.decode(label).encode()
        except (ValueError, KeyError) as exc:
            raise InvalidInput(f"{value!r}: {label!r} is not a CID") from exc
    return f"/{namespace}/{join_path(label, rest)}"


async def would_replace(names: NameSystem, key: str) -> Replacing | None:
    """The newer record the network holds under ``key``, if any; None when there is none,
    when it is ours, or when the network cannot be asked (the publish itself then says).

    Raises:
        InvalidInput: no key by that name.
    """
    held = {info.name: info.ipns_name for info in await names.keys()}
    if key not in held:
        raise InvalidInput(f"no key named {key!r} (keys: {', '.join(sorted(held))})")
    last = await names.last_published(key)
    try:
        current = await names.resolve(held[key])
    except (NameNotFound, NetworkError):
        return None
    if current.sequence <= (last.sequence if last is not None else -1):
        return None
    return Replacing(key, held[key], current.sequence, current.value,
                     last.sequence if last is not None else None)


Confirm = Callable[[Replacing], Awaitable[bool]]


@dataclass(frozen=True)
class Published:
    record: NameRecord | None  # None when the user declined
    replaced: Replacing | None  # the newer record it replaced (or would have)


async def publish(names: NameSystem, value: str, *, key: str = "self",
                  lifetime_seconds: float = 48 * 3600, ttl_seconds: float = 300,
                  confirm: Confirm | None = None) -> Published:
    """Publish ``value`` under ``key``; when the network holds a newer record under that key
    than this node last published, ``confirm`` is asked first and a "no" changes nothing.

    Raises:
        InvalidInput: a malformed value, a lifetime or TTL out of range, an unknown key.
        Timeout, NetworkError, NodeNotRunning: the publish failed.
    """
    path = publish_value(value)
    if not 60 <= lifetime_seconds <= 365 * 24 * 3600:
        raise InvalidInput("lifetime must be between a minute and a year")
    if not 0 <= ttl_seconds <= lifetime_seconds:
        raise InvalidInput("ttl must be between 0 and the lifetime")
    replacing = await would_replace(names, key)
    if replacing is not None and confirm is not None and not await confirm(replacing):
        return Published(None, replacing)
    record = await names.publish(path, key=key, lifetime_seconds=lifetime_seconds,
                                 ttl_seconds=ttl_seconds)
    return Published(record, replacing)


class ResolveNameResult(BaseModel):
    name: str
    path: str = Field(description="/ipfs/<cid>[/path], or /ipns/… when not recursive")
    cid: str | None = Field(description="The content's root CID, when resolved to /ipfs/")
    steps: list[str] = Field(description="Each name followed, in order")
    ttl_seconds: float | None
    source: str


class PublishNameResult(BaseModel):
    name: str = Field(description="/ipns/k51…: share it, resolve it with resolve_name")
    value: str
    key: str
    sequence: int
    validity: str | None
    ttl_seconds: float | None
    replaced_sequence: int | None = Field(
        description="The newer sequence the network held under this key, now replaced")


async def resolve_name(resolver: NameResolver, name: str, *, recursive: bool = True
                       ) -> ResolveNameResult:
    """:meth:`NameResolver.resolve_path` as the tools answer it.

    Raises:
        see :meth:`NameResolver.resolve_path`.
    """
    found = await resolver.resolve_path(name, recursive=recursive)
    cid = found.path.split("/")[2] if found.path.startswith("/ipfs/") else None
    return ResolveNameResult(name=found.name, path=found.path, cid=cid, steps=list(found.steps),
                             ttl_seconds=found.ttl_seconds, source=found.source)


def published_result(key: str, done: Published) -> PublishNameResult:
    """A publish's answer (the record was published: ``done.record`` is set)."""
    record = done.record
    assert record is not None
    return PublishNameResult(
        name=record.name, value=record.value, key=key, sequence=record.sequence,
        validity=record.validity, ttl_seconds=record.ttl_seconds,
        replaced_sequence=done.replaced.network_sequence if done.replaced else None)
