"""``ipfs-mcp daemon`` and ``ipfs-mcp id``: a node that runs on its own and says where it is.

The daemon runs the P2P node, the gateway and MCP over streamable HTTP, all in one
process and one trio loop (``serve``'s own :func:`.serve.start_services`). It never reads
stdin, so it runs under ``&``, ``nohup`` or a service manager alike. Both HTTP services
bind 127.0.0.1 on a free port unless ``--http`` / ``--gateway`` (or their environment
variables) say otherwise. Once everything listens it prints its card (peer id,
addresses, gateway and MCP URLs) on stdout and keeps it in ``<repo>/daemon.json``
(:mod:`.daemon_file`); SIGTERM or SIGINT stops it: exit status 0, card removed.

``id`` reads that card while the daemon runs; for a stopped node it shows the peer id of
the repo's identity and the addresses the node would listen on.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import signal
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio
import anyio.abc

from .config import ServerSettings
from .daemon_file import DaemonFiles, NodeCard
from .http import MCP_PATH
from .serve import Served, run_until_done, settings_from_args, start_services

if TYPE_CHECKING:
    from .state import NodeSlot

LOOPBACK_ANY_PORT = ("127.0.0.1", 0)


def daemon_settings(args: argparse.Namespace) -> ServerSettings:
    """``serve``'s settings, with both HTTP services on by default (loopback, free port).

    Raises:
        InvalidInput: a malformed option or environment value.
    """
    settings = settings_from_args(args)
    return dataclasses.replace(settings, http=settings.http or LOOPBACK_ANY_PORT,
                               gateway=settings.gateway or LOOPBACK_ANY_PORT)


def run(args: argparse.Namespace) -> int:
    """Run the daemon until SIGTERM or SIGINT; the exit status (0 after a clean stop)."""
    return run_until_done(functools.partial(_daemon, as_json=bool(args.json)),
                          daemon_settings(args), "daemon")


async def _stop_on_signal(scope: anyio.CancelScope, *,
                          task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
                          ) -> None:
    """Cancel ``scope`` at the first SIGTERM or SIGINT (listening before anything starts,
    so a signal during the start stops the daemon cleanly too)."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        task_status.started()
        async for _ in signals:
            scope.cancel()
            return


async def _daemon(settings: ServerSettings, *, as_json: bool = False) -> None:
    """Raises: BackendUnavailable: another daemon runs on this repo; the rest as serve's."""
    from . import metrics  # prometheus_client: only the daemon pays for it
    from .state import NodeSlot

    files = DaemonFiles(settings.backend.repo_path)
    with files.claimed():
        slot = NodeSlot()
        async with anyio.create_task_group() as tg:
            await tg.start(_stop_on_signal, tg.cancel_scope)
            # Kubo's path for the node's numbers, on the MCP port behind its checks.
            mounts = {metrics.PATH: metrics.metrics_app(metrics.node_stats(slot))}
            served = await start_services(tg, settings, slot, mounts=mounts)
            card = dataclasses.replace(
                await running_card(settings, slot, served),
                metrics=served.mcp[0].removesuffix(MCP_PATH) + metrics.PATH)
            await anyio.to_thread.run_sync(files.publish, card)
            if as_json:  # one line, the card as `id --json` prints it
                print(json.dumps(card.as_json()), flush=True)
            else:
                for line in card.lines():
                    print(line, flush=True)
                print(f"daemon ready (pid {os.getpid()}; card in {files.card}); stop it "
                      "with Ctrl-C or kill -TERM", flush=True)
            await _keep_reachability_current(files, card, slot)


async def _keep_reachability_current(files: DaemonFiles, card: NodeCard, slot: NodeSlot
                                     ) -> None:
    """Republish the card whenever AutoNAT's answer or the node's addresses change (a relay
    reservation taken or lost adds or removes a ``/p2p-circuit`` one), so ``id`` reads them
    there."""
    node = await slot.wait()
    if node is None:
        await anyio.sleep_forever()
        return
    reachability = node.peers.reachability

    async def next_change(seen: int) -> None:
        async with anyio.create_task_group() as tg:
            async def then_stop(wait: Callable[[], Awaitable[object]]) -> None:
                await wait()
                tg.cancel_scope.cancel()
            tg.start_soon(then_stop, lambda: reachability.asked.reach(seen + 1))
            tg.start_soon(then_stop, node.relay.changed)

    # The answers counted when the status was last read: answers that land while this task
    # is elsewhere (publishing, starting the waiters) still wake it. -1: read it once now.
    seen = -1
    while True:
        await next_change(seen)
        seen = reachability.asked.count
        now = dataclasses.replace(card, reachability=reachability.status,
                                  addresses=(*node.addrs, *node.http_addrs))
        if now != card:
            card = now
            await anyio.to_thread.run_sync(files.publish, card)


async def running_card(settings: ServerSettings, slot: NodeSlot, served: Served
                       ) -> NodeCard:
    """The card of the node now running (it is waited for, bounded by the node's start)."""
    node = await slot.wait()
    if node is not None:
        peer_id, addresses = node.peer_id, (*node.addrs, *node.http_addrs)
    else:  # no P2P node (--no-p2p, or it failed to start): its identity all the same
        peer_id, addresses = await anyio.to_thread.run_sync(_peer_id, settings), ()
    return NodeCard(peer_id=peer_id, addresses=tuple(addresses), role=settings.role,
                    running=True, gateway=served.gateway[0] if served.gateway else None,
                    mcp=served.mcp[0] if served.mcp else None, pid=os.getpid(),
                    reachability=node.peers.reachability.status if node else None,
                    network=settings.network, p2p=None if node else slot.status)


def _peer_id(settings: ServerSettings) -> str:
    from .gateway.node_routing import repo_peer_id

    return repo_peer_id(settings.backend.repo_path)


def stopped_card(settings: ServerSettings) -> NodeCard:
    """A stopped node's card: its identity's peer id and the addresses it would listen on.

    Raises:
        IpfsMcpError: the identity cannot be read or created.
    """
    from ipfs_mcp.p2p.network_presets import preset_for

    peer_id = _peer_id(settings)
    listen = settings.listen or preset_for(settings.network).listen_addrs
    return NodeCard(peer_id=peer_id, addresses=tuple(f"{a}/p2p/{peer_id}" for a in listen),
                    role=settings.role, running=False, network=settings.network)


def cmd_id(args: argparse.Namespace) -> int:
    """``ipfs-mcp id``: the running daemon's card, or the stopped node's."""
    settings = ServerSettings.load()
    card = DaemonFiles(settings.backend.repo_path).running() or stopped_card(settings)
    if args.json:
        print(json.dumps(card.as_json()))
    else:
        print("\n".join(card.lines()))
    return 0
