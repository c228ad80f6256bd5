"""``cluster``: an IPFS Cluster (REST API, Cluster 1.x) in front of Kubo nodes.

Selected by ``IPFS_BACKEND=cluster``. ``IPFS_CLUSTER_API`` (default
``http://127.0.0.1:9094``) is one cluster peer's REST API; ``IPFS_CLUSTER_AUTHORIZATION``
its ``Authorization`` header (``Basic ...`` or ``Bearer ...``), never logged.

* **Adding** streams a multipart upload to the cluster's ``/add`` (the same encoder as the
  Kubo backend's, :mod:`.kubo.upload`), with our import options mapped to the cluster's (``cid-version``,
  ``raw-leaves``, ``chunker``, ``layout=trickle``, ``hidden``, ``wrap-with-directory``)
  and ``replication-min``/``replication-max``/``name``. Our importer computes the CID of
  the same input as it goes, storing nothing; if the cluster's CID differs, the add fails
  (:class:`IntegrityError`) and the cluster's pin is removed. Options the cluster's adder
  has no parameter for (file and directory link limits, HAMT settings) are refused.
* **Pins** are the cluster's: ``pin``/``unpin`` with replication factors and a name
  (a pin that exists keeps its name, factors and metadata unless new ones are given: the
  cluster replaces a pin's options whole, so they are read back first), ``pins`` from the
  streamed ``/allocations`` with the time each pin was added and, where the Kubo behind
  this peer holds the root, its cumulative size, and :meth:`ClusterBackend.pin_status` per
  peer from the streamed ``/pins`` (NDJSON since Cluster 1.0). A pin or add returns once
  ``replication_min`` peers (every peer, for "everywhere") report it pinned, or raises
  :class:`Timeout` naming each peer's status.
* **Replication travels with the write**: :meth:`ClusterBackend.with_replication` is this
  backend with factors every add and pin carries, so the cluster allocates the peers
  before the first block moves (as ``ipfs-cluster-ctl add --rmin/--rmax``) and never
  copies the blocks everywhere first.
* **Reads** go through the cluster's Kubo RPC (``IPFS_API``, else the cluster host's IPFS
  proxy on port 9095) with :class:`~.kubo.backend.KuboBackend`, so every byte is verified
  against its CID as with any Kubo; the network tools speak for that Kubo too.

Nothing here trusts the cluster for content: the CID of what was added is checked, and
what is read is verified.
"""

from __future__ import annotations

import copy
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit, urlunsplit

import httpx
from multiformats import CID

from ipfs_mcp.backends.core.car import CarImportReport
from ipfs_mcp.backends.core.cids import cid_str, parse_cid
from ipfs_mcp.backends.core.exporter import Entry, Exporter
from ipfs_mcp.backends.core.hamt import FANOUT as DEFAULT_HAMT_FANOUT
from ipfs_mcp.backends.core.importer import (
    DEFAULT_MAX_LINKS,
    DEFAULT_SHARD_THRESHOLD,
    Importer,
    ImportOptions,
    ImportResult,
)
from ipfs_mcp.backends.core.rooted import OutputTarget
from ipfs_mcp.backends.errors import (
    BackendUnavailable,
    IntegrityError,
    InvalidInput,
    IpfsMcpError,
    PinNotFound,
    Timeout,
)
from ipfs_mcp.backends.http_answers import error_message, http_failure, json_lines
from ipfs_mcp.backends.remote.kubo.backend import KuboBackend
from ipfs_mcp.backends.remote.kubo.upload import (
    LocalTree,
    Part,
    added_entries,
    multipart,
    multipart_boundary,
    read_pieces,
)
from ipfs_mcp.backends.repo.pins import Pin, PinType
from ipfs_mcp.backends.settings import BackendSettings

__all__ = ["ClusterBackend", "ClusterPinStatus", "PeerPinStatus", "make_cluster_backend"]

DEFAULT_CLUSTER_API = "http://127.0.0.1:9094"
PROXY_PORT = 9095  # the cluster's Kubo RPC proxy (api.ipfsproxy)
_PROBE_TIMEOUT = 5.0
_POLL = 0.2  # how often a pin's status is asked while waiting for it
_PIPE_DEPTH = 8  # 1 MiB pieces between the upload and our importer's thread
SIZED_PINS = 1000  # pins() asks Kubo for the size of at most this many roots
Factors = tuple[int | None, int | None]  # (replication_min, replication_max); None: unsaid


