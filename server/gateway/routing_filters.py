"""``filter-protocols`` and ``filter-addrs`` on ``/routing/v1`` answers (IPIP-484), as boxo's
server applies them; Kubo 0.43 sends ``filter-protocols`` on every request.

- ``filter-protocols=a,b``: keep a record that names any of them; ``unknown`` also keeps a
  record that names none.
- ``filter-addrs=tcp,!p2p-circuit``: keep the addresses holding a positive protocol (any,
  when only negatives are given) and none of the negative ones; a record left with no
  address is dropped, unless it had none and ``unknown`` is asked for.
"""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import parse_qs

from multiaddr import Multiaddr
from multiaddr.exceptions import Error as MultiaddrError

from .source import PeerRecord, ProviderRecord

MAX_FILTERS = 32  # names per parameter; beyond that the rest are ignored


def _names(query: dict[str, list[str]], key: str) -> list[str]:
    values = query.get(key) or []
    names = [n.strip().lower() for v in values for n in v.split(",") if n.strip()]
    return names[:MAX_FILTERS]


class RecordFilter:
    """The filters one request asked for (none: every record passes unchanged)."""

    def __init__(self, query_string: bytes) -> None:
        query = parse_qs(query_string.decode("latin-1"))
        self.protocols = _names(query, "filter-protocols")
        addrs = _names(query, "filter-addrs")
        self.addr_filters = addrs
        self.positive = {n for n in addrs if not n.startswith("!") and n != "unknown"}
        self.negative = {n[1:] for n in addrs if n.startswith("!")}

    def _protocols_allowed(self, protocols: tuple[str, ...]) -> bool:
        if not self.protocols:
            return True
        if "unknown" in self.protocols and not protocols:
            return True
        return any(p.lower() in self.protocols for p in protocols)

    def _addr_allowed(self, addr: str) -> bool:
        try:
            names = {p.name for p in Multiaddr(addr).protocols()}
        except (ValueError, MultiaddrError):  # not a multiaddr: matches no filter
            return False
        if names & self.negative:
            return False
        return not self.positive or bool(names & self.positive)

    def apply(self, record: ProviderRecord | PeerRecord) -> ProviderRecord | PeerRecord | None:
        """The record as filtered, or None when it is to be left out."""
        if not self._protocols_allowed(record.protocols):
            return None
        if not self.addr_filters or (not record.addrs and "unknown" in self.addr_filters):
            return record
        kept = tuple(a for a in record.addrs if self._addr_allowed(a))
        return replace(record, addrs=kept) if kept else None
