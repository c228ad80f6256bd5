"""A real DNS server on 127.0.0.1 for the DNSLink tests: dnspython's own message handling
over a UDP socket, served from a thread. It answers TXT questions from a small zone the test
writes, counts the questions it was asked, and can be told to stay silent (a resolver that
never answers)."""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest


@dataclass
class DnsZone:
    """TXT records by name (lower case, no final dot); each record a list of strings."""

    txt: dict[str, list[list[str]]] = field(default_factory=dict)
    ttl: int = 300
    silent: bool = False  # receive and never answer
    asked: Counter[str] = field(default_factory=Counter)

    def link(self, name: str, *values: str) -> None:
        self.txt[name] = [[value] for value in values]


def _answer(zone: DnsZone, wire: bytes) -> bytes | None:
    query = dns.message.from_wire(wire)
    question = query.question[0]
    name = question.name.to_text(omit_final_dot=True).lower()
    zone.asked[name] += 1
    if zone.silent:
        return None
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    records = zone.txt.get(name)
    if records is None:
        response.set_rcode(dns.rcode.NXDOMAIN)
    elif question.rdtype == dns.rdatatype.TXT:
        texts = [" ".join(f'"{part}"' for part in record) for record in records]
        response.answer.append(dns.rrset.from_text_list(
            question.name, zone.ttl, dns.rdataclass.IN, dns.rdatatype.TXT, texts))
    return response.to_wire(max_size=65535)


@contextmanager
def dns_server(zone: DnsZone) -> Iterator[str]:
    """Serve ``zone`` on 127.0.0.1; yields the resolver address ``127.0.0.1:<port>``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)  # how often the thread looks at the stop flag
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                wire, peer = sock.recvfrom(65535)
            except TimeoutError:
                continue
            reply = _answer(zone, wire)
            if reply is not None:
                sock.sendto(reply, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        sock.close()


@pytest.fixture
def dns_zone() -> Iterator[tuple[DnsZone, str]]:
    """A zone (TTL 30 s) served on 127.0.0.1, and the resolver address to configure."""
    zone = DnsZone(ttl=30)
    with dns_server(zone) as address:
        yield zone, address