@dataclass(frozen=True)
class PeerPinStatus:
    """One cluster peer's view of one pin (``status``: ``pinned``, ``pinning``,
    ``pin_queued``, ``pin_error``, ``cluster_error``, ``remote``, ...)."""

    peer_id: str
    peer_name: str
    status: str
    error: str = ""


@dataclass(frozen=True)
class ClusterPinStatus:
    """A pin across the cluster: every peer's status."""

    cid: str
    name: str
    peers: tuple[PeerPinStatus, ...]

    def pinned_on(self) -> list[str]:
        return [p.peer_id for p in self.peers if p.status == "pinned"]

    def failing(self) -> list[PeerPinStatus]:
        """Peers that report an error for this pin (a peer that is down, its Kubo gone)."""
        return [p for p in self.peers if p.error or p.status.endswith("error")]


def make_cluster_backend(settings: BackendSettings) -> ClusterBackend:
    """The cluster backend the settings name (``IPFS_CLUSTER_API``, ...), probed.

    Raises:
        BackendUnavailable: the cluster or its Kubo RPC does not answer (with the URL).
    """
    return ClusterBackend.connect(settings.ipfs_cluster_api,
                                  authorization=settings.ipfs_cluster_authorization,
                                  kubo_api=settings.ipfs_api,
                                  kubo_authorization=settings.ipfs_api_authorization,
                                  timeout=settings.ipfs_api_timeout)


def proxy_url_for(cluster_api: str) -> str:
    """The cluster host's IPFS proxy (``http://host:9095``), where its Kubo RPC answers."""
    split = urlsplit(cluster_api)
    host = split.hostname or "127.0.0.1"
    netloc = f"[{host}]:{PROXY_PORT}" if ":" in host else f"{host}:{PROXY_PORT}"
    return urlunsplit((split.scheme or "http", netloc, "", "", ""))


def check_cluster_add_options(o: ImportOptions) -> ImportOptions:
    """The options, if the cluster's adder has parameters for them.

    Raises:
        InvalidInput: an option the cluster's ``/add`` cannot take (its CID would differ).
    """
    unsupported = []
    if o.max_links != DEFAULT_MAX_LINKS:
        unsupported.append("max_links (--max-file-links)")
    if o.max_directory_links:
        unsupported.append("max_directory_links")
    if o.max_hamt_fanout != DEFAULT_HAMT_FANOUT:
        unsupported.append("max_hamt_fanout")
    if o.shard_threshold != DEFAULT_SHARD_THRESHOLD or o.hamt_size_estimation != "links":
        unsupported.append("the HAMT threshold or size estimation")
    if o.follow_symlinks:
        unsupported.append("follow_symlinks")
    if unsupported:
        raise InvalidInput(f"IPFS Cluster's /add has no parameter for {', '.join(unsupported)};"
                           " use the kubo or hf_cache backend for these options")
    return o


