"""A real IPFS Cluster 1.1.6 for tests: N peers, each in front of its own Kubo 0.43 daemon.

The binaries come from :func:`.gobuild.cluster_binaries` (built once, cached). A
:class:`Cluster` starts:

* one :class:`~.kubo_daemon.KuboDaemon` per peer (its own repo, loopback, random ports);
* one ``ipfs-cluster-service`` per peer: ``init --consensus crdt --randomports`` on a
  temporary ``IPFS_CLUSTER_PATH``, with one shared ``CLUSTER_SECRET`` and
  ``CLUSTER_CRDT_TRUSTEDPEERS='*'``; then, in ``service.json``: the cluster swarm on
  ``/ip4/127.0.0.1/tcp/0`` only (init picks 0.0.0.0 and QUIC), mDNS and relay off, the
  connector and the IPFS proxy pointed at that peer's Kubo, swarm connections between the
  Kubo daemons after 1 s (not 30), faster peer monitoring so a dead peer shows soon;
* the first peer alone, then each other one with ``daemon --bootstrap <every earlier
  peer>`` (they do not pass each other loopback addresses, so one bootstrap peer would
  leave the later ones apart); each
  start waits (bounded) for "IPFS Cluster is READY", and the whole start waits until
  every peer lists every other one in ``/peers``.

:meth:`Cluster.close` stops every cluster peer and every Kubo (SIGTERM, then kill).
``Cluster.start_seconds`` and each peer's ``start_seconds`` tell how long it took.

Example::

    with Cluster(tmp_path / "cluster", peers=3) as cluster:
        first = cluster.peers[0]
        first.rest_url   # http://127.0.0.1:N, the REST API (Cluster's 9094)
        first.proxy_url  # http://127.0.0.1:N, its Kubo RPC proxy (Cluster's 9095)
        first.kubo       # its KuboDaemon
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from ._process import DaemonProcess, InteropError, InteropTimeout, node_folder
from .gobuild import GoBuildError, cluster_binaries, interop_skip
from .kubo_daemon import KuboDaemon, set_dotted

__all__ = ["Cluster", "ClusterPeer", "cluster_service_binaries"]

_READY = "IPFS Cluster is READY"
_POLL = 0.1  # how often the start-up asks /peers while it waits for the others


def cluster_service_binaries() -> tuple[Path, Path]:
    """``(ipfs-cluster-service, ipfs-cluster-ctl)``, or a skip (a CI failure) saying why."""
    try:
        return cluster_binaries()
    except GoBuildError as exc:
        interop_skip(f"IPFS Cluster 1.1.6 is not available: {exc}")


def _url_of(multiaddr: str) -> str:
    parts = multiaddr.strip("/").split("/")
    return f"http://{parts[1]}:{parts[3]}"


class ClusterPeer:
    """One ``ipfs-cluster-service`` and its Kubo daemon (started by :class:`Cluster`)."""

    def __init__(self, base_dir: Path, index: int, *, service: Path, secret: str,
                 kubo: KuboDaemon, config: Mapping[str, Any] | None = None) -> None:
        self.index = index
        self.name = f"cluster-peer-{index}"
        self.base_dir = base_dir
        self.path = base_dir / "cluster"
        self.log_path = base_dir / "cluster.log"
        self.service = service
        self.kubo = kubo
        self.env = {"IPFS_CLUSTER_PATH": str(self.path), "CLUSTER_SECRET": secret,
                    "CLUSTER_CRDT_TRUSTEDPEERS": "*", "CLUSTER_PEERNAME": self.name}
        self._extra = dict(config or {})
        self._proc: DaemonProcess | None = None
        self._init()

    def _init(self) -> None:
        done = subprocess.run([str(self.service), "init", "--consensus", "crdt",
                               "--randomports"], capture_output=True, timeout=60,
                              env={**os.environ, **self.env}, check=False)
        if done.returncode != 0:
            raise InteropError(f"{self.name}: init failed: {done.stderr.decode()[-2000:]}")
        path = self.path / "service.json"
        config = json.loads(path.read_text())
        for key, value in {
            "cluster.listen_multiaddress": ["/ip4/127.0.0.1/tcp/0"],
            "cluster.mdns_interval": "0s",
            "cluster.enable_relay_hop": False,
            "cluster.monitor_ping_interval": "2s",
            "cluster.peer_watch_interval": "1s",
            # Peers appear to each other through pubsub; gossip every 1 s instead of 10 s.
            "cluster.pubsub.heartbeat_interval": "1s",
            # The allocator places pins only on peers whose metrics it has; peers send them
            # every TTL/2, so 30 s (the default) would leave a fresh cluster unusable.
            "informer.disk.metric_ttl": "2s",
            "informer.pinqueue.metric_ttl": "2s",
            "informer.tags.metric_ttl": "2s",
            "ipfs_connector.ipfshttp.node_multiaddress": self.kubo.api_multiaddr,
            "ipfs_connector.ipfshttp.connect_swarms_delay": "1s",
            "api.ipfsproxy.node_multiaddress": self.kubo.api_multiaddr,
            **self._extra,
        }.items():
            set_dotted(config, key, value)
        path.write_text(json.dumps(config, indent=2))
        self.rest_multiaddr = config["api"]["restapi"]["http_listen_multiaddress"]
        self.rest_url = _url_of(self.rest_multiaddr)
        self.proxy_url = _url_of(config["api"]["ipfsproxy"]["listen_multiaddress"])

    def start(self, bootstrap: str | None, timeout: float) -> None:
        """Start the daemon (joining ``bootstrap`` if given) and wait until it is ready.

        Raises:
            InteropTimeout / InteropError: it was not ready in time, or exited.
        """
        started = time.monotonic()
        argv = [str(self.service), "daemon"]
        if bootstrap:
            argv += ["--bootstrap", bootstrap]
        for attempt in range(3):
            self._proc = DaemonProcess(argv, name=self.name, cwd=self.base_dir,
                                       log_path=self.log_path, ready_marker=_READY,
                                       env=self.env)
            try:
                self._proc.wait_ready(max(1.0, timeout - (time.monotonic() - started)))
                info = self.get("id", timeout=max(1.0, timeout - (time.monotonic() - started)))
                break
            except InteropError as exc:
                self._proc.close(grace=1.0)
                # init's --randomports were free when it picked them, not always when the
                # daemon binds them (another process may take one in between): init anew.
                if attempt == 2 or "address already in use" not in str(exc):
                    raise
                shutil.rmtree(self.path)
                self._init()
            except BaseException:
                self._proc.close(grace=1.0)
                raise
        self.peer_id: str = info["id"]
        addrs = [a for a in info.get("addresses") or [] if a.startswith("/ip4/127.0.0.1/")]
        if not addrs:
            raise InteropError(f"{self.name} has no loopback address: {info}")
        self.dial_addr = addrs[0] if "/p2p/" in addrs[0] else f"{addrs[0]}/p2p/{self.peer_id}"
        self.start_seconds = time.monotonic() - started

    def get(self, path: str, *, timeout: float = 30.0, **params: Any) -> Any:
        """``GET /<path>`` on the REST API: the JSON (a list for NDJSON streams)."""
        try:
            response = httpx.get(f"{self.rest_url}/{path}", params=params, timeout=timeout)
        except httpx.HTTPError as exc:
            raise InteropError(f"{self.name}: GET /{path} failed: {exc!r}") from exc
        if response.status_code != 200:
            raise InteropError(f"{self.name}: GET /{path} answered {response.status_code}: "
                               f"{response.text[:500]}")
        text = response.text.strip()
        if not text:
            return []
        try:
            return json.loads(text)
        except ValueError:
            return [json.loads(line) for line in text.splitlines() if line.strip()]

    def peer_ids(self, *, timeout: float = 10.0) -> list[str]:
        """The cluster peers this one knows, from ``/peers`` (NDJSON), without errors."""
        answer = self.get("peers", timeout=timeout)
        peers = answer if isinstance(answer, list) else [answer]
        return [str(p["id"]) for p in peers if isinstance(p, dict) and not p.get("error")]

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.alive

    def close(self) -> None:
        if self._proc is not None:
            self._proc.close(grace=15.0)


class Cluster:
    """``peers`` cluster peers, CRDT consensus, all trusted, each with its own Kubo 0.43.

    Args:
        base_dir: a folder for every repo and log (a fresh temporary one if None, removed
            on close).
        peers: how many peers.
        start_timeout: seconds for the whole start-up (every Kubo, every peer, and all of
            them seeing each other).
        config: extra ``service.json`` keys (dotted) for every peer.
    """

    def __init__(self, base_dir: Path | str | None = None, *, peers: int = 3,
                 start_timeout: float = 120.0, config: Mapping[str, Any] | None = None
                 ) -> None:
        service, self.ctl = cluster_service_binaries()
        self.base_dir, self._own_dir = node_folder(base_dir, "cluster-")
        started = time.monotonic()
        deadline = started + start_timeout
        secret = os.urandom(32).hex()
        self.peers: list[ClusterPeer] = []
        self._kubos: list[KuboDaemon] = []
        try:
            for i in range(peers):
                folder = self.base_dir / f"peer{i}"
                kubo = KuboDaemon(folder / "kubo",
                                  start_timeout=max(1.0, deadline - time.monotonic()))
                self._kubos.append(kubo)
                self.peers.append(ClusterPeer(folder, i, service=service, secret=secret,
                                              kubo=kubo, config=config))
            self.kubo_seconds = time.monotonic() - started
            for i, peer in enumerate(self.peers):
                # Every earlier peer, not only the first: the peers do not pass each other
                # loopback addresses, so one bootstrap peer would leave the others apart.
                bootstrap = ",".join(p.dial_addr for p in self.peers[:i])
                peer.start(bootstrap or None, max(1.0, deadline - time.monotonic()))
            self.wait_for_peers(len(self.peers), timeout=max(1.0, deadline - time.monotonic()))
            self.wait_for_metrics(len(self.peers),
                                  timeout=max(1.0, deadline - time.monotonic()))
        except BaseException:
            self.close()
            raise
        self.start_seconds = time.monotonic() - started

    def wait_for_peers(self, count: int, *, timeout: float) -> None:
        """Wait until every running peer lists ``count`` healthy peers (bounded)."""
        deadline = time.monotonic() + timeout
        while True:
            seen = [len(p.peer_ids(timeout=max(0.5, deadline - time.monotonic())))
                    for p in self.peers if p.alive]
            if seen and all(n >= count for n in seen):
                return
            if time.monotonic() >= deadline:
                raise InteropTimeout(f"cluster peers saw {seen} peers, not {count}, within "
                                     f"{timeout:.1f} s")
            time.sleep(_POLL)

    def wait_for_metrics(self, count: int, *, timeout: float,
                         metric: str = "freespace") -> None:
        """Wait until the first peer holds ``metric`` from ``count`` peers: until then the
        allocator cannot place a pin with that replication factor."""
        deadline = time.monotonic() + timeout
        while True:
            metrics = self.peers[0].get(f"monitor/metrics/{metric}",
                                        timeout=max(0.5, deadline - time.monotonic()))
            peers = {m.get("peer") for m in metrics if isinstance(m, dict) and m.get("valid")}
            if len(peers) >= count:
                return
            if time.monotonic() >= deadline:
                raise InteropTimeout(f"cluster {metric} metrics from {len(peers)} peers, not "
                                     f"{count}, within {timeout:.1f} s")
            time.sleep(_POLL)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every cluster peer, then every Kubo; idempotent."""
        for peer in reversed(self.peers):
            peer.close()
        for kubo in self._kubos:
            kubo.close()
        if self._own_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)
