"""Relayed addresses (``<relay>/p2p-circuit/p2p/<peer>``) name the peer after ``/p2p-circuit``.

Their first ``/p2p/`` names the relay: read as a plain peer address, they dialled the relay
and asked it for the content ("not found in 1 peer(s)"). Now they are dialled through the
relay (p2p/relay/circuit_dial.py), and what fails says so in one line: a "relay" that is no
relay, an address with no peer after ``/p2p-circuit``; through the CLI's ``get --peer`` and
through the node's own ``connect_peer``. Success through a real relay (Kubo 0.43.1) is in
test_relay_client.py, and ``get --peer`` through it below.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.errors import InvalidInput, RelayError
from tests.cli.test_cli_network_get import get_to_x, one_error_line, provider
from tests.p2p.nodes import add_bytes, node_at, repo_at
from tests.p2p.test_relay_client import circuit_to, kubo_relay, reserved_node

__all__ = ["kubo_relay"]  # the module-scoped Kubo relay fixture, used here too

pytestmark = pytest.mark.anyio

CID = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"


def circuit_through(relay_addr: str) -> str:
    target = ID.from_pubkey(create_new_key_pair().public_key)
    return f"{relay_addr}/p2p-circuit/p2p/{target}"


async def test_get_through_a_peer_that_is_no_relay_says_so_and_writes_nothing(
        tmp_path: Path) -> None:
    async with provider(tmp_path, "relay") as relay:
        ran = await get_to_x(tmp_path, tmp_path / "home", CID, circuit_through(relay.addrs[0]))
    line = one_error_line(ran)
    assert "is not a relay" in line
    assert not (tmp_path / "x").exists()


async def test_get_refuses_a_circuit_address_naming_no_peer_without_dialling(
        tmp_path: Path) -> None:
    async with provider(tmp_path, "relay") as relay:
        ran = await get_to_x(tmp_path, tmp_path / "home", CID,
                             f"{relay.addrs[0]}/p2p-circuit")
        assert relay.connected_peers() == []  # the relay was never dialled
    line = one_error_line(ran)
    assert "names no peer" in line and "--peer" in line
    assert not (tmp_path / "x").exists()


async def test_get_through_the_kubo_relay_writes_the_bytes(kubo_relay: object,
                                                           tmp_path: Path) -> None:
    data = os.urandom(5000)
    async with reserved_node(tmp_path / "a", kubo_relay) as a:
        cid = add_bytes(repo_at(tmp_path / "a"), data)
        ran = await get_to_x(tmp_path, tmp_path / "home", cid_str(cid),
                             circuit_to(kubo_relay, a.peer_id))
    assert ran.code == 0, ran.stderr
    assert (tmp_path / "x").read_bytes() == data


async def test_connect_peer_dials_through_the_relay_not_to_it(tmp_path: Path) -> None:
    async with node_at(tmp_path / "relay") as relay, node_at(tmp_path / "me") as me:
        with trio.fail_after(30), pytest.raises(RelayError, match="is not a relay"):
            await me.connect_peer(circuit_through(relay.addrs[0]))
        # Only the relay was reached: the address's peer is the one after /p2p-circuit.
        assert [str(p) for p in me.connected_peers()] == [relay.peer_id]
        with trio.fail_after(30), pytest.raises(InvalidInput, match="names no peer"):
            await me.connect_peer(f"{relay.addrs[0]}/p2p-circuit")
