"""Observed addresses (p2p/observed_addrs.py): what identify tells us, kept, bounded, and
advertised only once two peers agree or AutoNAT says public."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from multiaddr import Multiaddr

from ipfs_mcp.p2p.observed_addrs import ObservedAddrs, thin_waist
from ipfs_mcp.p2p.reachability import Status

from .nodes import node_at

pytestmark = pytest.mark.anyio

PUBLIC = "/ip4/11.77.0.3/tcp/4001"


def test_one_peer_is_not_enough_to_advertise_two_are() -> None:
    observed = ObservedAddrs()
    observed.record("peer-1", Multiaddr(PUBLIC).to_bytes())
    observed.record("peer-1", PUBLIC)  # the same peer again counts once
    assert observed.confirmed() == []
    assert [str(a) for a in observed.for_hole_punch()] == [PUBLIC]  # offered in DCUtR
    observed.record("peer-2", f"{PUBLIC}/p2p/12D3KooWBKuUv2QSor4tRft24X4GcQH7HmqFVcw3m4tA8auuVahz")
    assert [str(a) for a in observed.confirmed()] == [PUBLIC]


def test_autonat_public_confirms_what_one_peer_saw() -> None:
    status: list[Status] = ["unknown"]
    observed = ObservedAddrs(reachability=lambda: status[0])
    observed.record("peer-1", PUBLIC)
    assert observed.confirmed() == []
    status[0] = "public"
    assert [str(a) for a in observed.confirmed()] == [PUBLIC]


@pytest.mark.parametrize("raw", [
    b"\xff\xff", "/ip4/0.0.0.0/tcp/4001", "/ip4/11.77.0.3/tcp/0", "/ip4/11.77.0.3/udp/4001/quic-v1",
    "/ip4/11.77.0.2/tcp/4001/p2p/12D3KooWBKuUv2QSor4tRft24X4GcQH7HmqFVcw3m4tA8auuVahz/p2p-circuit",
    "/dns4/example.org/tcp/4001",
], ids=["garbage", "unspecified", "port-0", "quic", "relayed", "dns"])
def test_what_is_no_tcp_address_of_ours_is_not_kept(raw: bytes | str) -> None:
    observed = ObservedAddrs()
    assert observed.record("peer-1", raw) is None
    assert observed.for_hole_punch() == []
    assert thin_waist(raw) is None


def test_addresses_and_observers_are_bounded() -> None:
    observed = ObservedAddrs(max_addrs=3, max_observers=2)
    for port in range(4001, 4011):  # ten addresses from one lying peer: the last 3 stay
        observed.record("liar", f"/ip4/11.77.0.3/tcp/{port}")
    assert [str(a) for a in observed.for_hole_punch()] == [
        f"/ip4/11.77.0.3/tcp/{p}" for p in (4008, 4009, 4010)]
    for n in range(5):
        observed.record(f"peer-{n}", PUBLIC)
    assert observed.observers(PUBLIC) == 2


async def test_identify_tells_a_node_where_its_peer_sees_it(tmp_path: Path) -> None:
    async with node_at(tmp_path / "a") as a, node_at(tmp_path / "b") as b:
        with trio.fail_after(30):
            await a.connect_peer(b.addrs[0])
        # A dialled from its listen port (port reuse): B saw A there.
        listen = str(Multiaddr(a.addrs[0]).decapsulate(Multiaddr(f"/p2p/{a.peer_id}")))
        assert a.peers.observed.observers(listen) == 1
        assert [str(x) for x in a.peers.observed.for_hole_punch()] == [listen]