class ClusterAPI:
    """The REST API of one cluster peer: requests, NDJSON streams, errors mapped.

    Args:
        url: the API's base URL (``http://127.0.0.1:9094``).
        client: the ``httpx.Client`` to use (default: one of our own, closed by close()).
        authorization: the ``Authorization`` header value.
        timeout: seconds one request may take.
    """

    def __init__(self, url: str, *, client: httpx.Client | None = None,
                 authorization: str | None = None, timeout: float = 60.0) -> None:
        split = urlsplit(url.strip().rstrip("/"))
        if split.scheme not in ("http", "https") or not split.netloc:
            raise InvalidInput(f"IPFS_CLUSTER_API {url!r} is not an http(s) URL")
        self.url = url.strip().rstrip("/")
        self.timeout = timeout
        self._headers = {"Authorization": authorization} if authorization else {}
        self._owns_client = client is None
        self.client = client or httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=httpx.HTTPTransport(retries=1))

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def __repr__(self) -> str:
        return f"ClusterAPI({self.url!r})"  # never the Authorization header

    def _fail(self, what: str, exc: httpx.HTTPError) -> IpfsMcpError:
        return http_failure(exc, service=f"the IPFS Cluster REST API at {self.url}", what=what,
                            timeout=self.timeout,
                            start_hint="start ipfs-cluster-service or point IPFS_CLUSTER_API "
                                       "at its REST API")

    def _error(self, what: str, response: httpx.Response, subject: str | None) -> IpfsMcpError:
        message = error_message(response, "message")
        status = response.status_code
        if status in (401, 403):
            return BackendUnavailable(f"IPFS Cluster at {self.url} refused {what} ({status} "
                                      f"{message}); check IPFS_CLUSTER_AUTHORIZATION")
        if status == 404 and subject is not None:
            return PinNotFound(f"{subject} is not pinned in the cluster at {self.url} "
                               f"({message})")
        return IpfsMcpError(f"IPFS Cluster at {self.url}: {what} failed ({status}): {message}")

    @contextmanager
    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                content: Iterator[bytes] | None = None, boundary: str | None = None,
                subject: str | None = None, timeout: float | None = None
                ) -> Iterator[httpx.Response]:
        """One request; yields the streaming response (2xx only).

        Raises:
            DaemonUnreachable / Timeout / BackendUnavailable: transport failures (with the
                URL); PinNotFound: 404 for ``subject``; IpfsMcpError: any other error.
        """
        headers = dict(self._headers)
        if boundary is not None:
            headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        query = {k: (str(v).lower() if isinstance(v, bool) else str(v))
                 for k, v in (params or {}).items() if v is not None}
        limit = httpx.USE_CLIENT_DEFAULT if timeout is None else timeout
        try:
            with self.client.stream(method, f"{self.url}/{path}", params=query,
                                    content=content, headers=headers,
                                    timeout=limit) as response:
                if response.status_code not in (200, 202, 204):
                    raise self._error(f"{method} /{path}", response, subject)
                yield response
        except httpx.HTTPError as exc:
            raise self._fail(f"{method} /{path}", exc) from exc

    def json(self, method: str, path: str, **kwargs: Any) -> list[Any]:
        """The answer's JSON values: one, or one per line for the NDJSON streams."""
        with self.request(method, path, **kwargs) as response:
            out = list(json_lines(response.iter_lines(), lambda line: IpfsMcpError(
                f"IPFS Cluster at {self.url}: /{path} sent a line that is not JSON: "
                f"{line[:200]!r}")))
            if len(out) == 1 and isinstance(out[0], list):
                return out[0]  # a plain JSON array
            return out

    def id(self, *, timeout: float | None = None) -> dict[str, Any]:
        """The peer's ``/id``: ``id``, ``peername``, ``version``, ``ipfs``, ...

        Raises:
            BackendUnavailable: it does not answer, or is not a cluster.
        """
        answer = self.json("GET", "id", timeout=timeout)
        if not answer or not isinstance(answer[0], dict) or "id" not in answer[0]:
            raise BackendUnavailable(f"{self.url}/id does not look like IPFS Cluster: "
                                     f"{answer!r}")
        return answer[0]

    def peers(self) -> list[dict[str, Any]]:
        """Every cluster peer as this one sees it (``/peers``, NDJSON)."""
        return [p for p in self.json("GET", "peers") if isinstance(p, dict)]


