"""The running daemon's card: who it is and where it listens, kept in the repo.

::

    <repo>/
    ├── daemon.json    peer id, addresses, role, gateway and MCP URLs, pid; written
    │                  atomically once the daemon listens, removed when it stops cleanly
    └── daemon.lock    held (flock) for the daemon's whole life: the truth about "running"

The lock, not the card, says whether a daemon runs: the kernel drops it when the process
dies, even by ``kill -9``, so a card left behind by a crash is recognised as stale and
replaced. ``ipfs-mcp id`` reads the card only while the lock is held.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ipfs_mcp.backends.errors import BackendUnavailable
from ipfs_mcp.backends.repo.atomic import atomic_write

CARD = "daemon.json"
LOCK = "daemon.lock"


@dataclass(frozen=True)
class NodeCard:
    """What ``daemon`` prints at start and ``id`` prints later."""

    peer_id: str
    addresses: tuple[str, ...]  # libp2p multiaddrs, each ending in /p2p/<peer id>
    role: str
    running: bool
    gateway: str | None = None  # the gateway's base URL
    mcp: str | None = None  # the MCP endpoint (streamable HTTP)
    pid: int | None = None
    metrics: str | None = None  # the node's numbers for Prometheus
    reachability: str | None = None  # AutoNAT's answer while it runs: public/private/unknown
    network: str = "local"  # the network preset it runs with (--network)
    # Why a running daemon has no P2P node ("disabled (--no-p2p ...)", "failed to start:
    # ..."); None while its node runs, or when the daemon is stopped.
    p2p: str | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> NodeCard:
        return cls(peer_id=str(raw["peer_id"]), addresses=tuple(raw.get("addresses") or ()),
                   role=str(raw.get("role", "")), running=bool(raw.get("running", True)),
                   gateway=raw.get("gateway"), mcp=raw.get("mcp"), pid=raw.get("pid"),
                   metrics=raw.get("metrics"), reachability=raw.get("reachability"),
                   network=str(raw.get("network") or "local"), p2p=raw.get("p2p"))

    def lines(self) -> list[str]:
        """The card for people: one labelled line per fact."""
        if self.running and self.p2p:
            state = f"daemon running; P2P node {self.p2p}"
        else:
            state = "running" if self.running else "not running"
        out = [f"peer id:  {self.peer_id}",
               f"role:     {self.role} ({state})",
               f"network:  {self.network}"]
        out += [f"address:  {addr}" for addr in self.addresses] or ["address:  (none)"]
        if self.reachability:
            out.append(f"reach:    {self.reachability} (AutoNAT: can peers dial us back)")
        if self.gateway:
            out.append(f"gateway:  {self.gateway}/ipfs/")
        if self.mcp:
            out.append(f"MCP:      {self.mcp}")
        if self.metrics:
            out.append(f"metrics:  {self.metrics}")
        return out


class DaemonFiles:
    """The card and the lock of the daemon of one repo."""

    def __init__(self, repo_path: Path) -> None:
        self.folder = Path(repo_path)
        self.card = self.folder / CARD
        self.lock = self.folder / LOCK

    @contextlib.contextmanager
    def claimed(self) -> Iterator[None]:
        """Hold the repo's daemon lock for the block; remove the card on the way out.

        Raises:
            BackendUnavailable: another daemon holds it (named from its card).
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise BackendUnavailable(self._already_running()) from None
            try:
                yield
            finally:
                self.card.unlink(missing_ok=True)
        finally:
            os.close(fd)  # releases the lock

    def _already_running(self) -> str:
        card = self._read_card()
        who = (f" (pid {card.pid}, peer id {card.peer_id}, MCP at {card.mcp})"
               if card is not None else "")
        return (f"a daemon is already running on the repo {self.folder}{who}; "
                "stop it first, or use `ipfs-mcp id` to reach it")

    def publish(self, card: NodeCard) -> None:
        """Write the card atomically (a reader sees the old one or the new one, whole).

        Raises:
            OSError: it cannot be written.
        """
        atomic_write(self.card, json.dumps(card.as_json(), indent=2).encode() + b"\n",
                     mode=0o600)

    def running(self) -> NodeCard | None:
        """The running daemon's card; None when no daemon holds the lock (a card left by a
        daemon that crashed is ignored)."""
        if not self.lock.exists():
            return None
        fd = os.open(self.lock, os.O_RDONLY | os.O_CLOEXEC)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return self._read_card()  # held: a daemon runs
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def _read_card(self) -> NodeCard | None:
        try:
            return NodeCard.from_json(json.loads(self.card.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            return None  # starting (not written yet) or stopping
