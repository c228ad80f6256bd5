"""The subdomain gateway (subdomain-gateway spec), as Kubo's ``Gateway.PublicGateways``
serves ``localhost``: ``{cid}.ipfs.localhost:port`` and ``{name}.ipns.localhost:port``.

Why: a browser gives every origin its own cookies, storage and permissions. On a path
gateway every site shares one origin (``127.0.0.1:8080``), so a page under one CID can read
what another stored. Under a subdomain each CID is its own origin. Browsers resolve every
``*.localhost`` name to loopback, so this needs no DNS.

For a request whose ``Host`` (or ``X-Forwarded-Host``, as Kubo honours it behind a proxy)
is one of the configured gateway hostnames (port aside):
- ``/ipfs/{cid}/rest`` is redirected (301) to ``{scheme}://{cid}.ipfs.{host}/rest``, the CID
  as CIDv1 in base32 (DNS labels are case-insensitive, so base58 CIDv0 cannot be one);
  base36 when base32 is over the 63 characters a DNS label holds; refused (400) when even
  that is too long, or when the CID is not one (saying so before any redirect);
- ``/ipns/{name}/rest`` likewise, a key as a CIDv1 ``libp2p-key`` in base36, a DNSLink name
  inlined into one label (``.`` -> ``-``, ``-`` -> ``--``), which TLS wildcards cover.

A request whose host is ``{label}.{ipfs|ipns}.{gateway host}`` is served as
``/{ns}/{name}{path}``; a CID label not in its canonical form is redirected to it. Any
other host is a plain path gateway. ``/ipfs/?uri=ipfs://...`` (a browser's protocol
handler) is redirected to the content path on every host.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote

from multiformats import CID, multibase, multihash

from ipfs_mcp.backends.core.cids import parse_cid
from ipfs_mcp.backends.errors import InvalidInput

from .request import BadRequest, not_a_cid

DNS_LABEL_MAX = 63
# Where a rewritten request's scope carries its Origin (for links and redirects).
ORIGIN_KEY = "ipfs_mcp.subdomain_origin"
_LIBP2P_KEY = 0x72
_NAMESPACES = ("ipfs", "ipns")


@dataclass(frozen=True)
class Redirect:
    location: str


@dataclass(frozen=True)
class Origin:
    """A request served from a subdomain: ``root`` is the content path its ``/`` maps to
    (``/ipfs/{cid}``), ``gateway`` the gateway's own host (for links back to it)."""

    root: str
    gateway: str


@dataclass(frozen=True)
class Rewrite:
    path: bytes  # the content path to serve: root + the request's path
    origin: Origin


def _split_host(host: str) -> tuple[str, str]:
    """``host:port`` -> (lower-cased hostname, ``:port`` or "")."""
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit() and not name.endswith(":"):
        return name.lower(), f":{port}"
    return host.lower(), ""


def _cid_label(cid: CID, what: str) -> str:
    """``cid`` as one DNS label: base32, else base36.

    Raises:
        BadRequest: both are longer than a DNS label may be.
    """
    for base in ("base32", "base36"):
        label = cid.encode(base)
        if len(label) <= DNS_LABEL_MAX:
            return label
    raise BadRequest(f"CID incompatible with DNS label length limit of {DNS_LABEL_MAX}: "
                     f"{what} is {len(cid.encode('base32'))} characters in base32")


def _as_v1(cid: CID, codec: str | None = None) -> CID:
    return CID("base32", 1, codec or cid.codec, cid.digest)


def _ipns_key(name: str) -> CID | None:
    """``name`` as a libp2p-key CIDv1 when it is a key (a CID or a base58 peer ID)."""
    try:
        cid = parse_cid(name)
    except InvalidInput:
        try:  # a peer ID written as a base58 multihash (12D3Koo..., Qm...)
            digest = multibase.decode("z" + name)
            multihash.unwrap(digest)
        except (ValueError, KeyError):
            return None
        return CID("base36", 1, "libp2p-key", digest)
    return _as_v1(cid, "libp2p-key")


