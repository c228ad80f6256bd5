"""Delegated routing (``/routing/v1``, the http-routing-v1 spec) on the gateway's port.

``GET /routing/v1/ipns/{name}`` (IPIP-379) answers the signed record the lookup holds for a
name, as ``application/vnd.ipfs.ipns-record``, validated again before it is sent (404 when
none valid is held). ``GET /routing/v1/providers/{cid}`` and
``GET /routing/v1/peers/{peer-id}`` answer from the :class:`~.source.ProviderLookup` handed in: JSON (``{"Providers": [...]}``) or, when the
client's ``Accept`` asks for it, NDJSON (one record a line). An empty answer is still 200
(with a short cache lifetime), as the spec asks; a gateway built without a lookup answers
501. Records use the ``peer`` schema, filtered as the request's ``filter-protocols`` and
``filter-addrs`` ask (:mod:`.routing_filters`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any
from urllib.parse import unquote

import anyio
from multiformats import CID, multibase, multihash

from ipfs_mcp.backends.core import ipns
from ipfs_mcp.backends.core.cids import parse_cid
from ipfs_mcp.backends.errors import InvalidInput, InvalidRecord, IpfsMcpError

from .routing_filters import RecordFilter
from .source import PeerRecord, ProviderLookup, ProviderRecord

Scope = MutableMapping[str, Any]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

NDJSON = "application/x-ndjson"
IPNS_RECORD = "application/vnd.ipfs.ipns-record"
MAX_RECORDS = 100
LOOKUP_TIMEOUT = 30.0
_LIBP2P_KEY = 0x72


def parse_peer_id(text: str) -> str:
    """A peer id as base58btc text, from its legacy base58 form (``Qm...``, ``12D3...``)
    or a CIDv1 with the libp2p-key codec (``k51...``, ``bafz...``).

    Raises:
        InvalidInput: neither form.
    """
    try:
        if text.startswith(("Qm", "1")):  # a bare base58btc multihash
            digest = multibase.decode("z" + text)
            multihash.unwrap(digest)  # raises when it is not a multihash
            return text
        cid = CID.decode(text)
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"{text!r} is not a peer id") from exc
    if cid.codec.code != _LIBP2P_KEY:
        raise InvalidInput(f"{text!r} is a CID of {cid.codec.name}, not a libp2p-key")
    return multibase.encode(bytes(cid.digest), "base58btc")[1:]


class InMemoryProviders:
    """A real, in-memory :class:`~.source.ProviderLookup`: records put in are answered.

    Useful on its own (a gateway that announces only itself) and as the default in tests;
    the node's provider store and DHT implement the same protocol.
    """

    def __init__(self) -> None:
        self._providers: dict[bytes, list[ProviderRecord]] = {}
        self._peers: dict[str, PeerRecord] = {}
        self._ipns: dict[str, bytes] = {}

    def add_provider(self, cid: CID, record: ProviderRecord) -> None:
        self._providers.setdefault(bytes(cid.digest), []).append(record)

    def add_peer(self, record: PeerRecord) -> None:
        self._peers[record.peer_id] = record

    async def find_providers(self, cid: CID, limit: int) -> list[ProviderRecord]:
        return self._providers.get(bytes(cid.digest), [])[:limit]

    async def find_peer(self, peer_id: str) -> list[PeerRecord]:
        found = self._peers.get(peer_id)
        return [found] if found else []

    def add_ipns_record(self, name: str, raw: bytes) -> None:
        self._ipns[ipns.ipns_name(ipns.name_multihash(name))] = raw

    async def ipns_record(self, name: str) -> bytes | None:
        return self._ipns.get(name)


def _record(record: ProviderRecord | PeerRecord) -> dict[str, object]:
    out: dict[str, object] = {"Schema": "peer", "ID": record.peer_id,
                              "Addrs": list(record.addrs)}
    if record.protocols:
        out["Protocols"] = list(record.protocols)
    return out


class RoutingEndpoints:
    def __init__(self, lookup: ProviderLookup | None) -> None:
        self.lookup = lookup

    async def handle(self, scope: Scope, send: Send) -> None:
        method = scope["method"]
        path = unquote(scope["path"])
        accept = ""
        for name, value in scope.get("headers", ()):
            if name == b"accept":
                accept = value.decode("latin-1").lower()
        if method not in ("GET", "HEAD"):
            await _json(send, 405, {"error": "only GET is served"}, [(b"allow", b"GET, HEAD")])
            return
        match = re.fullmatch(r"/routing/v1/(providers|peers|ipns)/([^/]+)", path)
        if match is None:
            await _json(send, 404, {"error": "not a /routing/v1 endpoint served here"})
            return
        kind, key = match.groups()
        if self.lookup is None:
            await _json(send, 501, {"error": "this gateway has no routing to answer from"})
            return
        if kind == "ipns":
            await _ipns(self.lookup, key, send, method == "HEAD")
            return
        try:
            records: Sequence[ProviderRecord | PeerRecord]
            with anyio.fail_after(LOOKUP_TIMEOUT):
                if kind == "providers":
                    records = await self.lookup.find_providers(parse_cid(key), MAX_RECORDS)
                else:
                    records = await self.lookup.find_peer(parse_peer_id(key))
        except InvalidInput as exc:
            await _json(send, 400, {"error": str(exc)})
            return
        except TimeoutError:
            records = []
        except IpfsMcpError as exc:
            await _json(send, 500, {"error": str(exc)})
            return
        wanted = RecordFilter(scope.get("query_string", b""))
        kept = (wanted.apply(r) for r in records[:MAX_RECORDS])
        items = [_record(r) for r in kept if r is not None]
        cache = b"public, max-age=300" if items else b"public, max-age=15"
        extra = [(b"cache-control", cache), (b"vary", b"Accept")]
        if NDJSON in accept:
            body = b"".join(json.dumps(item).encode() + b"\n" for item in items)
            await _send(send, 200, NDJSON.encode(), body, extra, method == "HEAD")
            return
        field = "Providers" if kind == "providers" else "Peers"
        body = json.dumps({field: items}).encode()
        await _send(send, 200, b"application/json", body, extra, method == "HEAD")


async def _ipns(lookup: ProviderLookup, key: str, send: Send, head: bool) -> None:
    """A name's signed record as the lookup holds it (IPIP-379), re-validated so that
    nothing expired or forged is served; 404 when none is held."""
    try:
        name = ipns.ipns_name(ipns.name_multihash(key))
        with anyio.fail_after(LOOKUP_TIMEOUT):
            raw = await lookup.ipns_record(name)
        record = ipns.validate_record(name, raw) if raw is not None else None
    except InvalidInput as exc:
        await _json(send, 400, {"error": str(exc)})
        return
    except (TimeoutError, InvalidRecord):
        record = None
    if record is None:
        await _json(send, 404, {"error": "no valid record of this name is held here"},
                    [(b"cache-control", b"public, max-age=15")])
        return
    ttl = int(record.ttl_ns // 1_000_000_000)
    await _send(send, 200, IPNS_RECORD.encode(), record.raw,
                [(b"cache-control", f"public, max-age={ttl}".encode()), (b"vary", b"Accept")],
                head)


async def _json(send: Send, status: int, obj: object,
                extra: list[tuple[bytes, bytes]] | None = None) -> None:
    await _send(send, status, b"application/json", json.dumps(obj).encode(), extra or [], False)


async def _send(send: Send, status: int, content_type: bytes, body: bytes,
                extra: list[tuple[bytes, bytes]], head: bool) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
               (b"access-control-allow-origin", b"*"), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})
