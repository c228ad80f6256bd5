"""``ipfs-mcp get`` over the network: a node of its own for one run, for people.

``ipfs-mcp get CID -o PATH --peer MULTIADDR`` (or ``--bootstrap``, ``--trustless-gateway``,
``--delegated-router``, or ``--network public``: the DHT, and from behind a NAT a relay and
hole punching, with ``--listen``/``--dial-scope`` as ``serve`` has them) builds the server's
own lifespan (:func:`.state.lifespan_state`: the Router, its retrieval sources and our P2P
node), dials the peers named, and fetches
through the Router exactly as ``fetch_cid`` does. So the same rules hold:

* every block is verified and stored in the repo as it arrives; blocks already in the repo
  are not asked for again, so a second run resumes where an interrupted one stopped;
* ``-o`` writes atomically and, as Kubo's ``get`` does, replaces what is there (and says so);
  ``--hf org/name[@revision]`` writes a HuggingFace cache snapshot as
  ``fetch_cid(into_hf_cache=...)`` does: raw leaves straight into the blobs, once, kept by
  reference (``backends/hf_receive.py``), so a second run resumes from the blobs' partial
  ``.incomplete`` files;
* cancelling (Ctrl-C, ``--timeout``) goes through the worker thread's cancel token, so the
  node withdraws its wants, the partial output is removed, and nothing is pinned.

Progress: on a terminal a rich bar (bytes received, rate, providers; then bytes written);
with ``--json`` one JSON object per line on stderr, the last one at the content's size, and
a summary on stdout (with each provider's connections at the end: direct addresses, and
how many go through a relay). The counts come from the node's bitswap ledgers
(``Network.snapshot``) and the trustless gateways' records (blocks only: a gateway's bytes
are not counted).

Failures end with one line on stderr and a non-zero exit status: 1 for an error, 130 for
an interrupt. Without any network option, ``get`` stays local (:func:`wanted` says which).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import anyio

from ipfs_mcp.backends.core.cids import split_path
from ipfs_mcp.backends.core.rooted import OutputTarget
from ipfs_mcp.backends.errors import (
    BlockNotFound,
    IpfsMcpError,
    NetworkError,
    NodeNotRunning,
    OperationCancelled,
    RelayError,
    Timeout,
)
from ipfs_mcp.backends.hub import layout as hf_layout
from ipfs_mcp.backends.hub import receive as hf_receive
from ipfs_mcp.backends.network import NetworkSnapshot
from ipfs_mcp.tools.progress import Progress, run_blocking
from ipfs_mcp.tools.roots import describe_existing

from .cli_errors import check_peer_address, explain
from .cli_output import checked_output, output_of
from .logs import configure_logging
from .serve import add_node_arguments, add_retrieval_arguments

if TYPE_CHECKING:
    from ipfs_mcp.backends.retrieval.trustless_gateway import GatewayStat

    from .config import ServerSettings
    from .state import ServerState

POLL = 0.2  # seconds between looks at the node's ledgers (a bar needs no more)
CONNECT_TIMEOUT = 15.0  # seconds one --peer / --bootstrap dial may take
INTERRUPTED = 130  # the shell's status for a run ended by SIGINT


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The network options of ``get`` (and ``--hf``, ``--replace``, ``--timeout``)."""
    parser.add_argument("--peer", action="append", metavar="MULTIADDR", default=None,
                        help="fetch from this peer, /ip4/.../tcp/.../p2p/PEER_ID (repeatable); "
                             "starts a node for this run")
    add_retrieval_arguments(parser)  # --bootstrap, --trustless-gateway, --delegated-router
    # --network public: a node that finds providers through the DHT and, behind a NAT,
    # reaches them through a relay and hole-punches; --listen, --dial-scope as serve's.
    add_node_arguments(parser)
    parser.add_argument("--timeout", type=_seconds, metavar="SECONDS", default=None,
                        help="give up after this long (default: the node's own bounds)")
    parser.add_argument("--hf", metavar="ORG/NAME[@REVISION]", default=None,
                        help="write the folder into the HuggingFace cache as this model "
                             "(revision default main) instead of -o")
    parser.add_argument("--replace", action="store_true",
                        help="with --hf: move the revision even if it names other content")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def network_requested(args: argparse.Namespace) -> bool:
    return bool(args.peer or args.bootstrap or args.trustless_gateway or args.delegated_router
                or args.network == "public")