def inline_dnslink(name: str) -> str:
    return name.replace("-", "--").replace(".", "-")


def uninline_dnslink(label: str) -> str:
    return label.replace("--", "\0").replace("-", ".").replace("\0", "-")


class SubdomainHosts:
    """Routes requests by ``Host`` for the configured gateway ``hostnames``."""

    def __init__(self, hostnames: Iterable[str] = ("localhost",)) -> None:
        self.hostnames = frozenset(h.lower() for h in hostnames)

    def route(self, raw_path: bytes, query: bytes, headers: dict[str, str], scheme: str
              ) -> Redirect | Rewrite | None:
        """What to do with a request before it is served as a path (None: nothing).

        Raises:
            BadRequest: a CID that is not one, or too long for a DNS label.
        """
        if raw_path in (b"/ipfs/", b"/ipns/") and query:
            uri = dict(parse_qsl(query.decode("latin-1"))).get("uri", "")
            for ns in _NAMESPACES:
                if uri.startswith(f"{ns}://"):
                    return Redirect(f"/{ns}/{uri[len(ns) + 3:]}")
        host = headers.get("x-forwarded-host") or headers.get("host", "")
        hostname, port = _split_host(host)
        forwarded = headers.get("x-forwarded-proto", "").lower()
        scheme = forwarded if forwarded in ("http", "https") else scheme
        if hostname in self.hostnames:
            return self._to_subdomain(raw_path, query, f"{hostname}{port}", scheme)
        for gateway in self.hostnames:
            if hostname.endswith("." + gateway):
                prefix = hostname[:-len(gateway) - 1]
                name, _, ns = prefix.rpartition(".")
                if ns in _NAMESPACES and name:
                    return self._from_subdomain(name, ns, raw_path, query,
                                                f"{gateway}{port}", scheme)
        return None

    def _to_subdomain(self, raw_path: bytes, query: bytes, host: str, scheme: str
                      ) -> Redirect | None:
        text = raw_path.decode("latin-1")
        ns, _, rest = text.lstrip("/").partition("/")
        if ns not in _NAMESPACES or not rest:
            return None
        first, slash, tail = rest.partition("/")
        if ns == "ipfs":
            try:
                cid = parse_cid(first)
            except InvalidInput:
                raise BadRequest(f'invalid path "{text}": {not_a_cid(first)}') from None
            label = _cid_label(_as_v1(cid), first)
        else:
            key = _ipns_key(first)
            if key is not None:
                label = key.encode("base36")  # as Kubo names keys (base32 is too long)
            else:
                label = inline_dnslink(first)  # one label, whatever the scheme, as Kubo does
        after = f"{slash}{tail}" or "/"
        location = f"{scheme}://{label}.{ns}.{host}{after}"
        return Redirect(location + (f"?{query.decode('latin-1')}" if query else ""))

    def _from_subdomain(self, name: str, ns: str, raw_path: bytes, query: bytes,
                        gateway: str, scheme: str) -> Redirect | Rewrite:
        if ns == "ipfs":
            try:
                cid = parse_cid(name)
            except InvalidInput:
                raise BadRequest(not_a_cid(name)) from None
            canonical = _cid_label(_as_v1(cid), name)
        else:
            key = _ipns_key(name)
            if key is None:
                # A DNSLink name, inlined into one label or written out with its dots.
                root = uninline_dnslink(name) if "." not in name else name
                return Rewrite(f"/ipns/{root}".encode() + raw_path,
                               Origin(f"/ipns/{root}", gateway))
            canonical = key.encode("base36")
        if canonical != name:
            location = f"{scheme}://{canonical}.{ns}.{gateway}{raw_path.decode('latin-1')}"
            return Redirect(location + (f"?{query.decode('latin-1')}" if query else ""))
        root = f"/{ns}/{quote(name, safe='')}"
        return Rewrite(root.encode() + raw_path, Origin(root, gateway))
