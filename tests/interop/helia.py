"""A real Helia node (helia 7, libp2p 3, Node.js) for tests, in a child process.

The node listens on ``/ip4/127.0.0.1/tcp/0`` only and speaks TCP + noise + yamux +
identify + bitswap (and, with ``dht=True``, ping and two Kademlia DHT servers that accept
loopback addresses: ``/ipfs/kad/1.0.0``, and ``/ipfs/lan/kad/1.0.0`` because Kubo keeps
peers on 127.0.0.1 only in its LAN DHT). It has no bootstrap
peers, mDNS, relay, delegated HTTP routers or gateways: it reaches only the peers a test
dials, or that dial it. Its peer ids are Ed25519 (``12D3KooW…``).

Example, bitswap in both directions with embedded Kubo::

    with HeliaNode(tmp_path / "helia") as helia, KuboNode(tmp_path / "kubo") as kubo:
        cid = helia.add(path, cid_version=1)          # Helia serves it over bitswap
        kubo.connect(helia.dial_addr)
        assert kubo.fetch(cid, timeout=20) == path.read_bytes()

        kcid = kubo.add(other)                         # and the other way round
        helia.dial(kubo.dial_addr)
        assert helia.fetch(kcid, timeout=20) == other.read_bytes()

Start-up, measured here (2 cores): 1.2-1.7 s from spawning ``node`` to "ready", nearly
all of it loading the JS modules (libp2p itself starts in about 0.05 s).

Requires ``npm ci --prefix tests/interop/js``; :func:`helia_skip_reason` says when that
is missing. Every call takes a ``timeout`` (seconds): the JS side aborts the operation
(bitswap want, dial, ...) when it passes and replies with a ``TimeoutError`` message,
turned here into :class:`~._process.InteropTimeout`; the Python side waits a few seconds
longer as a backstop. The node stays usable after a timeout.
"""

from __future__ import annotations

import base64
import itertools
import json
from pathlib import Path
from typing import Any

from ._process import ChildNode, InteropError, InteropTimeout, JsonLineProcess, node_folder
from .jsenv import JS_DIR, import_args, js_skip_reason, node_binary

__all__ = ["HeliaNode", "helia_skip_reason", "InteropError", "InteropTimeout"]

_SCRIPT = JS_DIR / "helia_peer.mjs"
_MARGIN = 5.0  # the Python-side backstop beyond a JS-side timeout


def helia_skip_reason() -> str | None:
    """Why Helia cannot run here (Node or node_modules missing), or None."""
    return js_skip_reason()


