"""A delegated routing client (``/routing/v1``, IPIP-337), for ``--delegated-router URL``.

``GET {router}/routing/v1/ipns/{name}`` (IPIP-379) answers a name's signed record, which
is validated here (signature, validity, size) before anyone reads it.

``GET {router}/routing/v1/providers/{cid}`` answers with the peers that provide a CID, as
JSON (``{"Providers": [...]}``) or, when asked with ``Accept: application/x-ndjson``, one
record per line. Each record (``"Schema": "peer"``) carries an ``ID``, its ``Addrs`` and the
``Protocols`` it serves: ``transport-bitswap`` (dial it and ask over bitswap) or
``transport-ipfs-gateway-http`` (an ``/http`` or ``/tls/http`` address: a trustless
gateway). Other schemas are skipped, as the spec says clients must.

Answers are bounded (bytes, records, time); a router that fails is reported, never
invented around. A record's claims are only hints: every block fetched from a provider
found here is verified like any other. Nor may a router steer us nearer than itself: a
public router's record that names a loopback or LAN host is refused before any dial or GET
(:mod:`.address_scope`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import anyio.to_thread
import httpx
from multiformats import CID

from ipfs_mcp.backends.core import ipns
from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.core.reputation import ProviderReputation
from ipfs_mcp.backends.errors import (
    BackendUnavailable,
    BlockNotFound,
    InvalidRecord,
    NetworkError,
)
from ipfs_mcp.backends.fetcher import BlockFetcher
from ipfs_mcp.backends.http_answers import json_lines, read_bounded
from ipfs_mcp.backends.retrieval.address_scope import Scope, SteeringPolicy
from ipfs_mcp.backends.retrieval.trustless_gateway import (
    BlockPut,
    GatewayStat,
    TrustlessGateways,
    gateway_url,
)

_T = TypeVar("_T")

BITSWAP = "transport-bitswap"
GATEWAY_HTTP = "transport-ipfs-gateway-http"
MAX_ANSWER = 4 * 1024 * 1024  # bytes of one answer: thousands of records
MAX_RECORDS = 1000
_NDJSON = "application/x-ndjson"
IPNS_RECORD = "application/vnd.ipfs.ipns-record"


@dataclass(frozen=True)
class RoutedProvider:
    peer_id: str
    addrs: tuple[str, ...]
    protocols: tuple[str, ...]
    router: str  # which router said so

    @property
    def gateway_urls(self) -> list[str]:
        """The trustless-gateway URLs this provider offers (none unless it says so)."""
        if self.protocols and GATEWAY_HTTP not in self.protocols:
            return []
        return [u for u in (http_url(a) for a in self.addrs) if u is not None]

    @property
    def bitswap_addrs(self) -> list[str]:
        if self.protocols and BITSWAP not in self.protocols:
            return []
        return [a for a in self.addrs if http_url(a) is None]


def http_url(multiaddr: str) -> str | None:
    """``/ip4/1.2.3.4/tcp/8080/http`` → ``http://1.2.3.4:8080`` (``/tls/http`` and
    ``/https`` → https); None for an address that is not HTTP."""
    parts = [p for p in multiaddr.strip().split("/") if p]
    if len(parts) < 5 or parts[0] not in ("ip4", "ip6", "dns", "dns4", "dns6") \
            or parts[2] != "tcp":
        return None
    rest = parts[4:]
    if rest[:1] == ["http"]:
        scheme = "http"
    elif rest[:2] == ["tls", "http"] or rest[:1] == ["https"]:
        scheme = "https"
    else:
        return None
    host = f"[{parts[1]}]" if parts[0] == "ip6" else parts[1]
    return f"{scheme}://{host}:{parts[3]}"


def _records(text_lines: Iterable[str], router: str) -> Iterator[RoutedProvider]:
    for value in json_lines(text_lines, lambda line: NetworkError(
            f"delegated router {router} sent a line that is not JSON: "
            f"{line.strip()[:120]!r}")):
        items = value.get("Providers") if isinstance(value, dict) and "Providers" in value \
            else [value]
        for item in items or []:
            if not isinstance(item, dict) or item.get("Schema") != "peer" or "ID" not in item:
                continue  # unknown schemas are skipped, as the spec asks of clients
            yield RoutedProvider(str(item["ID"]),
                                 tuple(str(a) for a in item.get("Addrs") or ()),
                                 tuple(str(p) for p in item.get("Protocols") or ()), router)


@dataclass(frozen=True)
class RouterStat:
    """One delegated router's record, for the health report."""

    url: str
    score: float  # the same scorer as peers and gateways (backends/reputation.py)
    successes: int
    failures: int
    consecutive_failures: int
    last_error: str | None