def wanted(args: argparse.Namespace) -> bool:
    """Whether this module runs the ``get``: a network option, or ``--hf``."""
    return network_requested(args) or args.hf is not None


# -- progress -----------------------------------------------------------------------------
@dataclass
class Transfer:
    """What the run has done so far, from the node's ledgers and the writer's count."""

    total: int | None
    started: float = field(default_factory=time.monotonic)
    blocks: int = 0  # blocks received from peers in this run
    received: int = 0  # block bytes received
    providers: tuple[str, ...] = ()  # peers that delivered at least one block
    peers: int = 0  # connected peers
    written: int = 0
    phase: str = "connecting"
    # Each provider's open connections at the end: remote addresses of the direct ones, and
    # how many run through a relay (so a person sees whether hole punching worked).
    paths: dict[str, dict[str, Any]] = field(default_factory=dict)

    # Each peer's counts when the run began: a long-running node (Kubo as the backend)
    # has exchanged blocks before, and only this run's count.
    baseline: dict[str, tuple[int, int]] | None = None

    def take(self, snapshot: NetworkSnapshot | None, gateways: Sequence[GatewayStat] = ()
             ) -> None:
        peers = snapshot.peers if snapshot else ()
        counts = {p.peer_id: (p.blocks_received or 0, p.bytes_received or 0) for p in peers}
        if self.baseline is None:
            self.baseline = counts
        news = {peer: (blocks - self.baseline.get(peer, (0, 0))[0],
                       size - self.baseline.get(peer, (0, 0))[1])
                for peer, (blocks, size) in counts.items()}
        delivered = {peer: n for peer, n in news.items() if n[0] > 0}
        served = [g for g in gateways if g.successes]  # one success per verified block
        self.blocks = sum(n[0] for n in delivered.values()) + sum(g.successes for g in served)
        self.received = sum(n[1] for n in delivered.values())  # bitswap's only
        self.providers = tuple(delivered) + tuple(g.url for g in served)
        self.peers = sum(1 for p in peers if p.connected)

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.received / elapsed if elapsed > 0 else 0.0

    def line(self) -> dict[str, Any]:
        return {"event": "progress", "phase": self.phase, "written": self.written,
                "total": self.total, "received": self.received, "blocks": self.blocks,
                "rate": round(self.rate), "providers": len(self.providers),
                "peers": self.peers}


class Display:
    """Shows a :class:`Transfer`: JSON lines, a rich bar on a terminal, or nothing."""

    def __init__(self, transfer: Transfer, *, json_lines: bool, label: str,
                 stream: TextIO = sys.stderr, **bar_options: Any) -> None:
        self.transfer = transfer
        self.bar_options = bar_options  # for progress_bars (a test's clock and console)
        self.json_lines = json_lines
        self.stream = stream
        self.label = label
        self._last: dict[str, Any] | None = None
        self._bar: Any = None
        self._tasks: tuple[Any, Any] | None = None

    @contextlib.contextmanager
    def shown(self) -> Iterator[Display]:
        if self.json_lines or not self.stream.isatty():
            yield self
            return
        from rich.progress import TextColumn

        from .cli_progress import progress_bars

        with progress_bars(self.stream, TextColumn("{task.fields[providers]}"),
                           **self.bar_options) as bar:
            self._bar = bar
            self._tasks = (bar.add_task(f"fetching {self.label}", total=None, providers=""),
                           bar.add_task("writing", total=self.transfer.total, providers="",
                                        visible=False))
            yield self

    def update(self, *, final: bool = False) -> None:
        t = self.transfer
        if self.json_lines:
            line = t.line()
            unchanged = {**line, "rate": None} == self._last
            if final or not unchanged:  # the rate alone changes with every look
                self._last = {**line, "rate": None}
                print(json.dumps(line), file=self.stream, flush=True)
        elif self._bar is not None and self._tasks is not None:
            fetch, write = self._tasks
            # The total as soon as the root block declares it (None: an indeterminate bar).
            self._bar.update(fetch, completed=t.received, total=t.total,
                             providers=f"{len(t.providers)} provider(s), {t.peers} peer(s)")
            if t.written or final:
                self._bar.update(write, completed=t.written, total=t.total, visible=True)


async def _refresh(state: ServerState, transfer: Transfer) -> None:
    """Take the counts from the node's ledgers and the gateways' records, bounded."""
    snapshot = None
    if state.network is not None:
        with anyio.move_on_after(POLL * 5), contextlib.suppress(IpfsMcpError):
            snapshot = await state.network.snapshot()
    transfer.take(snapshot, state.gateways.stats() if state.gateways is not None else ())


