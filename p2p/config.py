"""Node settings: roles and their defaults, listen addresses, discovery, limits.

Safe by default: listen on 127.0.0.1 only (and so dial 127.0.0.1 only: ``dial_scope``), no
bootstrap peers, mDNS off (the ``local`` network; ``NodeConfig.for_network("public")`` takes
the public preset of network_presets.py). One setting each opens the node up: ``listen_addrs=("/ip4/0.0.0.0/tcp/4001",)`` (or ``lan=True``) for a LAN,
``mdns=True`` for LAN discovery, ``bootstrap=(...)`` for the public network.

Roles (``ROLE_PROFILES``)::

    role     conns low/high  grace  idle   DHT     announce  cache budget (one fetch)
    master   100 / 400       30 s   300 s  server  all       unlimited
    worker    50 / 200       20 s   180 s  server  roots     16 GiB
    leecher    8 /  16       10 s    60 s  client  none       4 GiB

Connections (connection_policy.py): no role dials peers to reach a count; above the high
water mark peers older than the grace period are disconnected down to the low one, and a
peer with no stream open for the idle time is disconnected.

- ``master`` serves everything it holds and announces every block it adds or fetches; it
  also relays for peers behind NAT (Circuit Relay v2, ``relay_service``), as a Kubo with
  ``Swarm.RelayService`` does.
- ``worker`` (the default) serves the DHT and announces only the roots of what it adds or
  fetches: peers find the root and fetch the rest from the same provider over bitswap.
- ``leecher`` takes but does not serve the DHT (client mode) and announces nothing; it still
  answers bitswap requests for blocks it holds, as every IPFS node does.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal

from ipfs_mcp.backends.errors import InvalidInput

from .bitswap.engine import BitswapConfig
from .connection_policy import ConnectionLimits
from .dialing import DialPolicy, DialScope, parse_dial_scope
from .network_presets import LOCALHOST, Network, parse_network, preset_for

AnnouncePolicy = Literal["all", "roots", "none"]


class Role(StrEnum):
    MASTER = "master"
    WORKER = "worker"
    LEECHER = "leecher"


@dataclass(frozen=True)
class RoleProfile:
    conn_low: int
    conn_high: int
    dht_server: bool
    announce: AnnouncePolicy
    cache_budget: int | None  # None: no cap on what one fetch may pull
    conn_grace: float = 20.0  # seconds a new peer is never pruned
    conn_idle: float = 180.0  # seconds without an open stream before a peer is dropped

    def connection_limits(self) -> ConnectionLimits:
        return ConnectionLimits(self.conn_low, self.conn_high, self.conn_grace,
                                self.conn_idle)


ROLE_PROFILES: dict[Role, RoleProfile] = {
    Role.MASTER: RoleProfile(100, 400, True, "all", None, 30.0, 300.0),
    Role.WORKER: RoleProfile(50, 200, True, "roots", 16 << 30, 20.0, 180.0),
    Role.LEECHER: RoleProfile(8, 16, False, "none", 4 << 30, 10.0, 60.0),
}

@dataclass(frozen=True)
class NodeConfig:
    role: Role = Role.WORKER
    listen_addrs: tuple[str, ...] = (LOCALHOST,)
    bootstrap: tuple[str, ...] = ()
    # Peers a person named to dial (``get --peer``): like bootstrap peers, they widen the
    # default dial scope as far as they are, since someone asked for them by address.
    named_peers: tuple[str, ...] = ()
    # Circuit Relay v2 relays to hold a reservation on (``--relay``), so that peers can reach
    # this node through them behind a NAT (relay/client.py); they widen the dial scope too.
    relays: tuple[str, ...] = ()
    # How long a fetch too large for a relay's limit waits for a direct connection (hole
    # punching) to the peer before it fails (fetching.py).
    relay_direct_wait: float = 15.0
    mdns: bool = False
    enable_mplex: bool = False  # yamux only, unless old peers need mplex
    # Overrides of the role's profile; None keeps the role's value.
    dht_server: bool | None = None
    announce: AnnouncePolicy | None = None
    cache_budget: int | None = -1  # -1: the role's budget
    conn_low: int | None = None
    conn_high: int | None = None
    bitswap: BitswapConfig = field(default_factory=BitswapConfig)
    # Bounds on routing work.
    find_providers_timeout: float = 10.0
    provide_timeout: float = 30.0
    max_providers: int = 20
    # How long the thread bridge (BlockFetcher) waits for one block or one DAG.
    fetch_block_timeout: float = 60.0
    fetch_dag_timeout: float = 3600.0
    # Which addresses the node dials (see dialing.py); None: the scope it listens on.
    dial_scope: DialScope | None = None
    # Where this node serves its blocks over HTTP (``/ip4/HOST/tcp/PORT/http`` or
    # ``.../tls/http``, the trustless gateway the server binds): advertised beside the
    # libp2p addresses (identify, DHT provider records), as Kubo and Helia read them.
    http_addrs: tuple[str, ...] = ()
    # Serve Circuit Relay v2 (the hop side, relay/service.py) to peers behind NAT; None:
    # the role's choice, on for ``master`` only (see :attr:`serves_relay`).
    relay_service: bool | None = None
    # The network this node joins (network_presets.py): ``local`` or ``public``. Set it
    # through :meth:`for_network`, which also takes the preset's addresses and peers.
    network: Network = Network.LOCAL

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", Role(self.role))
        object.__setattr__(self, "network", parse_network(self.network))
        object.__setattr__(self, "dial_scope", parse_dial_scope(self.dial_scope))
        if not self.listen_addrs:
            raise InvalidInput("a node needs at least one listen address")

    @property
    def profile(self) -> RoleProfile:
        base = ROLE_PROFILES[self.role]
        return RoleProfile(
            conn_low=base.conn_low if self.conn_low is None else self.conn_low,
            conn_high=base.conn_high if self.conn_high is None else self.conn_high,
            dht_server=base.dht_server if self.dht_server is None else self.dht_server,
            announce=base.announce if self.announce is None else self.announce,
            cache_budget=base.cache_budget if self.cache_budget == -1 else self.cache_budget,
            conn_grace=base.conn_grace, conn_idle=base.conn_idle,
        )

    @property
    def dht_server_once_public(self) -> bool:
        """Whether the DHT starts as a client and serves once AutoNAT says public: the
        role serves it, and the network's preset waits for reachability first."""
        return self.profile.dht_server and preset_for(self.network).dht_server_once_public

    @classmethod
    def for_network(cls, network: str | None = None, **explicit: Any) -> NodeConfig:
        """Settings for ``network`` (default ``local``): its preset's listen addresses,
        bootstrap peers and dial scope, each replaced by an explicit value (one that is
        neither None nor empty); the other fields as given.

        Raises:
            InvalidInput: an unknown network, or a malformed value.
        """
        preset = preset_for(network)
        given = {name: tuple(value) if isinstance(value, list) else value
                 for name, value in explicit.items()
                 if value is not None and not (isinstance(value, tuple | list) and not value)}
        return cls(network=preset.network, **{**preset.node_defaults(), **given})

    @property
    def serves_relay(self) -> bool:
        """Whether the node runs the relay service: as set, else for a ``master``."""
        return self.role == Role.MASTER if self.relay_service is None else self.relay_service

    def dial_policy(self) -> DialPolicy:
        """The dial scope these settings give: set, or derived from the listen addresses
        and bootstrap peers."""
        return DialPolicy.derive(self.dial_scope, self.listen_addrs,
                                 (*self.bootstrap, *self.named_peers, *self.relays))

    def lan(self) -> NodeConfig:
        """The same settings, listening on every interface with mDNS on."""
        return replace(self, listen_addrs=("/ip4/0.0.0.0/tcp/4001",), mdns=True)
