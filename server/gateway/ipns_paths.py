"""``/ipns/{name}[/path]`` on the gateway: the name (an IPNS key or a DNSLink domain) is
resolved to ``/ipfs/<cid>[/path]`` and the request is then served as that path is; and
``?format=ipns-record`` (or ``Accept: application/vnd.ipfs.ipns-record``) hands out a key's
signed record as it is, for clients that verify it themselves.

The names come in as a component (the server's resolver, :class:`~ipfs_mcp.tools.names.
NameResolver`); a failure is answered by kind, in this module's own words (no resolver
address or library message reaches the client).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable
from urllib.parse import parse_qs, unquote

from ipfs_mcp.backends.core import ipns
from ipfs_mcp.backends.errors import (
    InvalidInput,
    InvalidRecord,
    IpfsMcpError,
    NameNotFound,
    Timeout,
    Unsupported,
)

from .disposition import content_disposition
from .subdomain import Origin

IPNS_RECORD = "application/vnd.ipfs.ipns-record"


class ResolvedPath(Protocol):
    @property
    def path(self) -> str: ...

    @property
    def ttl_seconds(self) -> float | None: ...


class NameLookup(Protocol):
    async def resolve_path(self, name: str, *, recursive: bool = True) -> ResolvedPath:
        """``/ipfs/<cid>[/path]`` for ``/ipns/<name>[/path]``.

        Raises:
            NameNotFound, InvalidInput, Timeout, NetworkError, Unsupported.
        """
        ...


@runtime_checkable
class RecordSource(Protocol):
    async def ipns_record(self, name: str) -> bytes | None:
        """The best valid record of ``/ipns/<k51…>`` as signed (None: none found)."""
        ...


@dataclass(frozen=True)
class Rewritten:
    raw_path: bytes  # ``/ipfs/<cid>[/rest]``, the rest as the client encoded it
    ttl_seconds: float | None


def _split(raw_path: bytes) -> tuple[str, bytes]:
    """The name of ``/ipns/<name>[/rest]`` (decoded) and the rest (still encoded)."""
    name, slash, rest = raw_path[len(b"/ipns/"):].partition(b"/")
    return unquote(name.decode("ascii", "replace")), slash + rest


async def to_ipfs_path(names: NameLookup, raw_path: bytes) -> Rewritten:
    """The ``/ipfs/`` path a ``/ipns/`` request is served as.

    Raises:
        as :meth:`NameLookup.resolve_path`.
    """
    name, rest = _split(raw_path)
    found = await names.resolve_path(f"/ipns/{name}")
    return Rewritten(found.path.encode() + rest, found.ttl_seconds)


def wants_record(query_string: bytes, accept: str) -> bool:
    query = parse_qs(query_string.decode("ascii", "replace"))
    return query.get("format") == ["ipns-record"] or IPNS_RECORD in accept


async def record_for(source: object, raw_path: bytes) -> bytes:
    """The signed record of the key in ``/ipns/<key>``.

    Raises:
        InvalidInput: a path after the key, or a DNSLink domain (it has no record).
        Unsupported: the node cannot hand out records.
        NameNotFound: no valid record.
    """
    name, rest = _split(raw_path)
    if rest.strip(b"/") or "." in name:
        raise InvalidInput("an IPNS record is asked for a key alone: /ipns/<k51…>")
    if not isinstance(source, RecordSource):
        raise Unsupported("this gateway", "IPNS records")
    raw = await source.ipns_record(f"/ipns/{name}")
    if raw is None:
        raise NameNotFound(f"no IPNS record of {name}")
    return raw


async def dnslink_site(names: NameLookup, hostname: str) -> str | None:
    """``/ipns/<hostname>`` when the request's host is a DNSLink website (a domain, not
    an address, whose DNSLink resolves), as Kubo serves any host it is not configured for;
    None otherwise (served as a path gateway)."""
    if "." not in hostname or hostname.replace(".", "").isdigit() or ":" in hostname:
        return None
    try:
        await names.resolve_path(f"/ipns/{hostname}")
    except IpfsMcpError:
        return None
    return f"/ipns/{hostname}"


def resolved_origin(origin: Origin | None, asked: bytes, resolved: bytes) -> Origin | None:
    """A site's origin (a DNSLink host, a ``{name}.ipns.`` subdomain) with its root moved
    to the ``/ipfs/`` path its name resolved to, so that redirects and links below it stay
    relative to the site."""
    if origin is None or not asked.startswith(origin.root.encode()):
        return origin
    rest = asked[len(origin.root.encode()):]
    if not resolved.endswith(rest):
        return origin
    return replace(origin, root=resolved[:len(resolved) - len(rest)].decode("latin-1"))


def record_headers(raw_path: bytes, query_string: bytes, record: bytes
                   ) -> list[tuple[bytes, bytes]]:
    """A record's download headers, as Kubo sends them: an attachment named
    ``<key>.ipns-record`` (or ``?filename=``), cached for the record's own TTL (no
    Cache-Control when the record cannot be read: the client validates it anyway).
    """
    name, _ = _split(raw_path)
    query = parse_qs(query_string.decode("ascii", "replace"))
    filename = query.get("filename", [f"{name}.ipns-record"])[0]
    headers = [(b"content-disposition", content_disposition("attachment", filename))]
    try:
        ttl = ipns.parse_record(name, record).ttl_ns // 1_000_000_000
    except (InvalidRecord, InvalidInput):
        return headers
    return [*headers, (b"cache-control", f"public, max-age={ttl}".encode())]


def canonical_location(raw_path: bytes) -> bytes | None:
    """``/ipns/<k51…>[/rest]`` for a key's name written another way (a base58 peer id,
    as Kubo redirects it), None when the name is canonical or not a key."""
    name, rest = _split(raw_path)
    if "." in name:
        return None
    try:
        canonical = ipns.ipns_name(ipns.name_multihash(name))
    except InvalidInput:
        return None
    return None if canonical == f"/ipns/{name}" else canonical.encode() + rest


_ANSWERS: Mapping[type[IpfsMcpError], tuple[int, str, str]] = {
    NameNotFound: (404, "Not found", "No record was found for this name."),
    InvalidInput: (400, "Bad request", "This name cannot be resolved: malformed, looping or "
                   "too deep (write /ipns/<k51… key or domain>[/path])."),
    Timeout: (504, "Gateway timeout", "Resolving this name took too long."),
    Unsupported: (501, "Not served", "This gateway resolves no IPNS keys or records."),
}


def failure(exc: IpfsMcpError) -> tuple[int, str, str]:
    """Status, title and message of a failed name, by kind."""
    for kind, answer in _ANSWERS.items():
        if isinstance(exc, kind):
            return answer
    return 502, "Bad gateway", "The name could not be resolved."