class DelegatedRouting:
    """Ask every configured router; merge their answers (first router's record wins).

    Every answer (or failure) is recorded in a reputation per router, so the health report
    can show which router works; all routers are still asked every time."""

    def __init__(self, urls: Sequence[str], *, client: httpx.Client | None = None,
                 timeout: float = 10.0, router_scopes: Mapping[str, Scope] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``router_scopes`` overrides how near a router is taken to be (by default, from
        where its own host resolves)."""
        self.urls = [gateway_url(u) for u in urls]
        self._clock = clock
        self._reputation = ProviderReputation(clock)
        self._last_error: dict[str, str] = {}
        self._stats_lock = threading.Lock()  # providers() runs in worker threads
        self._owns_client = client is None
        self.client = client or httpx.Client(timeout=httpx.Timeout(timeout))
        scopes = {gateway_url(k): v for k, v in (router_scopes or {}).items()}
        self.policies = {u: SteeringPolicy(u, router_scope=scopes.get(u)) for u in self.urls}

    def refusal(self, provider: RoutedProvider, *, multiaddr: str | None = None,
                url: str | None = None) -> str | None:
        """Why the router that named ``provider`` may not send us to this address."""
        return self.policies[provider.router].refusal(multiaddr=multiaddr, url=url)

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def _get(self, url: str, path: str, accept: str, limit: int, what: str) -> bytes | None:
        """The body of ``GET {url}{path}`` (at most ``limit`` bytes), or None for a 404.

        Raises:
            NetworkError: the router failed, answered another status, or sent too much.
        """
        try:
            with self.client.stream("GET", f"{url}{path}", headers={"Accept": accept}
                                    ) as response:
                if response.status_code == 404:
                    return None  # the spec's "none here" (older routers, and IPNS)
                if response.status_code != 200:
                    raise NetworkError(f"delegated router {url} answered "
                                       f"{response.status_code} for {what}")
                body = read_bounded(response, limit)
                if body is None:
                    raise NetworkError(f"delegated router {url} sent more than "
                                       f"{limit} bytes for {what}")
                return body
        except httpx.HTTPError as exc:
            raise NetworkError(f"delegated router {url} failed: {exc}") from exc

    def _ask(self, url: str, cid: CID) -> list[RoutedProvider]:
        body = self._get(url, f"/routing/v1/providers/{cid_str(cid)}",
                         f"{_NDJSON}, application/json", MAX_ANSWER, cid_str(cid))
        if body is None:
            return []
        found = []
        for record in _records(body.decode("utf-8", "replace").splitlines(), url):
            found.append(record)
            if len(found) >= MAX_RECORDS:
                break
        return found

    def providers(self, cid: CID, limit: int = 20) -> tuple[list[RoutedProvider],
                                                            dict[str, str]]:
        """Providers of ``cid`` from every router, and each failing router's reason."""
        merged: dict[str, RoutedProvider] = {}
        errors: dict[str, str] = {}
        for url in self.urls:
            started = self._clock()
            try:
                records = self._ask(url, cid)
            except NetworkError as exc:
                errors[url] = str(exc)
                with self._stats_lock:
                    self._reputation.update_provider_stats(url, False)
                    self._last_error[url] = str(exc)
                continue
            with self._stats_lock:
                self._reputation.update_provider_stats(url, True, self._clock() - started)
            for record in records:
                merged.setdefault(record.peer_id, record)
        return list(merged.values())[:limit], errors

    def _ipns_records(self, name: str) -> tuple[list[bytes], dict[str, str]]:
        """Each router's record of ``name`` (IPIP-379), validated for the name; and each
        router's failure, a record that does not validate included."""
        key_name = ipns.ipns_name(ipns.name_multihash(name))
        found: list[bytes] = []
        errors: dict[str, str] = {}
        for url in self.urls:
            try:
                raw = self._get(url, f"/routing/v1/ipns/{key_name.removeprefix('/ipns/')}",
                                IPNS_RECORD, ipns.MAX_RECORD_SIZE, key_name)
                if raw is not None:
                    found.append(ipns.validate_record(key_name, raw).raw)
            except (NetworkError, InvalidRecord) as exc:
                errors[url] = str(exc)
        return found, errors

    async def ipns_records(self, name: str) -> tuple[list[bytes], dict[str, str]]:
        """``GET /routing/v1/ipns/{name}`` of every router (``Accept:
        application/vnd.ipfs.ipns-record``): the valid records they hold, and why each
        failing router failed.

        Raises:
            InvalidInput: ``name`` is not a key's name.
        """
        return await anyio.to_thread.run_sync(self._ipns_records, name,
                                              abandon_on_cancel=True)

    def stats(self) -> list[RouterStat]:
        """Each router's reputation as it stands, in configuration order."""
        with self._stats_lock:
            out = []
            for url in self.urls:
                record = self._reputation.record(url)
                out.append(RouterStat(url, record.score, record.successes, record.failures,
                                      record.consecutive_failures, self._last_error.get(url)))
            return out


class Dialer(Protocol):
    """Our P2P node as the delegated source needs it: dial a provider, then fetch."""

    def connect(self, addr: str) -> str: ...

    def fetch_block(self, cid: CID, cancel: threading.Event | None = None) -> bytes: ...

    def fetch_dag(self, root: CID, cancel: threading.Event | None = None) -> None: ...


class DelegatedSource:
    """A ``BlockFetcher`` that finds providers through the delegated routers and fetches
    from them: HTTP providers as trustless gateways, bitswap providers by dialling them
    and asking over bitswap. Both verify every block before it is stored."""

    name = "delegated-routing"

    def __init__(self, routing: DelegatedRouting, store: BlockPut, *,
                 node: Dialer | None = None, timeout: float = 30.0) -> None:
        self.routing = routing
        self.store = store
        self.node = node
        self.timeout = timeout
        self._gateways: dict[str, TrustlessGateways] = {}  # kept: their reputation too
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            gateways, self._gateways = list(self._gateways.values()), {}
        for gateway in gateways:
            gateway.close()

    def gateway_stats(self) -> list[GatewayStat]:
        """The reputation of each gateway the routers named that we fetched from."""
        with self._lock:
            gateways = list(self._gateways.values())
        return [stat for gateway in gateways for stat in gateway.stats()]

    def _gateway(self, url: str) -> TrustlessGateways:
        with self._lock:
            if url not in self._gateways:
                self._gateways[url] = TrustlessGateways([url], self.store, timeout=self.timeout)
            return self._gateways[url]

    def _fetch(self, cid: CID, cancel: threading.Event | None,
               call: Callable[[BlockFetcher, threading.Event | None], _T]) -> _T:
        found, errors = self.routing.providers(cid)
        failures = [f"{url}: {why}" for url, why in errors.items()]
        for provider in found:
            for url in provider.gateway_urls:
                if (why := self.routing.refusal(provider, url=url)) is not None:
                    failures.append(f"{provider.peer_id}: refused, {why}")
                    continue
                try:
                    return call(self._gateway(url), cancel)
                except (BlockNotFound, NetworkError) as exc:
                    failures.append(f"{provider.peer_id} at {url}: {exc}")
        dialled = False
        if self.node is not None:
            for provider in found:
                for addr in provider.bitswap_addrs:
                    if (why := self.routing.refusal(provider, multiaddr=addr)) is not None:
                        failures.append(f"{provider.peer_id}: refused, {why}")
                        continue
                    full = addr if "/p2p/" in addr else f"{addr}/p2p/{provider.peer_id}"
                    try:
                        self.node.connect(full)
                        dialled = True
                        break
                    except (NetworkError, BackendUnavailable) as exc:
                        failures.append(f"{provider.peer_id} at {addr}: {exc}")
            if dialled:
                return call(self.node, cancel)
        if not found:
            failures.append("no router knows a provider")
        raise BlockNotFound(cid_str(cid), f"providers from the delegated routers "
                                          f"({'; '.join(failures)})")

    def fetch_block(self, cid: CID, cancel: threading.Event | None = None) -> bytes:
        """Raises: BlockNotFound (no provider the routers named had it, each named)."""
        return self._fetch(cid, cancel, lambda f, c: f.fetch_block(cid, c))

    def fetch_dag(self, root: CID, cancel: threading.Event | None = None) -> None:
        """Raises: BlockNotFound (no provider the routers named had it, each named)."""
        self._fetch(root, cancel, lambda f, c: f.fetch_dag(root, c))
