"""Server settings: read once from the environment and the command line, then frozen.

Every option of ``ipfs-mcp serve`` has an environment equivalent, so an MCP client config
that can only set ``env`` can set everything. A command-line value replaces the
environment's (lists too).

===========================  =============================  ===================================
option                       environment                    meaning
===========================  =============================  ===================================
``--http HOST:PORT``         ``IPFS_MCP_HTTP``              serve streamable HTTP, not stdio
(none: a secret)             ``IPFS_MCP_TOKEN``             bearer token; when set, required on
                                                            every HTTP request, and it must be
                                                            set to bind beyond loopback
``--allowed-host HOST``      ``IPFS_MCP_ALLOWED_HOSTS``     extra Host header values accepted
                                                            over HTTP (DNS-rebinding guard)
``--allow-root DIR``         ``IPFS_MCP_ALLOW_ROOTS``       folders tools may read and write
                                                            (``os.pathsep``-separated in env);
                                                            the hub cache and the repo stay
                                                            unwritable even inside them
``--role ROLE``              ``IPFS_MCP_ROLE``              P2P role: master, worker (default)
                                                            or leecher
``--relay-service``          ``IPFS_MCP_RELAY_SERVICE=1``   relay for peers behind NAT (Circuit
                                                            Relay v2 hop, Kubo's limits; default
                                                            on for master only;
                                                            ``--no-relay-service`` turns it off)
``--relay MULTIADDR``        ``IPFS_MCP_RELAYS``            relays to hold a slot on, so peers
                                                            behind other NATs reach this node
                                                            through them (/p2p-circuit)
``--listen MULTIADDR``       ``IPFS_MCP_LISTEN``            P2P listen addresses (default
                                                            /ip4/127.0.0.1/tcp/0: this machine)
``--bootstrap MULTIADDR``    ``IPFS_MCP_BOOTSTRAP``         peers to join a network through
``--network NAME``           ``IPFS_MCP_NETWORK``           local (default: this machine, no
                                                            bootstrap) or public: the IPFS
                                                            network's bootstrap peers, every
                                                            interface on 4001, AutoNAT, relays,
                                                            hole punching; flags given win
``--no-p2p``                 ``IPFS_MCP_P2P=0``             do not start the P2P node
``--mdns``                   ``IPFS_MCP_MDNS=1``            find and dial LAN peers by mDNS
                                                            (default off)
``--dial-scope SCOPE``       ``IPFS_MCP_DIAL_SCOPE``        addresses the node dials: loopback,
                                                            lan or public (default: the scope
                                                            it listens on); link-local and
                                                            metadata addresses never
``--http-retrieval-port N``  ``IPFS_MCP_HTTP_RETRIEVAL_     port of the node's read-only HTTP
                             PORT``                         retrieval gateway, on the hosts it
                                                            listens on (default 0: any free
                                                            port); advertised as /http
``--no-http-retrieval``      ``IPFS_MCP_HTTP_RETRIEVAL=0``  serve blocks to peers over bitswap
                                                            only
``--inline-max BYTES``       ``IPFS_MCP_INLINE_MAX``        largest content returned inline
``--add-max BYTES``          ``IPFS_MCP_ADD_MAX``           largest inline add_content payload
``--max-body BYTES``         ``IPFS_MCP_MAX_BODY``          largest HTTP request body
``--max-write-bytes BYTES``  ``IPFS_MCP_MAX_WRITE``         most bytes one write to disk may
                                                            take (default: 90% of the free
                                                            space at the target)
``--repo-max BYTES``         ``IPFS_MCP_REPO_MAX``          bound on the embedded repo's blocks;
                                                            past the watermark the coldest
                                                            unpinned ones are evicted (default:
                                                            none; a leecher 4 GiB)
``--repo-watermark SHARE``   ``IPFS_MCP_REPO_WATERMARK``    share of that bound where eviction
                                                            starts (default 90%)
``--memory-tier BYTES``      ``IPFS_MCP_MEMORY_TIER``       hot blocks kept in memory (default
                                                            by role: 256M, 64M, 16M a leecher)
``--gateway HOST:PORT``      ``IPFS_MCP_GATEWAY``           serve a read-only HTTP gateway
                                                            (trustless + path, /routing/v1)
``--gateway-recursive``      ``IPFS_MCP_GATEWAY_RECURSIVE`` let it fetch what is not here
                                                            (default: only local blocks)
``--gateway-max-store B``    ``IPFS_MCP_GATEWAY_MAX_STORE`` most a recursive gateway may store
                                                            in all (default 10 GB)
``--gateway-public``         ``IPFS_MCP_GATEWAY_PUBLIC=1``  allow a gateway bind beyond
                                                            loopback (refused otherwise)
``--gateway-tls CERT KEY``   ``IPFS_MCP_GATEWAY_TLS_CERT``  serve the gateway over TLS (HTTP/2
                             ``IPFS_MCP_GATEWAY_TLS_KEY``   by ALPN, HTTP/1.1 too): PEM files
``--trustless-gateway URL``  ``IPFS_MCP_TRUSTLESS_GATEWAYS`` fetch missing blocks from these
                                                            HTTP gateways too (each verified)
``--delegated-router URL``   ``IPFS_MCP_DELEGATED_ROUTERS`` /routing/v1 servers asked for
                                                            providers beside the DHT
(none)                       ``IPFS_MCP_DNS_RESOLVERS``     DNSLink resolvers by domain suffix,
                                                            as Kubo's DNS.Resolvers:
                                                            ``eth.=https://…,.=10.0.0.1:53``
                                                            (default: the system resolver)
(none)                       ``IPFS_MCP_NS_MAP``            static DNSLink names, asked before
                                                            DNS, as Kubo's IPFS_NS_MAP:
                                                            ``example.org:/ipfs/<cid>,…``
``--log-level LEVEL``        ``IPFS_MCP_LOG_LEVEL``         stderr log level (default WARNING);
                                                            the P2P libraries' logs only at DEBUG
``--send-idle SECONDS``      ``IPFS_MCP_SEND_IDLE``         an HTTP response (MCP or gateway)
                                                            whose client reads nothing this long
                                                            is dropped (default 60)
``--http-max-sessions N``    ``IPFS_MCP_HTTP_MAX_SESSIONS`` MCP HTTP sessions open at once;
                                                            beyond, 503 (default 100)
``--http-session-idle S``    ``IPFS_MCP_HTTP_SESSION_IDLE`` an MCP HTTP session with no request
                                                            this long ends (default 600)
``--gateway-max-per-client`` ``IPFS_MCP_GATEWAY_MAX_PER_    gateway requests in flight from one
                             CLIENT``                       client address; beyond, 429
                                                            (default 16; 64 in all)
===========================  =============================  ===================================

Over HTTP, the roots an MCP client declares count only for a client that gave the token,
and only inside ``--allow-root`` (:class:`~ipfs_mcp.tools.roots.ClientRoots`).

Lists in the environment are separated by commas or whitespace (roots by ``os.pathsep``).
The backend settings (``HF_HOME``, ``IPFS_BACKEND``...) are :class:`BackendSettings`.
"""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ipfs_mcp.backends.core.ip_scope import DialScope, parse_dial_scope
from ipfs_mcp.backends.core.limits import parse_max_write
from ipfs_mcp.backends.errors import InvalidInput
from ipfs_mcp.backends.settings import BackendSettings, env_flag
from ipfs_mcp.tools.roots import ClientRoots

