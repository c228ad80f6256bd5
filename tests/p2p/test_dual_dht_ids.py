"""Which DHT id our requests offer a peer first, as Kubo's dual DHT would speak to it.

The Kubo side of it (a record given to a loopback Kubo DHT server is found by another Kubo
after we left) is tests/interop/test_kubo043_dual_dht.py.
"""

from __future__ import annotations

import pytest

from ipfs_mcp.p2p.routing import KAD_PROTOCOL, LAN_KAD_PROTOCOL, kad_ids_for

LAN_FIRST = [LAN_KAD_PROTOCOL, KAD_PROTOCOL]
AMINO_FIRST = [KAD_PROTOCOL, LAN_KAD_PROTOCOL]


@pytest.mark.parametrize(("hosts", "expected"), [
    (["127.0.0.1"], LAN_FIRST),
    (["::1", "192.168.1.20", "10.0.0.7"], LAN_FIRST),
    (["8.8.8.8"], AMINO_FIRST),
    (["127.0.0.1", "11.77.0.5"], AMINO_FIRST),  # reachable publicly too: Amino, as Kubo
    (["example.org"], AMINO_FIRST),  # a name may be anywhere
    ([], AMINO_FIRST),  # nothing known
])
def test_lan_id_first_only_for_a_peer_we_reach_nearby(hosts: list[str],
                                                      expected: list[str]) -> None:
    assert kad_ids_for(hosts) == expected
