"""``ipfs-mcp name publish/resolve`` and ``ipfs-mcp key gen/list``: names that move.

``key`` works on the repo's keys alone (``keys/<name>.key``, beside the identity), no node.
``name resolve`` of a DNSLink domain asks DNS only; a key's name (``/ipns/k51…``), and
``name publish``, start a node of their own for the run (the server's lifespan, as a network
``get`` does) and dial the ``--peer`` and ``--bootstrap`` peers first. A publish that would
replace a newer record the network holds under the key (the key used elsewhere) is refused
unless ``--allow-replace`` says so.

``routing put /ipns/<name> <file>`` keeps a signed record (made anywhere: Kubo, a fixture)
in the repo's record store once it validates, as Kubo's ``routing put --allow-offline``:
the node, the CLI and the gateway then resolve the name from it offline, the best record
(the store's or the network's) winning. ``routing get`` writes the held record out.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from ipfs_mcp.backends.errors import InvalidInput, IpfsMcpError

if TYPE_CHECKING:
    from ipfs_mcp.tools import names as name_tools

    from .config import ServerSettings
    from .state import ServerState

DAY = 24 * 3600.0


def add_commands(commands: Any) -> None:
    """The ``name`` and ``key`` groups, on the CLI's command table."""
    group = commands.group("name", "IPNS names and DNSLink: a name that points at the latest "
                           "CID", cmd_name, "name_cmd")
    q = group.add("publish", "point a key's IPNS name at a CID (starts a node for the run)")
    q.add_argument("value", help="a CID, or /ipfs/<cid>/<path>")
    q.add_argument("--key", default="self", help="the key to sign with (default: the node's)")
    q.add_argument("--lifetime", type=float, default=2 * DAY, metavar="SECONDS",
                   help="how long the record is valid (default 48 hours)")
    q.add_argument("--ttl", type=float, default=300, metavar="SECONDS",
                   help="how long resolvers may cache it (default 300)")
    q.add_argument("--allow-replace", action="store_true",
                   help="publish even when the network holds a newer record under the key")
    _add_peers(q)
    q = group.add("resolve", "the /ipfs/ path a name or DNSLink domain points at")
    q.add_argument("name", help="/ipns/<k51… or domain>[/path]")
    q.add_argument("--recursive", action=argparse.BooleanOptionalAction, default=True,
                   help="follow names to /ipfs/ (default), or one step only")
    _add_peers(q)
    routing = commands.group("routing", "IPNS records held in the repo (offline)",
                             cmd_routing, "routing_cmd")
    q = routing.add("put", "validate a signed IPNS record and keep it for its name")
    q.add_argument("key", help="/ipns/<k51… or peer id>")
    q.add_argument("file", help="the record, as signed (e.g. a .ipns-record file)")
    q = routing.add("get", "write out the valid record held for a name")
    q.add_argument("key", help="/ipns/<k51… or peer id>")
    keys = commands.group("key", "signing keys for IPNS names", cmd_key, "key_cmd")
    keys.add("gen", "make a new Ed25519 key").add_argument("name", help="the key's name")
    keys.add("list", "the keys and their IPNS names")


def _add_peers(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--peer", action="append", metavar="MULTIADDR", default=None,
                        help="dial this peer first (repeatable)")
    parser.add_argument("--bootstrap", action="append", metavar="MULTIADDR", default=None,
                        help="join the network through this peer (repeatable)")


def _print(args: argparse.Namespace, data: dict[str, Any], text: str) -> int:
    print(json.dumps(data) if args.json else text)
    return 0


# -- key --------------------------------------------------------------------------------------
def cmd_key(args: argparse.Namespace) -> int:
    """Raises: InvalidInput (a taken or malformed name), OSError."""
    from ipfs_mcp.backends.settings import BackendSettings
    from ipfs_mcp.p2p.identity import load_or_create_identity
    from ipfs_mcp.p2p.keys import KeyStore

    repo = BackendSettings.from_env().repo_path
    repo.mkdir(parents=True, exist_ok=True)
    store = KeyStore(repo, load_or_create_identity(repo))
    if args.key_cmd == "gen":
        made = store.generate(args.name)
        return _print(args, asdict(made), made.ipns_name)
    listed = store.keys()
    return _print(args, {"keys": [asdict(k) for k in listed]},
                  "\n".join(f"{k.name} {k.ipns_name}" for k in listed))