DEFAULT_INLINE_MAX = 64 * 1024
DEFAULT_ADD_MAX = 1024 * 1024
# Room for the largest inline add (base64 grows it by a third) plus the JSON-RPC envelope,
# and no more: anything bigger belongs in a file inside an allowed root.
DEFAULT_MAX_BODY = 2 * 1024 * 1024
DEFAULT_ROLE = "worker"
ROLES = ("master", "worker", "leecher")
NETWORKS = ("local", "public")  # p2p.network_presets.Network, without importing the P2P stack
# The repo's tiers by role, where no setting names them: (repo bound, memory tier). A leecher
# keeps a small cache (its fetch budget, 4 GiB, still fits once the rest is evicted); a
# master or worker keeps what it fetched, as before, and holds more hot blocks in memory.
ROLE_TIERS: dict[str, tuple[int | None, int]] = {
    "master": (None, 256 << 20),
    "worker": (None, 64 << 20),
    "leecher": (4 << 30, 16 << 20),
}
# Serving bounds: what HTTP clients may hold of the server (see ServingLimits).
DEFAULT_SEND_IDLE = 60.0
DEFAULT_MAX_SESSIONS = 100
DEFAULT_SESSION_IDLE = 600.0
DEFAULT_GATEWAY_PER_CLIENT = 16
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(v for v in re.split(r"[,\s]+", value or "") if v)


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name}={raw!r} is not a whole number") from None
    if value <= 0:
        raise InvalidInput(f"{name} must be positive")
    return value