async def _watch(state: ServerState, transfer: Transfer, progress: Progress,
                 display: Display) -> None:
    """Refresh the transfer until cancelled."""
    while True:
        await _refresh(state, transfer)
        transfer.written = progress.done
        if transfer.written and transfer.phase == "fetching":
            transfer.phase = "writing"  # the DAG is here; the output file is being built
        display.update()
        await anyio.sleep(POLL)


# -- the run ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Delivered:
    kind: str
    size: int
    where: dict[str, Any]  # output / hf fields for the summary
    message: str  # the line a person reads on stdout
    notice: str | None = None  # told on stderr, as the local `get` does (what it replaced)


def _settings(args: argparse.Namespace) -> ServerSettings:
    from .config import ServerSettings

    listen = args.listen
    if not listen and args.network == "public" and not os.environ.get("IPFS_MCP_LISTEN"):
        from ipfs_mcp.p2p.network_presets import ONE_SHOT_PUBLIC_LISTEN

        listen = list(ONE_SHOT_PUBLIC_LISTEN)
    settings = ServerSettings.load(
        bootstrap=args.bootstrap, trustless_gateways=args.trustless_gateway,
        delegated_routers=args.delegated_router, max_write=args.max_write_bytes,
        listen=listen, network=args.network, dial_scope=args.dial_scope,
        p2p=True if (args.peer or args.bootstrap or args.delegated_router
                     or args.network == "public") else None)
    if not network_requested(args):  # --hf alone: the local repo only, as plain `get`
        return replace(settings, p2p=False, bootstrap=(), trustless_gateways=(),
                       delegated_routers=())
    # The peers a person named are dialled as far as they are (a LAN peer: the LAN). A get
    # only takes: its repo is not served over HTTP for the length of the run.
    return replace(settings, named_peers=tuple(args.peer or ()), http_retrieval=False)


async def _connect(state: ServerState, peers: list[str], bootstrap: list[str]) -> None:
    """Dial every ``--peer`` (each must answer) and the ``--bootstrap`` peers (one must).

    Raises:
        NetworkError: a peer, or every bootstrap peer, could not be reached or is not a
            peer address (each named).
        NodeNotRunning: there is no node to dial with.
    """
    network = state.network
    if network is None:
        raise NodeNotRunning(f"cannot dial peers: {state.network_why}")
    failures: dict[str, str] = {}

    async def dial(addr: str) -> None:
        try:
            with anyio.fail_after(CONNECT_TIMEOUT):
                await network.connect(addr)
        except TimeoutError:
            failures[addr] = f"no answer within {CONNECT_TIMEOUT:g}s"
        except IpfsMcpError as exc:  # refused, unreachable, or not a peer address
            failures[addr] = await _why_unreachable(addr, exc)

    async with anyio.create_task_group() as tg:
        for addr in dict.fromkeys([*peers, *bootstrap]):
            tg.start_soon(dial, addr)
    bad_peers = {a: failures[a] for a in peers if a in failures}
    if bad_peers:
        raise NetworkError("; ".join(f"peer {a}: {why}" for a, why in bad_peers.items()))
    if bootstrap and all(a in failures for a in bootstrap):
        raise NetworkError("no bootstrap peer answered: " + "; ".join(
            f"{a}: {failures[a]}" for a in bootstrap))


async def _why_unreachable(addr: str, exc: IpfsMcpError) -> str:
    """Why a peer the user named did not connect, in the words a person can act on.

    The node says only that the dial failed. For a TCP address the user typed, one plain
    TCP connection tells the two commonest mistakes apart: nothing listens there, or
    something does but not the peer named (a peer id copied from another node).
    """
    if not isinstance(exc, NetworkError) or isinstance(exc, RelayError):
        return str(exc)  # a relay's refusal is its own reason
    import multiaddr

    try:
        parsed = multiaddr.Multiaddr(addr)
        host = parsed.value_for_protocol("ip4")
        port = int(parsed.value_for_protocol("tcp"))
    except Exception:  # not /ip4/.../tcp/...: the node's own words
        return str(exc)
    try:
        with anyio.fail_after(CONNECT_TIMEOUT):
            stream = await anyio.connect_tcp(host, port)
    except (OSError, TimeoutError):
        return (f"nothing answers at /ip4/{host}/tcp/{port} (is that node running? "
                "`ipfs-mcp id` on it prints its addresses)")
    await stream.aclose()
    return ("something answers at that address, but not as that peer: the peer id does "
            "not match the one at that address (`ipfs-mcp id` on that node prints it)")


