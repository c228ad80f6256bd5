"""Relayed addresses (``<relay>/p2p-circuit/p2p/<peer>``) are refused until relays exist.

Their first ``/p2p/`` names the relay, so reading them as a plain peer address dialled the
relay and asked it for the content ("not found in 1 peer(s)"). Now they are refused before
anything is dialled, in one line that says why: through the CLI's ``get --peer`` and through
the node's own ``connect_peer``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID

from ipfs_mcp.backends.errors import InvalidInput
from tests.cli.test_cli_network_get import get_to_x, one_error_line, provider
from tests.p2p.nodes import node_at

pytestmark = pytest.mark.anyio

CID = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"


def circuit_through(relay_addr: str) -> str:
    target = ID.from_pubkey(create_new_key_pair().public_key)
    return f"{relay_addr}/p2p-circuit/p2p/{target}"


async def test_get_refuses_a_circuit_address_without_dialling_the_relay(tmp_path: Path) -> None:
    async with provider(tmp_path, "relay") as relay:
        ran = await get_to_x(tmp_path, tmp_path / "home", CID, circuit_through(relay.addrs[0]))
        assert relay.connected_peers() == []  # the relay was never dialled
    line = one_error_line(ran)
    assert "relayed addresses are not supported yet" in line and "--peer" in line
    assert not (tmp_path / "x").exists()


async def test_connect_peer_refuses_a_circuit_address(tmp_path: Path) -> None:
    async with node_at(tmp_path / "relay") as relay, node_at(tmp_path / "me") as me:
        with trio.fail_after(30), pytest.raises(InvalidInput, match="relayed addresses"):
            await me.connect_peer(circuit_through(relay.addrs[0]))
        assert me.connected_peers() == [] and relay.connected_peers() == []