def _port(env: Mapping[str, str], name: str) -> int:
    """A TCP port from ``env`` (0, the default: any free port).

    Raises:
        InvalidInput: not a whole number from 0 to 65535.
    """
    raw = (env.get(name) or "").strip() or "0"
    if not raw.isdigit() or int(raw) > 65535:
        raise InvalidInput(f"{name}={raw!r} is not a port (0 to 65535)")
    return int(raw)


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInput(f"{name}={raw!r} is not a number of seconds") from None
    if not 0 < value < float("inf"):
        raise InvalidInput(f"{name} must be a positive number of seconds")
    return value


@dataclass(frozen=True)
class ServingLimits:
    """What HTTP clients may hold of the server, so none can starve the others.

    - ``send_idle``: a response (MCP HTTP or gateway) whose client takes nothing for this
      many seconds is dropped, and its slot freed;
    - ``max_sessions``: MCP HTTP sessions open at once (each costs memory until it ends);
      one more is answered 503;
    - ``session_idle``: an MCP HTTP session with no request for this long ends (its id then
      answers 404, and the client opens a new one);
    - ``gateway_per_client``: gateway requests in flight from one client address; one more
      is answered 429 with ``Retry-After``.
    """

    send_idle: float = DEFAULT_SEND_IDLE
    max_sessions: int = DEFAULT_MAX_SESSIONS
    session_idle: float = DEFAULT_SESSION_IDLE
    gateway_per_client: int = DEFAULT_GATEWAY_PER_CLIENT

    @classmethod
    def load(cls, env: Mapping[str, str], *, send_idle: float | None = None,
             max_sessions: int | None = None, session_idle: float | None = None,
             gateway_per_client: int | None = None) -> ServingLimits:
        """From ``env``, overridden by given values.

        Raises:
            InvalidInput: a value that is not a positive number.
        """
        return cls(
            send_idle=send_idle or _seconds(env, "IPFS_MCP_SEND_IDLE", DEFAULT_SEND_IDLE),
            max_sessions=max_sessions or _int(env, "IPFS_MCP_HTTP_MAX_SESSIONS",
                                              DEFAULT_MAX_SESSIONS),
            session_idle=session_idle or _seconds(env, "IPFS_MCP_HTTP_SESSION_IDLE",
                                                  DEFAULT_SESSION_IDLE),
            gateway_per_client=gateway_per_client or _int(
                env, "IPFS_MCP_GATEWAY_MAX_PER_CLIENT", DEFAULT_GATEWAY_PER_CLIENT))


