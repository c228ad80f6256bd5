"""DNSLink: a domain names IPFS content with a TXT record, ``dnslink=/ipfs/<cid>[/path]``.

As the DNSLink spec asks, ``_dnslink.<domain>`` is looked up first and the domain itself
only when that holds no DNSLink record (the older form some zones still use). Of several
``dnslink=`` records the lexicographically first valid one wins, so every resolver picks
the same. One step only: a value ``/ipns/<name>`` is returned as it is and followed, to a
bounded depth, by the caller (``tools/names.py``).

The lookups go through dnspython: the system resolver, or per domain suffix a resolver
address (``203.0.113.1``, ``[::1]:5353``) or a DNS-over-HTTPS URL, as Kubo's
``DNS.Resolvers`` map. A static map (``IPFS_MCP_NS_MAP``, Kubo's ``IPFS_NS_MAP`` syntax:
``example.org:/ipfs/<cid>,other.example:/ipns/<name>``) is consulted before DNS, for tests
and air-gapped use. Answers are cached for their TTL (capped) in a bounded cache; a
hostile zone cannot make us keep more than :data:`MAX_RECORDS` records of
:data:`MAX_RECORD_BYTES` each.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import dns.exception
import dns.name
import dns.rdtypes.ANY.TXT

if TYPE_CHECKING:
    import dns.asyncresolver
    import dns.nameserver

from ipfs_mcp.backends.errors import InvalidInput, NameNotFound, NetworkError, Timeout

MAX_RECORDS = 16  # TXT records read from one answer; real zones hold a few
MAX_RECORD_BYTES = 2048  # one TXT record, its strings joined (a path fits easily)
MAX_TTL_SECONDS = 24 * 3600  # a zone asking for more is cached a day, as Kubo caps it
MIN_TTL_SECONDS = 1.0
CACHE_ENTRIES = 1024
LOOKUP_TIMEOUT_SECONDS = 10.0
_PREFIX = "dnslink="
_NAMESPACES = ("/ipfs/", "/ipns/")


@dataclass(frozen=True)
class TxtAnswer:
    """The TXT strings of one name (each record's character-strings joined) and its TTL."""

    records: tuple[str, ...]
    ttl_seconds: float


class TxtLookup(Protocol):
    async def txt(self, domain: str) -> TxtAnswer:
        """The TXT records of ``domain``; an empty answer when it has none.

        Raises:
            Timeout: no answer within the bound.
            NetworkError: the resolver failed.
        """
        ...


@dataclass(frozen=True)
class DnsLink:
    """One domain's DNSLink: its value and where it was found."""

    domain: str
    value: str  # ``/ipfs/<cid>[/path]`` or ``/ipns/<name>[/path]``
    record_name: str  # ``_dnslink.<domain>`` or the domain itself
    ttl_seconds: float


def normalize_domain(domain: str) -> str:
    """A domain as the lookups use it: lower case, no trailing dot, IDNA-encoded.

    Raises:
        InvalidInput: not a domain name.
    """
    text = domain.strip().rstrip(".").lower()
    if not text or "/" in text or " " in text or "." not in text:
        raise InvalidInput(f"{domain!r} is not a domain name (e.g. docs.ipfs.tech)")
    try:
        name = dns.name.from_text(text)
    except dns.exception.DNSException as exc:
        raise InvalidInput(f"{domain!r} is not a domain name: {exc}") from None
    return name.to_text(omit_final_dot=True)


def _parse_resolver(address: str) -> dns.nameserver.Nameserver:
    # dnspython's resolvers (its QUIC, HTTP and trio support with them) cost about 0.25 s
    # of imports: they load on the first lookup, not for every command that imports this.
    import dns.nameserver

    text = address.strip()
    if text.startswith("https://"):
        return dns.nameserver.DoHNameserver(text)
    host, port = text, 53
    if text.startswith("["):  # [v6]:port
        host, _, rest = text[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else 53
    elif text.count(":") == 1:
        host, _, number = text.partition(":")
        port = int(number)
    return dns.nameserver.Do53Nameserver(host, port)


STATIC_TTL_SECONDS = 60.0  # a static entry, as Kubo's NS map (it never changes while we run)
STATIC_RECORD = "the static DNSLink map"


def parse_ns_map(text: str | None) -> dict[str, str]:
    """Kubo's ``IPFS_NS_MAP``: ``domain:/ipfs/<cid>[/path],domain2:/ipns/<name>`` (a domain,
    ``:``, a DNSLink value), as a {normalised domain: value} map.

    Raises:
        InvalidInput: an entry without ``:``, a bad domain, or a value not /ipfs/ or /ipns/.
    """
    found: dict[str, str] = {}
    for entry in (text or "").split(","):
        if not entry.strip():
            continue
        domain, sep, value = entry.strip().partition(":")
        value = value.strip()
        if not sep or dnslink_value((f"{_PREFIX}{value}",)) != value:
            raise InvalidInput(f"DNSLink map entry {entry.strip()!r}: write "
                               "<domain>:/ipfs/<cid> or <domain>:/ipns/<name>")
        found[normalize_domain(domain)] = value
    return found


def parse_resolvers(text: str | None) -> dict[str, str]:
    """Kubo's ``DNS.Resolvers`` written on one line: ``eth.=https://…/dns-query,.=[::1]:53``
    (a domain suffix, ``=``, a resolver address or DNS-over-HTTPS URL; ``.`` for the rest).

    Raises:
        InvalidInput: an entry without ``=``, or a URL other than https.
    """
    resolvers: dict[str, str] = {}
    for entry in (text or "").split(","):
        if not entry.strip():
            continue
        suffix, sep, address = entry.strip().partition("=")
        address = address.strip()
        if not sep or not address or ("://" in address and not address.startswith("https://")):
            raise InvalidInput(f"DNS resolver {entry.strip()!r}: write <suffix>=<address or "
                               "https:// URL>, e.g. .=127.0.0.1:53 or eth.=https://…")
        resolvers[suffix.strip() or "."] = address
    return resolvers


class DnsTxtLookup:
    """TXT lookups through dnspython, over the system resolver or the configured ones.

    ``resolvers`` maps a domain suffix (``"eth."``, or ``"."`` for every other domain) to a
    resolver address or DNS-over-HTTPS URL, as Kubo's ``DNS.Resolvers``; a domain no suffix
    covers uses the system resolver.
    """

    def __init__(self, resolvers: Mapping[str, str] | None = None, *,
                 timeout: float = LOOKUP_TIMEOUT_SECONDS) -> None:
        import dns.asyncresolver  # on first use, as in _parse_resolver

        self._timeout = timeout
        self._by_suffix: dict[str, dns.asyncresolver.Resolver] = {}
        try:
            for suffix, address in (resolvers or {}).items():
                resolver = dns.asyncresolver.Resolver(configure=False)
                resolver.nameservers = [_parse_resolver(address)]
                self._by_suffix[suffix.strip(".").lower()] = resolver
        except ValueError as exc:
            raise InvalidInput(f"a DNS resolver address is malformed: {exc}") from None
        self._system: dns.asyncresolver.Resolver | None = None

    def _resolver_for(self, domain: str) -> dns.asyncresolver.Resolver:
        labels = domain.split(".")
        for start in range(len(labels)):  # the longest configured suffix wins
            found = self._by_suffix.get(".".join(labels[start:]))
            if found is not None:
                return found
        if "" in self._by_suffix:
            return self._by_suffix[""]
        if self._system is None:  # read resolv.conf only when it is needed
            import dns.asyncresolver

            self._system = dns.asyncresolver.Resolver()
        return self._system

    async def txt(self, domain: str) -> TxtAnswer:
        import dns.resolver  # loaded with the resolvers (see _parse_resolver)

        resolver = self._resolver_for(domain)
        try:
            answer = await resolver.resolve(domain, "TXT", lifetime=self._timeout,
                                            search=False, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return TxtAnswer((), MIN_TTL_SECONDS)
        except dns.resolver.LifetimeTimeout as exc:
            raise Timeout(f"the DNS lookup of {domain} did not answer within "
                          f"{self._timeout:g} s") from exc
        except dns.exception.DNSException as exc:
            raise NetworkError(f"the DNS lookup of {domain} failed: {exc}") from exc
        records: list[str] = []
        for rdata in list(answer.rrset or ())[:MAX_RECORDS]:
            assert isinstance(rdata, dns.rdtypes.ANY.TXT.TXT)
            joined = b"".join(rdata.strings)
            if len(joined) <= MAX_RECORD_BYTES:
                records.append(joined.decode("utf-8", "replace"))
        ttl = float(answer.rrset.ttl) if answer.rrset is not None else MIN_TTL_SECONDS
        return TxtAnswer(tuple(records), ttl)


def dnslink_value(records: tuple[str, ...]) -> str | None:
    """The DNSLink value among TXT records: the lexicographically first valid
    ``dnslink=/ipfs/…`` or ``dnslink=/ipns/…``, None when there is none."""
    values = sorted(
        value for value in (r[len(_PREFIX):].strip() for r in records if r.startswith(_PREFIX))
        if value.startswith(_NAMESPACES) and len(value.split("/")[2]) > 0
    )
    return values[0] if values else None


class DnsLinkResolver:
    """Resolves a domain's DNSLink, one step, its answers cached for their TTL."""

    def __init__(self, lookup: TxtLookup, *, clock: Callable[[], float] = time.monotonic,
                 cache_entries: int = CACHE_ENTRIES,
                 static: Mapping[str, str] | None = None) -> None:
        self._lookup = lookup
        # Consulted before DNS: {domain: value}, as ``parse_ns_map`` reads it.
        self._static = {normalize_domain(d): v for d, v in (static or {}).items()}
        self._clock = clock
        self._cache_entries = cache_entries
        # domain -> (expires at, the link or None for "no DNSLink here")
        self._cache: OrderedDict[str, tuple[float, DnsLink | None]] = OrderedDict()

    async def resolve(self, domain: str) -> DnsLink:
        """The DNSLink of ``domain``.

        Raises:
            InvalidInput: not a domain name.
            NameNotFound: neither ``_dnslink.<domain>`` nor the domain holds a DNSLink.
            Timeout, NetworkError: the DNS lookups failed.
        """
        name = normalize_domain(domain)
        if name in self._static:
            return DnsLink(name, self._static[name], STATIC_RECORD, STATIC_TTL_SECONDS)
        now = self._clock()
        cached = self._cache.get(name)
        if cached is not None and cached[0] > now:
            self._cache.move_to_end(name)
            link = cached[1]
        else:
            link, ttl = await self._look_up(name)
            self._remember(name, now + ttl, link)
        if link is None:
            raise NameNotFound(f"{name} has no DNSLink (no dnslink=/ipfs/… or dnslink=/ipns/… "
                               f"TXT record at _dnslink.{name} or {name})")
        return link

    async def _look_up(self, name: str) -> tuple[DnsLink | None, float]:
        ttl = float(MAX_TTL_SECONDS)
        for record_name in (f"_dnslink.{name}", name):
            answer = await self._lookup.txt(record_name)
            ttl = min(ttl, max(MIN_TTL_SECONDS, answer.ttl_seconds))
            value = dnslink_value(answer.records)
            if value is not None:
                return DnsLink(name, value, record_name, ttl), ttl
        return None, ttl

    def _remember(self, name: str, expires: float, link: DnsLink | None) -> None:
        self._cache[name] = (expires, link)
        self._cache.move_to_end(name)
        while len(self._cache) > self._cache_entries:
            self._cache.popitem(last=False)