class ClusterBackend:
    """A cluster through its REST API, reads through its Kubo (see the module docstring).

    Args:
        api: the cluster peer's REST API.
        kubo: the Kubo backend (over the cluster's RPC proxy) reads go through.
        timeout: seconds one wait for a pin may take.
    """

    name = "cluster"
    repo = None  # the cluster's peers keep their own repos
    counters = None
    _factors: Factors = (None, None)  # what every add and pin carries (with_replication)
    _owns = True  # closes the clients; a with_replication() view shares them

    @property
    def replication(self) -> ClusterBackend:
        """This backend pins with a replication factor (see :meth:`pin`)."""
        return self

    def __init__(self, api: ClusterAPI, kubo: KuboBackend, *, timeout: float = 60.0
                 ) -> None:
        self.api = api
        self.url = api.url
        self.kubo = kubo
        self.network = kubo.network  # the network tools speak for the cluster's Kubo
        self.names = kubo.names  # and names are the cluster's Kubo's
        self.timeout = timeout

    @classmethod
    def connect(cls, url: str | None = None, *, authorization: str | None = None,
                kubo_api: str | None = None, kubo_authorization: str | None = None,
                timeout: float = 60.0) -> ClusterBackend:
        """A backend whose cluster answered ``/id`` and whose Kubo RPC answered ``id``
        (the cluster is asked first, so its URL is the one an error names).

        Raises:
            BackendUnavailable: either does not answer (the message has the URL tried).
        """
        api = ClusterAPI(url or DEFAULT_CLUSTER_API, authorization=authorization,
                         timeout=timeout)
        try:
            api.id(timeout=min(timeout, _PROBE_TIMEOUT))
            kubo = KuboBackend.over_http(kubo_api or proxy_url_for(api.url),
                                         authorization=kubo_authorization, timeout=timeout)
        except BaseException:
            api.close()
            raise
        return cls(api, kubo, timeout=timeout)

    def with_replication(self, replication_min: int | None, replication_max: int | None
                         ) -> ClusterBackend:
        """This backend, with every add and pin carrying these factors (where a call gives
        none itself), so the cluster allocates before any block moves. Shares the clients;
        closing it closes nothing."""
        view = copy.copy(self)
        view._factors = (replication_min, replication_max)
        view._owns = False
        return view

    def _factored(self, low: int | None, high: int | None) -> Factors:
        return (self._factors[0] if low is None else low,
                self._factors[1] if high is None else high)

    def close(self) -> None:
        if self._owns:
            self.api.close()
            self.kubo.close()

    def __repr__(self) -> str:
        return f"ClusterBackend({self.url!r})"

    def cluster_id(self) -> dict[str, Any]:
        return self.api.id()

    # -- adding -------------------------------------------------------------------------
    def _add(self, parts: Iterator[Part], o: ImportOptions, *, pin: bool, name: str,
             wrap: bool, expected: Callable[[], CID], replication_min: int | None,
             replication_max: int | None) -> list[tuple[str, CID]]:
        replication_min, replication_max = self._factored(replication_min, replication_max)
        params = {"cid-version": o.cid_version, "raw-leaves": o.leaves_are_raw,
                  "chunker": o.chunker_spec, "layout": "trickle" if o.trickle else None,
                  "hidden": o.hidden, "wrap-with-directory": wrap, "name": name or None,
                  "replication-min": replication_min, "replication-max": replication_max,
                  "no-pin": not pin, "progress": False,
                  # Streamed answers report a failure in an HTTP trailer (X-Stream-Error),
                  # which httpx cannot read; unstreamed, a failure is a 500 with its message.
                  "stream-channels": False}
        boundary = multipart_boundary()
        answers = self.api.json("POST", "add", params=params, boundary=boundary,
                             content=multipart(parts, boundary),
                             timeout=max(self.timeout, 3600.0))
        added = []
        for answer in answers:
            if isinstance(answer, dict) and answer.get("cid"):
                added.append((str(answer.get("name", "")), parse_cid(str(answer["cid"]))))
        if not added:
            raise IpfsMcpError(f"IPFS Cluster at {self.url}: /add answered no CID: "
                               f"{answers[:3]!r}")
        ours = expected()
        root = added[-1][1]
        if bytes(root) != bytes(ours):
            if pin:
                try:
                    self.api.json("DELETE", f"pins/{cid_str(root)}", subject=cid_str(root))
                except IpfsMcpError:
                    pass  # the mismatch is the error to report
            raise IntegrityError(f"IPFS Cluster at {self.url} added the content as "
                                 f"{cid_str(root)}, but our importer makes it {cid_str(ours)} "
                                 "with the same options; the cluster's pin was removed")
        if pin:
            self.wait_pinned(cid_str(root), replication_min)
        return added

    def add_bytes(self, data: bytes, *, pin: bool = True, name: str = "",
                  options: ImportOptions | None = None, replication_min: int | None = None,
                  replication_max: int | None = None) -> str:
        o = check_cluster_add_options(options or ImportOptions())
        added = self._add(iter([Part("data", "file", [bytes(data)])]), o, pin=pin,
                          name=name, wrap=False,
                          expected=lambda: Importer(None, o).add_bytes(bytes(data)).cid_obj,
                          replication_min=replication_min, replication_max=replication_max)
        return cid_str(added[-1][1])

    def add_stream(self, stream: BinaryIO, *, pin: bool = True, name: str = "",
                   options: ImportOptions | None = None,
                   progress: Callable[[int], None] | None = None,
                   replication_min: int | None = None,
                   replication_max: int | None = None) -> str:
        """One file from a stream: each 1 MiB piece goes to the upload and to our importer
        (in a thread), so the stream is read once and never held whole."""
        o = check_cluster_add_options(options or ImportOptions())
        tee = _Tee(read_pieces(stream, progress), o)
        try:
            added = self._add(iter([Part(name or "data", "file", tee.pieces())]), o, pin=pin,
                              name=name, wrap=False, expected=tee.cid,
                              replication_min=replication_min,
                              replication_max=replication_max)
        finally:
            tee.close()
        return cid_str(added[-1][1])

    def add_path(self, path: str | Path, *, recursive: bool = True, pin: bool = True,
                 name: str = "", options: ImportOptions | None = None,
                 progress: Callable[[int], None] | None = None,
                 replication_min: int | None = None,
                 replication_max: int | None = None) -> ImportResult:
        """A file or folder, as ``ipfs add [-r]`` sends it (dotfiles skipped unless
        ``hidden``); our importer reads the same tree to check the CID.

        Raises:
            NotFound: no such path.
            InvalidInput: a folder without ``recursive``, or an option the cluster lacks.
        """
        o = check_cluster_add_options(options or ImportOptions())
        tree = LocalTree.open(path, recursive=recursive, options=o, progress=progress)
        added = self._add(tree.parts(), o, pin=pin, name=name or tree.name,
                          wrap=o.wrap_with_directory,
                          expected=lambda: Importer(None, o).add_path(tree.top).root,
                          replication_min=replication_min, replication_max=replication_max)
        return ImportResult(added[-1][1], tree.sent, added_entries(tree, added))

    # -- pins ---------------------------------------------------------------------------
    def pin(self, cid: str, *, recursive: bool = True, name: str = "",
            progress: Callable[[int], None] | None = None, replication_min: int | None = None,
            replication_max: int | None = None) -> Pin:
        """Pin in the cluster and wait until ``replication_min`` peers hold it. A pin the
        cluster already has keeps its name, factors and metadata where none are given (the
        cluster replaces a pin's options whole, so a plain pin would reset them).

        Raises:
            Timeout: not pinned on enough peers in time (each peer's status is named).
        """
        target = cid_str(self.kubo.reader.resolve(cid))
        low, high = self._factored(replication_min, replication_max)
        kept = self.allocation(target) or {}
        name = name or str(kept.get("name") or "")
        low = _kept_factor(low, kept.get("replication_factor_min"))
        high = _kept_factor(high, kept.get("replication_factor_max"))
        if low is not None and high is not None and 0 < high < low:
            high = low  # a new minimum above the kept maximum raises the maximum with it
        metadata = kept.get("metadata") if isinstance(kept.get("metadata"), dict) else {}
        self.api.json("POST", f"pins/{target}", params={
            "name": name or None, "mode": "recursive" if recursive else "direct",
            "replication-min": low, "replication-max": high,
            **{f"meta-{k}": str(v) for k, v in (metadata or {}).items()}})
        self.wait_pinned(target, low)
        return Pin(parse_cid(target), "recursive" if recursive else "direct", name=name,
                   size=self._held_size(parse_cid(target), recursive=recursive))

    def allocation(self, cid: str) -> dict[str, Any] | None:
        """The cluster's pin of ``cid`` (``/allocations/<cid>``: name, factors, metadata,
        allocations, timestamp), or None when the cluster does not pin it."""
        try:
            answer = self.api.json("GET", f"allocations/{cid}", subject=cid)
        except PinNotFound:
            return None
        return answer[0] if answer and isinstance(answer[0], dict) else None

    def _held_size(self, cid: CID, *, recursive: bool = True) -> int | None:
        """The root's cumulative size where this peer's Kubo holds the root (the cluster
        records none)."""
        return self.kubo.held_size(cid) if recursive else None

    def unpin(self, cid: str) -> list[str]:
        """Raises: PinNotFound: the cluster does not pin it."""
        target = cid_str(self.kubo.reader.resolve(cid))
        answer = self.api.json("DELETE", f"pins/{target}", subject=target)
        mode = answer[0].get("mode") if answer and isinstance(answer[0], dict) else None
        return [mode or "recursive"]

    def pins(self) -> list[Pin]:
        """The cluster's pinset (``/allocations``), newest first, with names, modes, when
        each was added (the cluster's ``timestamp``) and, for the newest
        :data:`SIZED_PINS` whose root this peer's Kubo holds, the cumulative size (one
        offline block read each, so a large pinset costs a bounded number of reads)."""
        out = []
        for item in self.api.json("GET", "allocations", params={"filter": "pin"}):
            if isinstance(item, dict) and item.get("cid"):
                mode: PinType = "direct" if item.get("mode") == "direct" else "recursive"
                out.append(Pin(parse_cid(str(item["cid"])), mode,
                               name=str(item.get("name") or ""),
                               created=_epoch(item.get("timestamp"))))
        out.sort(key=lambda p: p.created, reverse=True)
        return [replace(p, size=self._held_size(p.cid, recursive=p.type == "recursive"))
                if i < SIZED_PINS else p for i, p in enumerate(out)]

    def pin_status(self, cid: str | None = None) -> list[ClusterPinStatus]:
        """Each pin's status on every peer (``/pins``, NDJSON; one CID: ``/pins/<cid>``)."""
        path = f"pins/{cid_str(parse_cid(cid))}" if cid else "pins"
        out = []
        for item in self.api.json("GET", path):
            if not isinstance(item, dict) or not item.get("cid"):
                continue
            peers = tuple(
                PeerPinStatus(str(peer), str(info.get("peername") or ""),
                              str(info.get("status") or ""), str(info.get("error") or ""))
                for peer, info in sorted((item.get("peer_map") or {}).items()))
            out.append(ClusterPinStatus(cid_str(parse_cid(str(item["cid"]))),
                                        str(item.get("name") or ""), peers))
        return out

    def wait_pinned(self, cid: str, replication_min: int | None = None,
                    timeout: float | None = None) -> ClusterPinStatus:
        """Wait (bounded) until ``replication_min`` peers report ``cid`` pinned; without a
        minimum, until every peer the cluster allocated it to does.

        Raises:
            Timeout: not in time; the message names every peer's status and error.
        """
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            statuses = self.pin_status(cid)
            status = statuses[0] if statuses else ClusterPinStatus(cid, "", ())
            pinned = status.pinned_on()
            allocated = [p for p in status.peers if p.status != "remote"]
            wanted = replication_min if replication_min and replication_min > 0 \
                else max(1, len(allocated))
            if len(pinned) >= wanted:
                return status
            if time.monotonic() >= deadline:
                detail = ", ".join(f"{p.peer_name or p.peer_id}: {p.status}"
                                   f"{' (' + p.error + ')' if p.error else ''}"
                                   for p in status.peers) or "no peer reports it"
                raise Timeout(f"{cid} is pinned on {len(pinned)} of the {wanted} cluster "
                              f"peers wanted after {limit:g} s ({detail})")
            time.sleep(_POLL)  # polling the cluster's status; bounded by the deadline

    # -- reads and blocks: the cluster's Kubo, verified -----------------------------------
    def stat(self, cid: str) -> Entry:
        return self.kubo.stat(cid)

    def ls(self, cid: str) -> list[Entry]:
        return self.kubo.ls(cid)

    def cat(self, cid: str, *, offset: int = 0, length: int | None = None) -> bytes:
        return self.kubo.cat(cid, offset=offset, length=length)

    def cat_stream(self, cid: str, *, offset: int = 0, length: int | None = None
                   ) -> Iterator[bytes]:
        return self.kubo.cat_stream(cid, offset=offset, length=length)

    def get_to_path(self, cid: str, *, output_path: str | Path | OutputTarget,
                    overwrite: bool = False,
                    max_bytes: int | None = None,
                    progress: Callable[[int], None] | None = None) -> Entry:
        return self.kubo.get_to_path(cid, output_path=output_path, overwrite=overwrite,
                                     max_bytes=max_bytes, progress=progress)

    def exporter(self, *, whole_dag: bool = False) -> Exporter:
        return self.kubo.exporter(whole_dag=whole_dag)

    def block_get(self, cid: str) -> bytes:
        return self.kubo.block_get(cid)

    def block_put(self, data: bytes, *, codec: str = "raw") -> str:
        """Into the cluster's Kubo (checked), then pinned by the cluster."""
        cid = self.kubo.block_put(data, codec=codec)
        self.pin(cid)
        return cid

    def dag_export(self, cid: str, out: Path | BinaryIO | None = None) -> bytes | None:
        return self.kubo.dag_export(cid, out)

    def dag_import(self, stream: BinaryIO, *, pin_roots: bool = True) -> CarImportReport:
        """Into the cluster's Kubo (every block verified on the way), roots pinned by the
        cluster."""
        report = self.kubo.dag_import(stream, pin_roots=False)
        if pin_roots:
            for root in report.roots:
                self.pin(cid_str(root))
        return report

    # -- life ---------------------------------------------------------------------------
    def health(self) -> str:
        """One line: the peer, how many peers answer, which do not, and the Kubo behind it.

        Raises:
            BackendUnavailable: the cluster or its Kubo does not answer.
        """
        info = self.api.id(timeout=min(self.timeout, 30.0))
        peers = self.api.peers()
        down = [str(p.get("peername") or p.get("id")) for p in peers
                if p.get("error") or (p.get("ipfs") or {}).get("error")]
        kubo = self.kubo.health()
        return (f"IPFS Cluster {info.get('version', '?')} at {self.url}: peer "
                f"{info.get('peername') or info['id']}, {len(peers) - len(down)} of "
                f"{len(peers)} peers up{' (down: ' + ', '.join(down) + ')' if down else ''}; "
                f"reads via {kubo}")