def parse_host_port(value: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[v6]:PORT`` or ``:PORT`` (meaning 127.0.0.1).

    Raises:
        InvalidInput: not in one of those forms.
    """
    text = value.strip()
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\[\]]*):(\d+)", text)
    if not match:
        raise InvalidInput(f"--http {value!r}: expected HOST:PORT, e.g. 127.0.0.1:8000")
    host = match.group(1) or match.group(3) or "127.0.0.1"
    port = int(match.group(2) or match.group(4))
    if not 0 <= port <= 65535:
        raise InvalidInput(f"--http {value!r}: port out of range")
    return host, port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _gateway_tls(env: Mapping[str, str], given: Sequence[str] | None
                 ) -> tuple[Path, Path] | None:
    """The gateway's certificate and key, checked now (so a bad file is a clear error at
    start, not a failed handshake later).

    Raises:
        InvalidInput: only one of the two, a file missing, or not a matching PEM pair.
    """
    if given:
        if len(given) != 2:
            raise InvalidInput("--gateway-tls takes two files: CERT KEY")
        cert_text, key_text = given
    else:
        cert_text = (env.get("IPFS_MCP_GATEWAY_TLS_CERT") or "").strip()
        key_text = (env.get("IPFS_MCP_GATEWAY_TLS_KEY") or "").strip()
        if not cert_text and not key_text:
            return None
        if not cert_text or not key_text:
            raise InvalidInput("IPFS_MCP_GATEWAY_TLS_CERT and IPFS_MCP_GATEWAY_TLS_KEY go "
                               "together: set both or neither")
    cert, key = Path(cert_text).expanduser(), Path(key_text).expanduser()
    for path in (cert, key):
        if not path.is_file():
            raise InvalidInput(f"--gateway-tls: {path} is not a file")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise InvalidInput(f"--gateway-tls {cert} {key}: not a PEM certificate chain and its "
                           f"private key ({exc})") from exc
    return cert, key


def _tiers(backend: BackendSettings, env: Mapping[str, str], role: str, repo_max: int | None,
           watermark: float | None, memory: int | None) -> BackendSettings:
    """The repo's bound and memory tier: arguments, else the environment, else the role's."""
    role_max, role_memory = ROLE_TIERS[role]
    if repo_max is None and backend.repo_max is None:
        repo_max = role_max
    if memory is None and not (env.get("IPFS_MCP_MEMORY_TIER") or "").strip():
        memory = role_memory
    return replace(backend,
                   repo_max=backend.repo_max if repo_max is None else repo_max,
                   repo_watermark=backend.repo_watermark if watermark is None else watermark,
                   memory_tier_bytes=backend.memory_tier_bytes if memory is None else memory)


@dataclass(frozen=True)
class ServerSettings:
    backend: BackendSettings = field(default_factory=BackendSettings.from_env)
    http: tuple[str, int] | None = None
    token: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    allow_roots: tuple[Path, ...] = ()
    role: str = DEFAULT_ROLE
    listen: tuple[str, ...] = ()
    bootstrap: tuple[str, ...] = ()
    network: str = "local"  # the P2P node's preset (NETWORKS): explicit options win over it
    relay_service: bool | None = None  # Circuit Relay v2 hop service; None: the role's
    relays: tuple[str, ...] = ()  # Circuit Relay v2 relays to hold a slot on (--relay)
    p2p: bool = True
    mdns: bool = False
    dial_scope: DialScope | None = None  # None: the scope the node listens on
    named_peers: tuple[str, ...] = ()  # `get --peer`: they widen the default dial scope
    announce_topic: str | None = None  # opt-in "now providing" PubSub topic; off by default
    # The node's blocks over HTTP (trustless gateway, read-only) where it listens, and port.
    http_retrieval: bool = True
    http_retrieval_port: int = 0
    inline_max: int = DEFAULT_INLINE_MAX
    add_max: int = DEFAULT_ADD_MAX
    max_body: int = DEFAULT_MAX_BODY
    log_level: str = "WARNING"
    gateway: tuple[str, int] | None = None
    gateway_recursive: bool = False
    gateway_public: bool = False
    gateway_tls: tuple[Path, Path] | None = None  # certificate chain and key (PEM)
    gateway_max_store: int | None = None  # None: the recursive gateway's default bound
    trustless_gateways: tuple[str, ...] = ()  # retrieval sources beside bitswap
    delegated_routers: tuple[str, ...] = ()  # /routing/v1 servers beside the DHT
    dns_resolvers: tuple[tuple[str, str], ...] = ()  # DNSLink: (suffix, resolver); none: system
    ns_map: tuple[tuple[str, str], ...] = ()  # DNSLink (domain, value) asked before DNS
    serving: ServingLimits = field(default_factory=ServingLimits)

    @property
    def start_p2p(self) -> bool:
        return self.p2p

    @property
    def client_roots(self) -> ClientRoots:
        """How far an MCP client's declared roots count: fully over stdio; over HTTP only
        with a token (required on every request then), and only inside ``--allow-root``."""
        if self.http is None:
            return ClientRoots.TRUSTED
        return ClientRoots.CONFINED if self.token else ClientRoots.IGNORED

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, *,
             http: str | None = None, allow_roots: Sequence[str] | None = None,
             allowed_hosts: Sequence[str] | None = None, role: str | None = None,
             listen: Sequence[str] | None = None, bootstrap: Sequence[str] | None = None,
             network: str | None = None, p2p: bool | None = None, mdns: bool | None = None,
             relay_service: bool | None = None, relays: Sequence[str] | None = None,
             dial_scope: str | None = None, announce_topic: str | None = None,
             http_retrieval: bool | None = None, http_retrieval_port: int | None = None,
             inline_max: int | None = None,
             add_max: int | None = None, max_body: int | None = None,
             log_level: str | None = None, max_write: int | None = None,
             gateway: str | None = None, gateway_recursive: bool | None = None,
             gateway_public: bool | None = None,
             gateway_tls: Sequence[str] | None = None,
             gateway_max_store: int | None = None,
             trustless_gateways: Sequence[str] | None = None,
             delegated_routers: Sequence[str] | None = None,
             serving: ServingLimits | None = None, repo_max: int | None = None,
             repo_watermark: float | None = None,
             memory_tier: int | None = None) -> ServerSettings:
        """Settings from ``env`` (default ``os.environ``), overridden by given arguments.

        ``serving`` replaces the serving bounds from ``env`` as a whole.

        Raises:
            InvalidInput: a malformed value, or an HTTP bind beyond loopback without a token.
        """
        env = os.environ if env is None else env
        http_value = http if http is not None else (env.get("IPFS_MCP_HTTP") or "").strip()
        bind = parse_host_port(http_value) if http_value else None
        token = (env.get("IPFS_MCP_TOKEN") or "").strip() or None
        roots = (tuple(allow_roots) if allow_roots else
                 tuple(r for r in (env.get("IPFS_MCP_ALLOW_ROOTS") or "").split(os.pathsep)
                       if r.strip()))
        level = (log_level or env.get("IPFS_MCP_LOG_LEVEL") or "WARNING").strip().upper()
        if level not in LOG_LEVELS:
            raise InvalidInput(f"log level {level!r}: use one of {', '.join(LOG_LEVELS)}")
        if p2p is None:
            p2p = env_flag(env, "IPFS_MCP_P2P", True)
        if mdns is None:
            mdns = env_flag(env, "IPFS_MCP_MDNS", False)
        gateway_value = (gateway if gateway is not None else
                         (env.get("IPFS_MCP_GATEWAY") or "").strip())
        try:
            gateway_bind = parse_host_port(gateway_value) if gateway_value else None
        except InvalidInput:
            raise InvalidInput(f"--gateway {gateway_value!r}: expected HOST:PORT, e.g. "
                               "127.0.0.1:8080") from None
        if gateway_recursive is None:
            gateway_recursive = env_flag(env, "IPFS_MCP_GATEWAY_RECURSIVE", False)
        if gateway_public is None:
            gateway_public = env_flag(env, "IPFS_MCP_GATEWAY_PUBLIC", False)
        tls = _gateway_tls(env, gateway_tls)
        if gateway_max_store is None:
            try:
                gateway_max_store = parse_max_write(env.get("IPFS_MCP_GATEWAY_MAX_STORE"),
                                                    "IPFS_MCP_GATEWAY_MAX_STORE")
            except ValueError as exc:
                raise InvalidInput(str(exc)) from None
        if tls is not None and gateway_bind is None:
            raise InvalidInput("--gateway-tls needs --gateway HOST:PORT to serve on")
        role_name = (role or env.get("IPFS_MCP_ROLE") or DEFAULT_ROLE).strip().lower()
        network_name = (network or env.get("IPFS_MCP_NETWORK") or "local").strip().lower()
        if network_name not in NETWORKS:
            raise InvalidInput(f"network {network_name!r}: use one of {', '.join(NETWORKS)}")
        if role_name not in ROLES:
            raise InvalidInput(f"role {role_name!r}: use one of {', '.join(ROLES)}")
        backend = _tiers(BackendSettings.from_env(env), env, role_name, repo_max,
                         repo_watermark, memory_tier)
        if max_write is not None:
            backend = replace(backend, max_write=max_write)
        # The trustless gateway's HTTP client loads only when settings are built, not with
        # the CLI's parser: `add` never needs it (see tests/backends/test_add_imports.py).
        from ipfs_mcp.backends.retrieval.dnslink import parse_ns_map, parse_resolvers
        from ipfs_mcp.backends.retrieval.trustless_gateway import gateway_url

        settings = cls(
            backend=backend,
            http=bind,
            token=token,
            allowed_hosts=tuple(allowed_hosts) if allowed_hosts else
            _split(env.get("IPFS_MCP_ALLOWED_HOSTS")),
            allow_roots=tuple(Path(r).expanduser() for r in roots),
            role=role_name,
            listen=tuple(listen) if listen else _split(env.get("IPFS_MCP_LISTEN")),
            bootstrap=tuple(bootstrap) if bootstrap else _split(env.get("IPFS_MCP_BOOTSTRAP")),
            network=network_name,
            relays=tuple(relays) if relays else _split(env.get("IPFS_MCP_RELAYS")),
            relay_service=(relay_service if relay_service is not None
                           else env_flag(env, "IPFS_MCP_RELAY_SERVICE", False)
                           if (env.get("IPFS_MCP_RELAY_SERVICE") or "").strip() else None),
            p2p=p2p,
            mdns=mdns,
            dial_scope=parse_dial_scope(dial_scope or env.get("IPFS_MCP_DIAL_SCOPE")),
            announce_topic=announce_topic or env.get("IPFS_MCP_ANNOUNCE_TOPIC") or None,
            http_retrieval=(env_flag(env, "IPFS_MCP_HTTP_RETRIEVAL", True)
                            if http_retrieval is None else http_retrieval),
            http_retrieval_port=(_port(env, "IPFS_MCP_HTTP_RETRIEVAL_PORT")
                                 if http_retrieval_port is None else http_retrieval_port),
            inline_max=inline_max or _int(env, "IPFS_MCP_INLINE_MAX", DEFAULT_INLINE_MAX),
            add_max=add_max or _int(env, "IPFS_MCP_ADD_MAX", DEFAULT_ADD_MAX),
            max_body=max_body or _int(env, "IPFS_MCP_MAX_BODY", DEFAULT_MAX_BODY),
            log_level=level,
            gateway=gateway_bind,
            gateway_recursive=gateway_recursive,
            gateway_public=gateway_public,
            gateway_tls=tls,
            gateway_max_store=gateway_max_store,
            trustless_gateways=tuple(
                gateway_url(u) for u in (trustless_gateways if trustless_gateways else
                                         _split(env.get("IPFS_MCP_TRUSTLESS_GATEWAYS")))),
            delegated_routers=tuple(
                gateway_url(u) for u in (delegated_routers if delegated_routers else
                                         _split(env.get("IPFS_MCP_DELEGATED_ROUTERS")))),
            dns_resolvers=tuple(parse_resolvers(env.get("IPFS_MCP_DNS_RESOLVERS")).items()),
            ns_map=tuple(parse_ns_map(env.get("IPFS_MCP_NS_MAP")).items()),
            serving=serving or ServingLimits.load(env),
        )
        if gateway_bind is not None and not is_loopback(gateway_bind[0]) and not gateway_public:
            raise InvalidInput(f"--gateway {gateway_bind[0]}:{gateway_bind[1]} binds beyond "
                               "loopback: pass --gateway-public (IPFS_MCP_GATEWAY_PUBLIC=1) to "
                               "serve this node's blocks to the network")
        if bind is not None and not is_loopback(bind[0]) and settings.token is None:
            raise InvalidInput(f"--http {bind[0]}:{bind[1]} binds beyond loopback: set "
                               "IPFS_MCP_TOKEN to a secret that clients send as "
                               "'Authorization: Bearer <token>'")
        return settings