# -- routing ----------------------------------------------------------------------------------
def cmd_routing(args: argparse.Namespace) -> int:
    """Raises: InvalidInput (not an /ipns/ key), InvalidRecord (refused: badly signed,
    another key's, expired, or older than the record held), NameNotFound, IpfsMcpError."""
    from ipfs_mcp.backends.core.ipns_store import RecordStore
    from ipfs_mcp.backends.errors import NameNotFound
    from ipfs_mcp.backends.settings import BackendSettings

    if not args.key.startswith("/ipns/"):
        raise InvalidInput(f"{args.key!r}: routing keys here are /ipns/<name>")
    store = RecordStore(BackendSettings.from_env().repo_path)
    if args.routing_cmd == "put":
        try:
            raw = Path(args.file).read_bytes()
        except OSError as exc:
            raise InvalidInput(f"cannot read {args.file}: {exc.strerror}") from exc
        record = store.put(args.key, raw)
        return _print(args, {"name": record.name, "value": record.value,
                             "sequence": record.sequence, "validity": record.validity},
                      f"Kept {record.name} -> {record.value} (sequence {record.sequence})")
    held = store.valid(args.key)
    if held is None:
        raise NameNotFound(f"no valid record of {args.key} is held here")
    if args.json:
        return _print(args, {"name": held.name, "value": held.value,
                             "sequence": held.sequence, "validity": held.validity}, "")
    sys.stdout.buffer.write(held.raw)
    sys.stdout.flush()
    return 0


# -- name -------------------------------------------------------------------------------------
def cmd_name(args: argparse.Namespace) -> int:
    """Raises: the project's errors, as one line (see ``cli.main``)."""
    result: dict[str, Any] = anyio.run(_run, args, backend="trio")
    if args.name_cmd == "resolve":
        return _print(args, result, result["path"])
    return _print(args, result, f"Published {result['value']} as {result['name']} "
                                f"(sequence {result['sequence']})")


def _needs_node(args: argparse.Namespace) -> bool:
    # Imported when a name command runs (IPNS and DNSLink: a tenth of a second), not
    # whenever the CLI builds its parser, so that ``add`` and the rest start without it.
    from ipfs_mcp.tools import names as name_tools

    if args.name_cmd == "publish" or args.peer or args.bootstrap:
        return True
    _, label, _ = name_tools.split_name(args.name)
    return not name_tools.is_domain(label)


def _settings(args: argparse.Namespace) -> ServerSettings:
    from .config import ServerSettings

    settings = ServerSettings.load(bootstrap=args.bootstrap, p2p=True)
    return replace(settings, named_peers=tuple(args.peer or ()), http_retrieval=False)


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    from ipfs_mcp.tools import names as name_tools

    if not _needs_node(args):  # a domain: DNS alone
        from .config import ServerSettings

        settings = ServerSettings.load()
        resolver = name_tools.name_resolver(None, settings.dns_resolvers,
                                            ns_map=settings.ns_map)
        found = await name_tools.resolve_name(resolver, args.name, recursive=args.recursive)
        return found.model_dump(mode="json")
    from .cli_fetch import _connect
    from .state import lifespan_state

    error: IpfsMcpError | None = None
    result: dict[str, Any] = {}
    async with lifespan_state(_settings(args)) as state:
        try:  # raised outside the lifespan's task group, so it stays one error
            await _connect(state, args.peer or [], args.bootstrap or [])
            if args.name_cmd == "resolve":
                found = await name_tools.resolve_name(state.names, args.name,
                                                      recursive=args.recursive)
                result = found.model_dump(mode="json")
            else:
                result = await _publish(args, state)
        except IpfsMcpError as exc:
            error = exc
    if error is not None:
        raise error
    return result


async def _publish(args: argparse.Namespace, state: ServerState) -> dict[str, Any]:
    from ipfs_mcp.tools import names as name_tools

    async def confirm(replacing: name_tools.Replacing) -> bool:
        if args.allow_replace:
            print(f"replacing the network's newer record (sequence "
                  f"{replacing.network_sequence}, {replacing.network_value})", file=sys.stderr)
            return True
        raise InvalidInput(f"the network holds a newer record under key {args.key!r} "
                           f"(sequence {replacing.network_sequence}, pointing at "
                           f"{replacing.network_value}) than this node published; pass "
                           "--allow-replace to replace it")

    done = await name_tools.publish(state.names.name_system(), args.value, key=args.key,
                                    lifetime_seconds=args.lifetime, ttl_seconds=args.ttl,
                                    confirm=confirm)
    return name_tools.published_result(args.key, done).model_dump(mode="json")