def _deliver(state: ServerState, args: argparse.Namespace, transfer: Transfer,
             progress: Progress) -> Callable[[], Delivered]:
    """The blocking work: stat, then write to ``-o`` or into the hub cache."""
    backend = state.router
    settings = state.settings.backend
    max_bytes = args.max_write_bytes or settings.max_write

    if args.hf is not None:
        repo_id, revision = hf_layout.parse_source(args.hf)

        def into_hub() -> Delivered:
            entry = backend.stat(args.cid)
            progress.check()
            # Raw-leaf files are written once, as they arrive; others are copied.
            written = hf_receive.export_model(backend, settings.hf_hub_cache, args.cid,
                                              repo_id, revision=revision or "main",
                                              replace=args.replace, max_bytes=max_bytes,
                                              progress=progress)
            size = sum((written.snapshot / name).stat().st_size for name in written.files)
            progress.done = transfer.total = size
            return Delivered(entry.kind, size, {
                "hf_repo_id": written.repo_id, "hf_revision": written.revision,
                "hf_commit": written.commit, "hf_snapshot": str(written.snapshot),
                "files_written": len(written.files), "replaced": written.replaced,
                "nocopy": bool(written.files) and not written.copied,
                "copied": list(written.copied), "resumed_leaves": written.resumed},
                f"Saved {entry.kind} {args.cid} into the HuggingFace cache as "
                f"{written.repo_id}@{written.revision} ({written.snapshot})")

        return into_hub

    output = Path(output_of(args.cid, args.output))
    # Anywhere the user can write, as with Kubo, except the hub cache and the repo, in a
    # folder that exists (checked before the node starts: see cmd_get).
    dest = checked_output(settings, str(output))
    # Held from the check on: the node's start and the transfer cannot redirect the write.
    held = OutputTarget.at(dest, max_entries=settings.max_write_files)

    def to_path() -> Delivered:
        with held:
            replaced = describe_existing(dest)  # Kubo's `get -o` replaces; the user is told
            entry = backend.stat(args.cid)
            transfer.total = progress.total = entry.size if entry.kind == "file" else None
            entry = backend.get_to_path(args.cid, output_path=held, overwrite=True,
                                        max_bytes=max_bytes, progress=progress)
        if transfer.total is None:
            transfer.total = progress.done
        return Delivered(entry.kind, entry.size or progress.done,
                         {"output": str(output), "replaced": replaced},
                         f"Saved {entry.kind} {args.cid} to {output}",
                         f"replaced {replaced} at {dest}" if replaced else None)

    return to_path


async def _interrupts(scope: anyio.CancelScope, flag: list[bool]) -> None:
    """Ctrl-C cancels the work; more of them while it unwinds (bounded: the worker stops
    at its next block) change nothing, so its cleanup always finishes."""
    with anyio.open_signal_receiver(signal.SIGINT) as signals:
        async for _ in signals:
            flag.append(True)
            scope.cancel()


def _stopped_error(args: argparse.Namespace, transfer: Transfer, why: str) -> IpfsMcpError:
    kept = (f"; the {transfer.blocks} block(s) received are kept in the repo, so a new run "
            "resumes" if transfer.blocks else "")
    if why == "timeout" and transfer.phase == "connecting":
        return Timeout(f"gave up after {args.timeout:g}s while connecting to the peers; "
                       f"nothing of {args.cid} was asked yet")
    if why == "timeout" and not transfer.blocks:
        return BlockNotFound(args.cid, f"any provider within {args.timeout:g}s (asked "
                                       f"{transfer.peers} connected peer(s))")
    if why == "timeout":
        return Timeout(f"{args.cid}: gave up after {args.timeout:g}s with "
                       f"{transfer.received} bytes received{kept}")
    return OperationCancelled(f"interrupted while fetching {args.cid}{kept}")


