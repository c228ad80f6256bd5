"""Which network a node joins: ``local`` (the default) or ``public`` (the IPFS network).

A preset is a set of defaults; every value a person gives explicitly (``--listen``,
``--bootstrap``, ``--dial-scope``) replaces the preset's, so ``--network public --bootstrap
<a peer in a test>`` keeps the public behaviour without leaving the machine.

::

    preset  listen                                 bootstrap        dial scope  DHT
    local   /ip4/127.0.0.1/tcp/0                   none             loopback    the role's
    public  0.0.0.0 and :: on 4001, TCP and QUIC   Kubo 0.43.1's    public      client until
                                                                                AutoNAT says
                                                                                public

Both run AutoNAT (reachability.py). ``public`` also asks for the relay client (reserve a slot
when AutoNAT says private, on relays among the connected peers that offer
:data:`RELAY_HOP_PROTOCOL`) and hole punching; :attr:`NetworkPreset.relay_client` and
:attr:`NetworkPreset.hole_punching` are what the node reads to start them.

Kubo's bootstrap list names ``/dnsaddr/`` peers: py-libp2p's bootstrap discovery resolves
them through py-multiaddr's ``DNSResolver`` (TXT ``_dnsaddr.<name>``, recursively, each
attempt bounded by the host's DNS timeout), and every address it yields is dialled through
the dial gate like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ipfs_mcp.backends.core.ip_scope import DialScope
from ipfs_mcp.backends.errors import InvalidInput

LOCALHOST = "/ip4/127.0.0.1/tcp/0"

# Kubo 0.43.1's config.DefaultBootstrapAddresses (config/bootstrap_peers.go), the peers its
# "auto" bootstrap falls back to; copied as it ships.
KUBO_BOOTSTRAP_PEERS: tuple[str, ...] = (
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmQCU2EcMqAqQPR2i9bChDtGNJchTbq5TbXJJ16u19uLTa",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmbLHAnMoJPWSCR5Zhtx6BHJX9KiKNN6tpvbUcqanj75Nb",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmcZf59bWwK5XFi76CZX8cbJ4BhTzzA3gU1ZjYZcYW3dwt",
    "/dnsaddr/va1.bootstrap.libp2p.io/p2p/12D3KooWKnDdG3iXw9eTFijk3EWSunZcFi54Zka4wmtqtt6rPxc8",
    "/ip4/104.131.131.82/tcp/4001/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ",
    "/ip4/104.131.131.82/udp/4001/quic-v1/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ",
)

# Kubo's default Addresses.Swarm: every interface, IPv4 and IPv6, TCP and QUIC on 4001.
PUBLIC_LISTEN: tuple[str, ...] = (
    "/ip4/0.0.0.0/tcp/4001",
    "/ip4/0.0.0.0/udp/4001/quic-v1",
    "/ip6/::/tcp/4001",
    "/ip6/::/udp/4001/quic-v1",
)

# The same for a one-shot node (`ipfs-mcp get --network public`): any free port, so it never
# shares 4001 with a daemon on this machine (both listen with SO_REUSEPORT, and the kernel
# would hand the daemon's inbound connections to the get). Its dials still leave from the
# port it got, so hole punching works as well.
ONE_SHOT_PUBLIC_LISTEN: tuple[str, ...] = tuple(a.replace("/4001", "/0") for a in PUBLIC_LISTEN)

RELAY_HOP_PROTOCOL = "/libp2p/circuit/relay/0.2.0/hop"


class Network(StrEnum):
    LOCAL = "local"
    PUBLIC = "public"


@dataclass(frozen=True)
class NetworkPreset:
    """The defaults one network gives a node (explicit settings win over each)."""

    network: Network
    listen_addrs: tuple[str, ...]
    bootstrap: tuple[str, ...]
    dial_scope: DialScope | None  # None: the scope the node listens on
    # The DHT starts in client mode and serves once AutoNAT says peers can dial us back, as
    # Kubo's "auto" mode: a node behind NAT that served would be asked and never answer.
    dht_server_once_public: bool
    relay_client: bool  # reserve relay slots while AutoNAT says private
    hole_punching: bool  # DCUtR over relayed connections
    autonat: bool = True  # ask peers whether they can dial us back (both presets)

    def node_defaults(self) -> dict[str, Any]:
        """The NodeConfig fields this preset sets, by name."""
        return {"listen_addrs": self.listen_addrs, "bootstrap": self.bootstrap,
                "dial_scope": self.dial_scope}


PRESETS: dict[Network, NetworkPreset] = {
    # Today's safety defaults: loopback only, no bootstrap peer, nothing dialled unasked.
    Network.LOCAL: NetworkPreset(Network.LOCAL, (LOCALHOST,), (), None,
                                 dht_server_once_public=False, relay_client=False,
                                 hole_punching=False),
    Network.PUBLIC: NetworkPreset(Network.PUBLIC, PUBLIC_LISTEN, KUBO_BOOTSTRAP_PEERS,
                                  DialScope.PUBLIC, dht_server_once_public=True,
                                  relay_client=True, hole_punching=True),
}


def parse_network(value: str | Network | None) -> Network:
    """``local`` (also for None or empty) or ``public``.

    Raises:
        InvalidInput: another name.
    """
    text = (value or Network.LOCAL).strip().lower()
    try:
        return Network(text)
    except ValueError:
        raise InvalidInput(f"network {text!r}: use one of "
                           f"{', '.join(n.value for n in Network)}") from None


def preset_for(value: str | Network | None) -> NetworkPreset:
    """The preset of network ``value`` (default ``local``).

    Raises:
        InvalidInput: not a network name.
    """
    return PRESETS[parse_network(value)]
