"""``--network public``: the IPFS network's bootstrap peers, every interface, AutoNAT, relays
and hole punching; ``local`` (the default) stays on this machine. Explicit options win.

Nothing here dials beyond 127.0.0.1: every node that runs is given loopback listen
addresses and a loopback bootstrap peer, which replace the preset's.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import trio
import trio.testing
from libp2p.custom_types import TProtocol

from ipfs_mcp.backends.core.ip_scope import DialScope
from ipfs_mcp.backends.errors import InvalidInput
from ipfs_mcp.p2p._net import NET_ERRORS
from ipfs_mcp.p2p.config import NodeConfig
from ipfs_mcp.p2p.network_presets import PRESETS, Network, preset_for
from ipfs_mcp.server.config import NETWORKS, ServerSettings
from ipfs_mcp.server.serve import add_arguments, settings_from_args
from ipfs_mcp.server.state import _node_config
from tests.cli.test_daemon import ipfs_mcp, start_daemon, stop
from tests.p2p.nodes import config, node_at

pytestmark = pytest.mark.anyio

# Kubo 0.43.1's config.DefaultBootstrapAddresses, as its binary ships them.
KUBO_043_BOOTSTRAP = [
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmQCU2EcMqAqQPR2i9bChDtGNJchTbq5TbXJJ16u19uLTa",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmbLHAnMoJPWSCR5Zhtx6BHJX9KiKNN6tpvbUcqanj75Nb",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmcZf59bWwK5XFi76CZX8cbJ4BhTzzA3gU1ZjYZcYW3dwt",
    "/dnsaddr/va1.bootstrap.libp2p.io/p2p/12D3KooWKnDdG3iXw9eTFijk3EWSunZcFi54Zka4wmtqtt6rPxc8",
    "/ip4/104.131.131.82/tcp/4001/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ",
    "/ip4/104.131.131.82/udp/4001/quic-v1/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ",
]
LOOPBACK = "/ip4/127.0.0.1/tcp/0"
KAD = [TProtocol("/ipfs/kad/1.0.0")]


def test_the_public_preset_is_kubos_bootstrap_every_interface_autonat_relay_and_punching(
        ) -> None:
    config = NodeConfig.for_network("public")
    assert list(config.bootstrap) == KUBO_043_BOOTSTRAP
    assert config.listen_addrs == ("/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1",
                                   "/ip6/::/tcp/4001", "/ip6/::/udp/4001/quic-v1")
    assert config.network == Network.PUBLIC and config.dial_scope == DialScope.PUBLIC
    preset = preset_for("public")
    assert preset.autonat and preset.relay_client and preset.hole_punching
    # The Amino DHT as a client until AutoNAT says public; a leecher stays a client.
    assert config.dht_server_once_public
    assert not NodeConfig.for_network("public", role="leecher").dht_server_once_public


def test_explicit_values_replace_the_presets() -> None:
    peer = "/ip4/127.0.0.1/tcp/4101/p2p/12D3KooWKnDdG3iXw9eTFijk3EWSunZcFi54Zka4wmtqtt6rPxc8"
    config = NodeConfig.for_network("public", listen_addrs=[LOOPBACK], bootstrap=[peer],
                                    dial_scope="loopback", role="master")
    assert config.listen_addrs == (LOOPBACK,) and config.bootstrap == (peer,)
    assert config.dial_scope == DialScope.LOOPBACK and config.network == Network.PUBLIC
    # Empty and missing values are "not given": the preset's stay.
    kept = NodeConfig.for_network("public", listen_addrs=(), bootstrap=None)
    assert list(kept.bootstrap) == KUBO_043_BOOTSTRAP


def test_the_default_is_still_this_machine_only() -> None:
    for chosen in (NodeConfig(), NodeConfig.for_network(None), NodeConfig.for_network("local")):
        assert chosen.network == Network.LOCAL
        assert chosen.listen_addrs == (LOOPBACK,) and chosen.bootstrap == ()
        assert chosen.dial_policy().scope == DialScope.LOOPBACK
        assert not chosen.dht_server_once_public
    assert not preset_for(None).relay_client and not preset_for(None).hole_punching
    with pytest.raises(InvalidInput, match="use one of local, public"):
        preset_for("internet")


def test_the_servers_names_are_the_presets() -> None:
    assert NETWORKS == tuple(n.value for n in Network) == tuple(PRESETS)


def test_the_option_and_the_environment_reach_the_node_config() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    peer = "/ip4/127.0.0.1/tcp/4102/p2p/12D3KooWKnDdG3iXw9eTFijk3EWSunZcFi54Zka4wmtqtt6rPxc8"
    args = parser.parse_args(["--network", "public", "--bootstrap", peer])
    config = _node_config(settings_from_args(args))
    assert config.network == Network.PUBLIC and config.bootstrap == (peer,)
    assert config.listen_addrs == preset_for("public").listen_addrs
    from_env = _node_config(ServerSettings.load({"IPFS_MCP_NETWORK": "public",
                                                 "IPFS_MCP_LISTEN": LOOPBACK}))
    assert from_env.network == Network.PUBLIC and from_env.listen_addrs == (LOOPBACK,)
    assert list(from_env.bootstrap) == KUBO_043_BOOTSTRAP
    assert _node_config(ServerSettings.load({})).network == Network.LOCAL
    with pytest.raises(InvalidInput, match="network 'moon'"):
        ServerSettings.load({"IPFS_MCP_NETWORK": "moon"})
    with pytest.raises(SystemExit):
        parser.parse_args(["--network", "moon"])


async def test_the_dht_serves_once_autonat_says_public(tmp_path: Path) -> None:
    """The node starts a DHT client (a peer asking it gets nothing served); when AutoNAT's
    peers agree it is reachable, it serves: a peer then opens a DHT stream to it."""
    with trio.fail_after(60):
        async with node_at(tmp_path / "b") as b:
            config = NodeConfig.for_network("public", listen_addrs=[LOOPBACK],
                                            bootstrap=[b.addrs[0]])
            async with node_at(tmp_path / "a", config) as a:
                assert not a.routing.server_mode
                await b.wait_for_peer(a.peer_id)
                with pytest.raises(NET_ERRORS):  # a client serves no DHT stream
                    await b.host.new_stream(a.host.get_id(), KAD)
                reach = a.peers.reachability
                # Three peers that dialled us back, as AutoNAT's answers arrive.
                for voter in ("v1", "v2", "v3"):
                    reach.answers[voter] = "reached"
                    reach.asked.done()
                await trio.testing.wait_all_tasks_blocked()  # the switch has run
                assert a.routing.server_mode
                stream = await b.host.new_stream(a.host.get_id(), KAD)
                # On loopback, b asks on the LAN id first (Kubo's dual DHT): served as well.
                assert str(stream.get_protocol()) == "/ipfs/lan/kad/1.0.0"
                await stream.close()


async def test_id_json_says_which_network(tmp_path: Path) -> None:
    stopped = json.loads((await ipfs_mcp(tmp_path, "id", "--json")).stdout)
    assert stopped["network"] == "local"
    # Loopback in place of the preset's interfaces and peers: nothing leaves the machine.
    env = {"IPFS_MCP_NETWORK": "public", "IPFS_MCP_LISTEN": LOOPBACK,
           "IPFS_MCP_BOOTSTRAP": "/ip4/127.0.0.1/tcp/9/p2p/"
                                 "12D3KooWKnDdG3iXw9eTFijk3EWSunZcFi54Zka4wmtqtt6rPxc8"}
    proc, printed = await start_daemon(tmp_path, env)
    try:
        card = json.loads((await ipfs_mcp(tmp_path, "id", "--json")).stdout)
    finally:
        assert await stop(proc, signal.SIGTERM) == 0
    assert card["running"] is True and card["network"] == "public"
    assert "network:  public" in printed


async def test_a_public_node_behind_nat_reserves_a_slot_on_a_connected_relay(
        tmp_path: Path) -> None:
    """Once AutoNAT's peers agree they cannot dial it back, a ``public`` node reserves a
    slot on a relay it is connected to (our master, which serves the relay protocol)."""
    with trio.fail_after(60):
        async with node_at(tmp_path / "relay", config(role="master")) as relay:
            cfg = NodeConfig.for_network("public", listen_addrs=[LOOPBACK],
                                         bootstrap=[relay.addrs[0]])
            async with node_at(tmp_path / "a", cfg) as a:
                await a.wait_for_peer(relay.peer_id)
                assert not a.relay.reservations()
                reach = a.peers.reachability
                for voter in ("v1", "v2", "v3"):  # three peers failed to dial us back
                    reach.answers[voter] = "failed"
                    reach.asked.done()
                while relay.host.get_id() not in a.relay.reservations():
                    await a.relay.changed()
