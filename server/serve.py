"""``ipfs-mcp serve``: run the MCP server over stdio (default) or streamable HTTP.

The CLI (``server/cli.py``) calls :func:`add_arguments` to build the ``serve`` subcommand
and :func:`run` to execute it; ``python -m ipfs_mcp.server.serve`` does the same without
the other commands. Options and their environment equivalents are in :mod:`.config`.

On stdio, stdout carries only the protocol: logs, warnings and errors go to stderr.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import anyio.abc

from ipfs_mcp.backends.core.limits import parse_max_write
from ipfs_mcp.backends.errors import IpfsMcpError
from ipfs_mcp.backends.settings import parse_watermark

from .config import ServerSettings, ServingLimits
from .logs import configure_logging

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from .state import NodeSlot

log = logging.getLogger("ipfs_mcp.server")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def _size(text: str) -> int:
    """Bytes, plain or with a binary suffix (``512M``, ``20G``); ``0`` allowed."""
    try:
        return parse_max_write(text, "the size") or 0
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _share(text: str) -> float:
    try:
        return parse_watermark(text, "the watermark")
    except IpfsMcpError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0 to 65535)")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def add_retrieval_arguments(parser: argparse.ArgumentParser) -> None:
    """Where missing blocks come from: the options ``serve`` and a network ``get`` share."""
    parser.add_argument("--bootstrap", action="append", metavar="MULTIADDR", default=None,
                        help="peer to join, ending in /p2p/PEER_ID (repeatable; env "
                             "IPFS_MCP_BOOTSTRAP)")
    parser.add_argument("--trustless-gateway", action="append", metavar="URL", default=None,
                        help="an HTTP gateway to fetch missing blocks from, beside peers "
                             "(repeatable; every block is verified; env "
                             "IPFS_MCP_TRUSTLESS_GATEWAYS)")
    parser.add_argument("--delegated-router", action="append", metavar="URL", default=None,
                        help="a /routing/v1 server asked for providers beside the DHT "
                             "(repeatable; env IPFS_MCP_DELEGATED_ROUTERS)")


def add_node_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the P2P node listens, which network it joins and what it dials: the options
    ``serve``, ``daemon`` and a network ``get`` share."""
    parser.add_argument("--listen", action="append", metavar="MULTIADDR", default=None,
                        help="P2P listen address, e.g. /ip4/0.0.0.0/tcp/4001 (repeatable; "
                             "env IPFS_MCP_LISTEN)")
    parser.add_argument("--network", choices=("local", "public"), default=None,
                        help="which network the P2P node joins: local (default: 127.0.0.1, "
                             "no bootstrap peer) or public (the IPFS network: Kubo's "
                             "bootstrap peers, every interface on port 4001, AutoNAT, relays "
                             "and hole punching); --listen, --bootstrap and --dial-scope "
                             "replace its values (env IPFS_MCP_NETWORK)")
    parser.add_argument("--dial-scope", metavar="SCOPE", default=None,
                        help="addresses the P2P node dials: loopback, lan or public (env "
                             "IPFS_MCP_DIAL_SCOPE; default: the scope it listens on); "
                             "link-local and cloud metadata addresses are never dialled")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``serve`` options to ``parser``."""
    parser.add_argument("--http", metavar="HOST:PORT",
                        help="serve streamable HTTP at http://HOST:PORT/mcp instead of stdio "
                             "(env IPFS_MCP_HTTP); binding beyond 127.0.0.1 requires "
                             "IPFS_MCP_TOKEN")
    parser.add_argument("--allowed-host", action="append", metavar="HOST", default=None,
                        help="also accept this Host header over HTTP, e.g. a LAN name "
                             "(repeatable; env IPFS_MCP_ALLOWED_HOSTS)")
    parser.add_argument("--role", metavar="ROLE",
                        help="P2P node role: master, worker or leecher (env IPFS_MCP_ROLE)")
    parser.add_argument("--relay-service", action=argparse.BooleanOptionalAction, default=None,
                        help="relay for peers behind NAT (Circuit Relay v2, Kubo's limits: "
                             "2 min and 128 KiB each way per connection); default on for "
                             "the master role only (env IPFS_MCP_RELAY_SERVICE)")
    parser.add_argument("--relay", action="append", metavar="MULTIADDR", default=None,
                        help="a Circuit Relay v2 relay to hold a slot on, so peers reach this "
                             "node through it from behind a NAT, ending in /p2p/RELAY_ID "
                             "(repeatable; env IPFS_MCP_RELAYS)")
    add_node_arguments(parser)
    parser.add_argument("--announce-topic", metavar="TOPIC", default=None,
                        help="say on this PubSub topic each root the node announces; a "
                             "master also prefetches what others say there (env "
                             "IPFS_MCP_ANNOUNCE_TOPIC; default: off)")
    parser.add_argument("--no-p2p", action="store_true",
                        help="never start the P2P node (env IPFS_MCP_P2P=0)")
    parser.add_argument("--http-retrieval-port", type=_port, metavar="PORT", default=None,
                        help="port of the node's read-only HTTP retrieval gateway, served on "
                             "the hosts the node listens on and advertised as /http (env "
                             "IPFS_MCP_HTTP_RETRIEVAL_PORT; default 0: any free port)")
    parser.add_argument("--no-http-retrieval", action="store_true",
                        help="serve blocks to peers over bitswap only (env "
                             "IPFS_MCP_HTTP_RETRIEVAL=0)")
    parser.add_argument("--mdns", action="store_true", default=None,
                        help="find and dial peers on the LAN by mDNS (env IPFS_MCP_MDNS=1; "
                             "off by default); pair it with --listen /ip4/0.0.0.0/tcp/4001")
    parser.add_argument("--allow-root", action="append", metavar="DIR", default=None,
                        help="a folder tools may read from and write to (repeatable; env "
                             "IPFS_MCP_ALLOW_ROOTS, separated by the OS path separator)")
    parser.add_argument("--inline-max", type=_positive, metavar="BYTES",
                        help="largest content fetch_cid returns inline (env "
                             "IPFS_MCP_INLINE_MAX, default 65536)")
    parser.add_argument("--add-max", type=_positive, metavar="BYTES",
                        help="largest inline add_content payload (env IPFS_MCP_ADD_MAX, "
                             "default 1048576)")
    parser.add_argument("--max-body", type=_positive, metavar="BYTES",
                        help="largest HTTP request body (env IPFS_MCP_MAX_BODY, default "
                             "2097152)")
    parser.add_argument("--max-write-bytes", type=_positive, metavar="BYTES",
                        help="most bytes one write to disk may take (env IPFS_MCP_MAX_WRITE; "
                             "default 90%% of the free space at the target)")
    parser.add_argument("--repo-max", type=_size, metavar="BYTES",
                        help="bound the embedded repo's blocks (e.g. 50G); past the watermark "
                             "the coldest unpinned ones are evicted (env IPFS_MCP_REPO_MAX; "
                             "default none, a leecher 4G)")
    parser.add_argument("--repo-watermark", type=_share, metavar="SHARE",
                        help="share of --repo-max where eviction starts, 0.9 or 90%% (env "
                             "IPFS_MCP_REPO_WATERMARK; default 90%%)")
    parser.add_argument("--memory-tier", type=_size, metavar="BYTES",
                        help="hot blocks kept in memory, 0 for none (env IPFS_MCP_MEMORY_TIER; "
                             "default by role: 256M master, 64M worker, 16M leecher)")
    parser.add_argument("--gateway", metavar="HOST:PORT",
                        help="also serve a read-only HTTP gateway (trustless and path "
                             "gateway, /routing/v1) at http://HOST:PORT (env "
                             "IPFS_MCP_GATEWAY); only blocks already here are served")
    parser.add_argument("--gateway-recursive", action="store_true", default=None,
                        help="let the gateway fetch content that is not here (env "
                             "IPFS_MCP_GATEWAY_RECURSIVE=1)")
    parser.add_argument("--gateway-max-store", type=_positive, metavar="BYTES",
                        help="most bytes a recursive gateway may store in all (env "
                             "IPFS_MCP_GATEWAY_MAX_STORE; default 10 GB, as Kubo's "
                             "Datastore.StorageMax)")
    parser.add_argument("--gateway-public", action="store_true", default=None,
                        help="allow --gateway to bind beyond 127.0.0.1 (env "
                             "IPFS_MCP_GATEWAY_PUBLIC=1)")
    parser.add_argument("--gateway-tls", nargs=2, metavar=("CERT", "KEY"), default=None,
                        help="serve the gateway over TLS with this PEM certificate chain and "
                             "key, HTTP/2 offered by ALPN (env IPFS_MCP_GATEWAY_TLS_CERT and "
                             "IPFS_MCP_GATEWAY_TLS_KEY)")
    add_retrieval_arguments(parser)
    _add_serving_arguments(parser)
    parser.add_argument("--log-level", metavar="LEVEL",
                        help="stderr log level: DEBUG, INFO, WARNING (default), ERROR; "
                             "the P2P libraries' own logs appear only at DEBUG")


def _add_serving_arguments(parser: argparse.ArgumentParser) -> None:
    """The serving bounds: what HTTP clients may hold of the server."""
    parser.add_argument("--send-idle", type=_seconds, metavar="SECONDS",
                        help="drop an HTTP response (MCP or gateway) whose client reads "
                             "nothing for this long (env IPFS_MCP_SEND_IDLE, default 60)")
    parser.add_argument("--http-max-sessions", type=_positive, metavar="N",
                        help="MCP HTTP sessions open at once; one more is answered 503 (env "
                             "IPFS_MCP_HTTP_MAX_SESSIONS, default 100)")
    parser.add_argument("--http-session-idle", type=_seconds, metavar="SECONDS",
                        help="end an MCP HTTP session with no request for this long (env "
                             "IPFS_MCP_HTTP_SESSION_IDLE, default 600)")
    parser.add_argument("--gateway-max-per-client", type=_positive, metavar="N",
                        help="gateway requests in flight from one client address; one more "
                             "is answered 429 (env IPFS_MCP_GATEWAY_MAX_PER_CLIENT, default 16)")


def settings_from_args(args: argparse.Namespace) -> ServerSettings:
    """Raises: InvalidInput: a malformed option or environment value."""
    serving = ServingLimits.load(
        os.environ, send_idle=args.send_idle, max_sessions=args.http_max_sessions,
        session_idle=args.http_session_idle, gateway_per_client=args.gateway_max_per_client)
    return ServerSettings.load(
        http=args.http, allow_roots=args.allow_root, allowed_hosts=args.allowed_host,
        role=args.role, relay_service=args.relay_service, relays=args.relay,
        listen=args.listen,
        bootstrap=args.bootstrap, network=args.network,
        p2p=False if args.no_p2p else None, mdns=args.mdns, dial_scope=args.dial_scope,
        announce_topic=args.announce_topic,
        http_retrieval=False if args.no_http_retrieval else None,
        http_retrieval_port=args.http_retrieval_port,
        inline_max=args.inline_max,
        add_max=args.add_max, max_body=args.max_body, log_level=args.log_level,
        max_write=args.max_write_bytes, gateway=args.gateway,
        gateway_recursive=args.gateway_recursive, gateway_public=args.gateway_public,
        gateway_tls=args.gateway_tls, gateway_max_store=args.gateway_max_store,
        trustless_gateways=args.trustless_gateway, delegated_routers=args.delegated_router,
        serving=serving, repo_max=args.repo_max or None, repo_watermark=args.repo_watermark,
        memory_tier=args.memory_tier)


@dataclass(frozen=True)
class Served:
    """Where the HTTP services listen (port 0 resolved): for people, scripts and tests."""

    gateway: tuple[str, ...]  # the gateway's base URLs (empty: no gateway)
    mcp: tuple[str, ...]  # the MCP endpoints, ending in /mcp (empty: stdio)


async def start_services(tg: anyio.abc.TaskGroup, settings: ServerSettings, slot: NodeSlot,
                         stdio_done: anyio.Event | None = None,
                         mounts: Mapping[str, ASGIApp] | None = None) -> Served:
    """Start the gateway (with ``--gateway``) and the MCP server in ``tg``: over streamable
    HTTP when ``settings.http`` is set, else over stdio, setting ``stdio_done`` when stdin
    closes; ``mounts`` are served beside MCP over HTTP. The node starts inside the MCP lifespan and publishes itself in ``slot``; the
    gateway's /routing/v1 answers from it through the same slot, so both see the one node.

    Raises:
        IpfsMcpError: the gateway or the node identity cannot be set up.
    """
    from .app import build_server

    gateway_urls: list[str] = []
    if settings.gateway is not None:
        from .gateway.wiring import start_gateway

        gateway_urls = await start_gateway(tg, settings, slot)
    # Built once the gateway is bound, so large fetches can name its real port.
    server = build_server(settings, gateway_url=gateway_urls[0] if gateway_urls else None,
                          slot=slot)
    if settings.http is None:
        from .stdio import run_stdio

        async def stdio() -> None:
            await run_stdio(server)  # the SDK's transport, answering every request line
            if stdio_done is not None:
                stdio_done.set()

        tg.start_soon(stdio)
        return Served(tuple(gateway_urls), ())
    from .http import MCP_PATH, serve_http

    binds = await tg.start(functools.partial(serve_http, mounts=mounts), server, settings)
    for url in binds:
        # A machine-readable first line, so scripts (and tests) can find a port-0 bind.
        print(f"ipfs-mcp: serving MCP at {url}{MCP_PATH}"
              f"{' (bearer token required)' if settings.token else ''}",
              file=sys.stderr, flush=True)
    return Served(tuple(gateway_urls), tuple(f"{url}{MCP_PATH}" for url in binds))


async def _serve(settings: ServerSettings) -> None:
    from .state import NodeSlot

    stdin_closed = anyio.Event()
    async with anyio.create_task_group() as tg:
        await start_services(tg, settings, NodeSlot(), stdin_closed)
        if settings.http is None:
            await stdin_closed.wait()
            tg.cancel_scope.cancel()  # stdin closed: the gateway stops with the server


def run(args: argparse.Namespace) -> int:
    """Run the server until stdin closes (stdio) or it is interrupted; the exit status."""
    try:
        settings = settings_from_args(args)
    except IpfsMcpError as exc:
        print(f"ipfs-mcp serve: {exc}", file=sys.stderr)
        return 2
    return run_until_done(_serve, settings, "serve")


def run_until_done(main: Callable[[ServerSettings], Awaitable[object]],
                   settings: ServerSettings, command: str) -> int:
    """Run ``main(settings)`` on trio with the server's logging; its errors as one line
    on stderr, prefixed by the command's name. The exit status: 0, 1 for an error, 130
    for an interrupt not handled inside."""
    configure_logging(settings.log_level, p2p=settings.start_p2p)
    try:
        anyio.run(main, settings, backend="trio")
    except KeyboardInterrupt:
        return 130
    except IpfsMcpError as exc:
        print(f"ipfs-mcp {command}: {exc}", file=sys.stderr)
        return 1
    except BaseExceptionGroup as group:
        error = _first_error(group)
        if error is None:
            raise
        print(f"ipfs-mcp {command}: {error}", file=sys.stderr)
        return 1
    return 0


def _first_error(group: BaseExceptionGroup[BaseException]) -> IpfsMcpError | None:
    """The first of our errors inside (nested) task-group exception groups."""
    for exc in group.exceptions:
        if isinstance(exc, IpfsMcpError):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = _first_error(exc)
            if found is not None:
                return found
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ipfs-mcp serve", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