def _kept_factor(given: int | None, kept: object) -> int | None:
    """The factor asked for, else the existing pin's (0 there means "the default")."""
    if given is not None:
        return given
    return kept if isinstance(kept, int) and kept != 0 else None


def _epoch(stamp: object) -> float:
    """Seconds since the epoch of the cluster's RFC 3339 time (0.0 when it gives none)."""
    if not isinstance(stamp, str) or stamp.startswith("0001-"):
        return 0.0
    # Go writes up to nine fraction digits; Python's parser takes six.
    stamp = re.sub(r"(\.\d{6})\d+", r"\1", stamp.replace("Z", "+00:00"))
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return 0.0


class _Tee:
    """Pieces for the upload, copied to our importer running in a thread on the same
    bytes (a bounded queue between them), so the stream is read once."""

    _END = b""

    def __init__(self, pieces: Iterator[bytes], options: ImportOptions) -> None:
        self._pieces = pieces
        self._queue: queue.Queue[bytes] = queue.Queue(maxsize=_PIPE_DEPTH)
        self._result: list[CID] = []
        self._error: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(options,),
                                        name="cluster-add-hash", daemon=True)
        self._thread.start()

    def _run(self, options: ImportOptions) -> None:
        try:
            self._result.append(Importer(None, options).add_stream(_QueueReader(self._queue)
                                                                   ).cid_obj)
        except BaseException as exc:  # reported by cid()
            self._error.append(exc)

    def pieces(self) -> Iterator[bytes]:
        for piece in self._pieces:
            if piece:
                self._queue.put(piece)
                yield piece
        self._queue.put(self._END)

    def cid(self) -> CID:
        self._thread.join(timeout=3600)
        if self._error:
            raise IpfsMcpError(f"computing the CID failed: {self._error[0]}") from self._error[0]
        if not self._result:
            raise IpfsMcpError("computing the CID did not finish")
        return self._result[0]

    def close(self) -> None:
        """End the importer's input if the upload stopped early, so its thread ends."""
        for _ in range(_PIPE_DEPTH + 2):  # make room for the end marker, then send it
            if not self._thread.is_alive():
                return
            try:
                self._queue.put_nowait(self._END)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    pass


class _QueueReader:
    """A read-only stream over queued pieces (``b""`` ends it)."""

    def __init__(self, pieces: queue.Queue[bytes]) -> None:
        self._pieces = pieces
        self._buf = bytearray()
        self._done = False

    def read(self, n: int = -1) -> bytes:
        while not self._done and (n < 0 or len(self._buf) < n):
            piece = self._pieces.get()
            if not piece:
                self._done = True
                break
            self._buf += piece
        data = bytes(self._buf if n < 0 else self._buf[:n])
        del self._buf[:len(data)]
        return data

    def readinto(self, target: bytearray | memoryview) -> int:
        data = self.read(len(target))
        target[:len(data)] = data
        return len(data)