async def _run(args: argparse.Namespace, settings: ServerSettings
               ) -> tuple[Delivered, Transfer]:
    """Raises: whatever stopped the run, as one project error (see :func:`cmd_get`)."""
    # Imported here: the server's wiring (and py-libp2p's) is only needed once a network
    # run starts, and `ipfs-mcp --help` or a local `get` should not pay for it.
    from .state import lifespan_state

    transfer = Transfer(total=None)
    progress = Progress(message=f"fetching {args.cid}")
    display = Display(transfer, json_lines=args.json, label=args.cid)
    interrupted: list[bool] = []
    error: BaseException | None = None
    result: Delivered | None = None
    async with lifespan_state(settings) as state:
        await _refresh(state, transfer)  # the baseline, before anything is asked
        with display.shown():
            async with anyio.create_task_group() as tg:
                work = anyio.CancelScope()
                tg.start_soon(_interrupts, work, interrupted)
                tg.start_soon(_watch, state, transfer, progress, display)
                with work, anyio.move_on_after(args.timeout) as limit:
                    try:
                        await _connect(state, args.peer or [], args.bootstrap or [])
                        transfer.phase = "fetching"
                        result = await run_blocking(
                            _deliver(state, args, transfer, progress), progress)
                    except Exception as exc:  # kept, raised outside the task group
                        error = exc
                await _refresh(state, transfer)  # the final counts, whatever the outcome
                transfer.paths = _paths(state, transfer.providers)
                if interrupted:
                    error, result = _stopped_error(args, transfer, "interrupt"), None
                elif limit.cancelled_caught:
                    error, result = _stopped_error(args, transfer, "timeout"), None
                if result is not None:
                    transfer.phase, transfer.written = "done", progress.done
                    display.update(final=True)
                tg.cancel_scope.cancel()
    if error is not None:
        raise error
    assert result is not None
    return result, transfer


def _paths(state: ServerState, providers: Sequence[str]) -> dict[str, dict[str, Any]]:
    """How our node is connected to each provider peer: ``direct`` (remote addresses of
    the connections that are not relayed) and ``relayed`` (how many go through a relay)."""
    node = state.slot.node
    if node is None:
        return {}
    from libp2p.peer.id import ID

    from ipfs_mcp.p2p.relay.limits import relayed

    paths: dict[str, dict[str, Any]] = {}
    for provider in providers:
        try:
            peer = ID.from_base58(provider)
        except ValueError:  # a gateway's URL, not a peer
            continue
        conns = node.host.get_network().get_connections(peer)
        paths[provider] = {
            "direct": [str(a) for c in conns if relayed(c) is None
                       for a in c.get_transport_addresses()],
            "relayed": sum(1 for c in conns if relayed(c) is not None)}
    return paths


def _one_line(text: str) -> str:
    return " ".join(text.split())


def cmd_get(args: argparse.Namespace) -> int:
    """``get`` with a node of its own (see the module docstring)."""
    if args.hf is not None and args.output:
        print("Error: pass -o PATH or --hf ORG/NAME, not both", file=sys.stderr)
        return 1
    try:
        split_path(args.cid)  # a malformed CID or path fails before any node starts
        for flag, addrs in (("--peer", args.peer), ("--bootstrap", args.bootstrap)):
            for addr in addrs or ():
                check_peer_address(flag, addr)
        settings = _settings(args)
        if args.hf is not None:
            hf_layout.parse_source(args.hf)
        else:
            checked_output(settings.backend, output_of(args.cid, args.output))
        configure_logging(settings.log_level, p2p=settings.start_p2p)
        delivered, transfer = anyio.run(_run, args, settings, backend="trio")
    except IpfsMcpError as exc:  # one line, as every command's errors (cli.main)
        print(f"Error: {_one_line(explain(exc))}", file=sys.stderr)
        # Only our own SIGINT handling cancels a run; a timeout is a Timeout/BlockNotFound.
        return INTERRUPTED if isinstance(exc, OperationCancelled) else 1
    except OSError as exc:
        print(f"Error: {exc.strerror or exc}"
              f"{': ' + str(exc.filename) if exc.filename else ''}", file=sys.stderr)
        return 1
    seconds = time.monotonic() - transfer.started
    if delivered.notice:
        print(delivered.notice, file=sys.stderr)
    if args.json:
        print(json.dumps({"cid": args.cid, "kind": delivered.kind, "size": delivered.size,
                          **delivered.where, "blocks_fetched": transfer.blocks,
                          "bytes_fetched": transfer.received,
                          "providers": list(transfer.providers),
                          "provider_connections": transfer.paths,
                          "seconds": round(seconds, 3)}, default=str))
        return 0
    print(delivered.message)
    if transfer.blocks:
        print(f"fetched {transfer.blocks} block(s), {transfer.received} bytes, from "
              f"{len(transfer.providers)} provider(s) in {seconds:.1f}s", file=sys.stderr)
    return 0