class HeliaNode(ChildNode):
    """One Helia node in a Node.js child process; use it as a context manager.

    Args:
        base_dir: a folder for the blockstore and the log (created if missing; a fresh
            temporary folder if None, removed on close).
        dht: also run ping and Kademlia DHT servers (``/ipfs/kad/1.0.0`` and
            ``/ipfs/lan/kad/1.0.0``); enables :meth:`provide` and :meth:`find_providers`.
        persistent: keep blocks in ``blockstore-fs`` under ``base_dir/blocks`` (else in
            memory).
        start_timeout: seconds to wait for the node to come up.

    Attributes:
        peer_id: the node's peer id (``12D3KooW…``).
        addrs: listen multiaddrs on 127.0.0.1, without ``/p2p/``.
        dial_addrs: the same with ``/p2p/<peer_id>``; ``dial_addr`` is the first.
        start_seconds: wall time from spawning ``node`` to "ready" (module loading
            included).
        log_path: the node's stderr (set ``DEBUG=libp2p*,helia*`` in the environment, or
            pass ``env``, for libp2p debug logs there).

    Import options of :meth:`add` / :meth:`add_bytes` follow Kubo's ``ipfs add`` and
    :class:`ipfs_mcp.backends.core.importer.ImportOptions`: ``cid_version=0``,
    ``raw_leaves=None`` (raw when CIDv1), ``chunk_size=262144``, ``max_links=174``
    (balanced layout), ``wrap=False``, ``hidden=False`` (dotfiles skipped),
    ``shard_threshold=262144``.
    """

    name = "helia"
    _proc: JsonLineProcess

    def __init__(self, base_dir: Path | str | None = None, *, dht: bool = False,
                 persistent: bool = True, start_timeout: float = 60.0,
                 env: dict[str, str] | None = None) -> None:
        reason = helia_skip_reason()
        if reason is not None:
            raise InteropError(reason)
        node = node_binary()
        assert node is not None
        self.base_dir, self._own_dir = node_folder(base_dir, "helia-")
        self.scratch = self.base_dir / "scratch"
        self.scratch.mkdir(exist_ok=True)
        self.log_path = self.base_dir / "helia.log"
        self._names = itertools.count(1)
        params = {"dht": dht,
                  "blockstore": str(self.base_dir / "blocks") if persistent else None}
        self._start([node, str(_SCRIPT), json.dumps(params)], start_timeout,
                    cwd=self.base_dir, env=env)

    def request(self, op: str, timeout: float = 30.0, **args: Any) -> Any:
        """Send a raw request (ops are listed in ``js/helia_peer.mjs``); network ops get
        ``timeout_ms`` from ``timeout``.

        Raises:
            InteropTimeout: the JS side timed out, or no answer came at all.
            InteropError: any other failure.
        """
        try:
            return self._proc.request(op, timeout + _MARGIN, timeout_ms=int(timeout * 1000),
                                      **args)
        except InteropTimeout:
            raise
        except InteropError as exc:
            if "TimeoutError" in str(exc):
                raise InteropTimeout(str(exc)) from exc
            raise

    # -- content ------------------------------------------------------------------------
    def add(self, path: Path | str, *, cid_version: int = 0, raw_leaves: bool | None = None,
            chunk_size: int | None = None, max_links: int | None = None, wrap: bool = False,
            hidden: bool = False, shard_threshold: int | None = None,
            timeout: float = 120.0) -> str:
        """Import a file or folder into Helia's blockstore; returns the root CID.

        The blocks are then served over bitswap. Dotfiles are skipped unless ``hidden``.
        """
        return self.request("add", timeout, path=str(Path(path).resolve()),
                            **import_args(cid_version=cid_version, raw_leaves=raw_leaves,
                                          chunk_size=chunk_size, max_links=max_links,
                                          wrap=wrap, hidden=hidden,
                                          shard_threshold=shard_threshold))

    def add_bytes(self, data: bytes, *, cid_version: int = 0, raw_leaves: bool | None = None,
                  chunk_size: int | None = None, max_links: int | None = None,
                  timeout: float = 120.0) -> str:
        """Import ``data`` as one file; returns its CID."""
        return self.request("add_bytes", timeout, data=base64.b64encode(data).decode(),
                            **import_args(cid_version=cid_version, raw_leaves=raw_leaves,
                                          chunk_size=chunk_size, max_links=max_links))

    def block_put(self, data: bytes, *, codec: str | int = "raw", cid_version: int = 1,
                  timeout: float = 30.0) -> str:
        """Store one block (sha2-256); ``codec`` is raw, dag-pb, dag-cbor, dag-json or a
        multicodec number. Returns its CID."""
        return self.request("block_put", timeout, data=base64.b64encode(data).decode(),
                            codec=codec, version=cid_version)

    def block_get(self, cid: str, *, timeout: float = 30.0, offline: bool = False) -> bytes:
        """One block's bytes: local, else fetched over bitswap (unless ``offline``)."""
        return base64.b64decode(self.request("block_get", timeout, cid=str(cid),
                                             offline=offline))

    def has(self, cid: str, *, timeout: float = 10.0) -> bool:
        """Whether the block is in the local blockstore (never asks peers)."""
        return bool(self.request("has", timeout, cid=str(cid)))

    def fetch(self, cid: str, *, timeout: float = 30.0) -> bytes:
        """The bytes of a UnixFS file (or raw block), fetched over bitswap if needed."""
        dest = self.scratch / f"cat-{next(self._names)}"
        try:
            self.request("cat", timeout, cid=str(cid), dest=str(dest))
            return dest.read_bytes()
        finally:
            dest.unlink(missing_ok=True)

    def download(self, cid: str, dest: Path | str, *, timeout: float = 30.0) -> str:
        """Write a UnixFS file, folder (recursively) or symlink to ``dest``.

        Returns the root's type ("file", "directory", "raw", "symlink").
        """
        dest = Path(dest).resolve()
        return str(self.request("get", timeout, cid=str(cid), dest=str(dest)))

    def pin(self, cid: str, *, timeout: float = 30.0) -> list[str]:
        """Pin recursively, fetching every block of the DAG; returns the CIDs pinned."""
        return list(self.request("pin", timeout, cid=str(cid)))

    def unpin(self, cid: str, *, timeout: float = 30.0) -> None:
        self.request("unpin", timeout, cid=str(cid))

    def pins(self, *, timeout: float = 30.0) -> list[str]:
        return list(self.request("pins", timeout))

    # -- peers --------------------------------------------------------------------------
    def dial(self, multiaddr: str, *, timeout: float = 15.0) -> str:
        """Connect to ``multiaddr`` (ending with ``/p2p/<peer id>``); returns that id."""
        return str(self.request("dial", timeout, addr=str(multiaddr)))

    connect = dial  # the same name as KuboNode's

    def hangup(self, peer_id: str, *, timeout: float = 10.0) -> None:
        self.request("hangup", timeout, peer_id=peer_id)

    def peers(self, *, timeout: float = 10.0) -> list[str]:
        """Peer ids of the connected peers."""
        return list(self.request("peers", timeout))

    peer_ids = peers  # the same name as KuboNode's

    def connections(self, *, timeout: float = 10.0) -> list[dict[str, str]]:
        """Open connections as ``{"peer_id", "addr"}`` (remote address)."""
        return list(self.request("connections", timeout))

    def provide(self, cid: str, *, timeout: float = 30.0) -> None:
        """Announce ``cid`` on the DHT (``dht=True`` only)."""
        self.request("provide", timeout, cid=str(cid))

    def find_providers(self, cid: str, *, timeout: float = 30.0, limit: int = 1
                       ) -> list[dict[str, Any]]:
        """Up to ``limit`` providers of ``cid`` from the DHT: ``{"peer_id", "addrs"}``."""
        return list(self.request("find_providers", timeout, cid=str(cid), limit=limit))

    def __repr__(self) -> str:
        return f"HeliaNode(peer_id={getattr(self, 'peer_id', None)!r}, " \
               f"addrs={getattr(self, 'addrs', None)!r})"
