"""``kubo`` over HTTP: a client for Kubo's RPC API (``/api/v0``), with httpx.

Selected by ``IPFS_BACKEND=kubo`` with ``IPFS_API`` (a URL such as
``http://127.0.0.1:5001`` or an API multiaddr such as ``/ip4/127.0.0.1/tcp/5001``). An
``Authorization`` header (``IPFS_API_AUTHORIZATION``) is sent on every request, for Kubo's
``API.Authorizations``.

What comes back is checked, not trusted: blocks against their CIDs, file bytes leaf by
leaf (:class:`.kubo.VerifiedReader`), listings against the verified directory, CARs
block by block. Uploads stream (files are read in 1 MiB pieces as they are sent).

Bounded and honest failure:

* every request has a timeout (``IPFS_API_TIMEOUT``); reads that may search the network
  also pass Kubo's own ``timeout`` option, so the daemon gives up at the same bound;
* a connection that cannot be opened is retried once (nothing was sent, so it is safe);
  requests are never replayed after the daemon may have acted on them;
* no daemon is :class:`BackendUnavailable` with the URL tried and a hint; a 401/403 says
  to check the token; a missing block is :class:`BlockNotFound`.

The requests are Kubo's documented ones (tested against Kubo 0.43): ``block/put`` with
``cid-codec``, provider lookups through ``routing/findprovs``, pins with names.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlsplit

import httpx
from multiformats import CID

from ipfs_mcp.backends.core import car
from ipfs_mcp.backends.core.cids import block_codec, cid_of_block, cid_str, parse_cid
from ipfs_mcp.backends.core.exporter import Entry
from ipfs_mcp.backends.core.importer import ImportOptions, ImportResult
from ipfs_mcp.backends.errors import (
    BackendUnavailable,
    BlockNotFound,
    IntegrityError,
    InvalidInput,
    IpfsMcpError,
    NetworkError,
    NotFound,
    PinNotFound,
    Timeout,
)
from ipfs_mcp.backends.http_answers import error_message, http_failure
from ipfs_mcp.backends.network import Network
from ipfs_mcp.backends.remote.kubo.common import (
    CountingCar,
    IterReader,
    Provider,
    VerifiedReader,
    VerifiedReads,
    add_flags,
    added_entries,
    check_add_options,
    check_car,
    multipart_boundary,
    unixfs_kind,
    verified_listing,
)
from ipfs_mcp.backends.remote.kubo.network import KuboNetwork

if TYPE_CHECKING:
    from ipfs_mcp.backends.backend import CacheCounters, Replication
    from ipfs_mcp.backends.repo.repository import Repo

__all__ = ["KuboRPCBackend", "api_url_from"]

DEFAULT_API = "http://127.0.0.1:5001"
_PIECE = 1 << 20  # upload and download granularity
_PROBE_TIMEOUT = 5.0
_MARGIN = 5.0
_NOT_FOUND_HINTS = ("not found", "could not find", "no link named", "no such file",
                    "does not exist")
# Kubo's own --timeout ran out: the daemon did not find it in time, which is not "absent".
_TIMEOUT_HINTS = ("context deadline exceeded", "request timed out", "timed out")


def api_url_from(value: str | None) -> str:
    """``IPFS_API`` as a base URL: a URL is kept, an API multiaddr is translated.

    ``/ip4/127.0.0.1/tcp/5001`` -> ``http://127.0.0.1:5001``; ``/ip6/::1/tcp/5001``,
    ``/dns4/host/tcp/5001`` and a trailing ``/http`` or ``/https`` are understood too.

    Raises:
        InvalidInput: neither a http(s) URL nor a TCP multiaddr.
    """
    text = (value or DEFAULT_API).strip().rstrip("/")
    if text.startswith("/"):
        parts = text.strip("/").split("/")
        if len(parts) < 4 or parts[0] not in ("ip4", "ip6", "dns", "dns4", "dns6") \
                or parts[2] != "tcp" or not parts[3].isdigit():
            raise InvalidInput(f"IPFS_API multiaddr {value!r} is not /ip4|ip6|dns/HOST/tcp/PORT")
        rest = parts[4:]
        if rest not in ([], ["http"], ["https"]):
            raise InvalidInput(f"IPFS_API multiaddr {value!r}: only /http or /https may follow "
                               "the port")
        scheme = rest[0] if rest else "http"
        host = f"[{parts[1]}]" if parts[0] == "ip6" else parts[1]
        return f"{scheme}://{host}:{parts[3]}"
    split = urlsplit(text)
    if split.scheme not in ("http", "https") or not split.netloc:
        raise InvalidInput(f"IPFS_API {value!r} is not an http(s) URL or an API multiaddr")
    return text.removesuffix("/api/v0")


def _duration(seconds: float) -> str:
    return f"{seconds:.3f}s"


class KuboRPCBackend(VerifiedReads):
    """A Kubo daemon through its HTTP RPC API (see the module docstring).

    Args:
        api: base URL or API multiaddr of the daemon.
        client: the ``httpx.Client`` to use (tests and embedders pass their own); by
            default one is made with the timeout and a single connect retry.
        authorization: the ``Authorization`` header value, if the API requires one.
        timeout: seconds any one request may take.
    """

    name = "kubo"
    repo: Repo | None = None  # the daemon keeps its own repo; no embedded one
    counters: CacheCounters | None = None
    replication: Replication | None = None  # one node: no replication factor

    def __init__(self, api: str | None = None, *, client: httpx.Client | None = None,
                 authorization: str | None = None, timeout: float = 60.0) -> None:
        self.url = api_url_from(api)
        self.timeout = timeout
        self._headers = {"Authorization": authorization} if authorization else {}
        self._owns_client = client is None
        # Reads pass `timeout` to the daemon as well; our own bound is a little longer so
        # that the daemon's "not found" arrives before we would have to cut the request.
        self.client = client or httpx.Client(
            timeout=httpx.Timeout(timeout + _MARGIN, connect=min(timeout, 10.0)),
            transport=httpx.HTTPTransport(retries=1))
        self.reader = VerifiedReader(self._block_get_raw, self._cat_raw)
        # Where Kubo is the backend, Kubo is the node: the network tools speak for it.
        self.network: Network | None = KuboNetwork(self, f"kubo at {self.url}")

    @classmethod
    def connect(cls, api: str | None = None, *, client: httpx.Client | None = None,
                authorization: str | None = None, timeout: float = 60.0) -> KuboRPCBackend:
        """A backend whose daemon answered ``id`` (so the URL and the token work).

        Raises:
            BackendUnavailable: nothing answers there, or it refused us (with a hint).
        """
        backend = cls(api, client=client, authorization=authorization, timeout=timeout)
        try:
            backend.id(timeout=min(timeout, _PROBE_TIMEOUT))
        except BackendUnavailable:
            backend.close()
            raise
        except IpfsMcpError as exc:
            backend.close()
            raise BackendUnavailable(f"{backend.url} does not behave like a Kubo RPC API: "
                                     f"{exc}") from exc
        return backend

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def __repr__(self) -> str:
        return f"KuboRPCBackend({self.url!r})"  # never the Authorization header

    # -- transport ----------------------------------------------------------------------
    def _endpoint(self, path: str) -> str:
        return f"{self.url}/api/v0/{path}"

    def _unavailable(self, what: str, exc: httpx.HTTPError) -> IpfsMcpError:
        return http_failure(exc, service=f"the Kubo RPC API at {self.url}", what=what,
                            timeout=self.timeout + _MARGIN,
                            start_hint="start the daemon (`ipfs daemon`) or point IPFS_API "
                                       "at its API address",
                            broken_hint="is the daemon still running?")

    def _error(self, what: str, response: httpx.Response, subject: str | None) -> IpfsMcpError:
        """Kubo's error answer (``{"Message": ..., "Code": ..., "Type": "error"}``) mapped."""
        status = response.status_code
        message = error_message(response, "Message")
        if status in (401, 403):
            return BackendUnavailable(
                f"Kubo at {self.url} refused {what} ({status} {message.strip()}); check "
                "IPFS_API_AUTHORIZATION against the daemon's API.Authorizations")
        if status in (404, 405):
            return BackendUnavailable(f"Kubo at {self.url} has no {what} endpoint ({status}); "
                                      "the daemon is too old or not Kubo")
        lowered = message.lower()
        if "not pinned" in lowered:
            return PinNotFound(f"{subject} is not pinned on Kubo at {self.url}")
        if any(hint in lowered for hint in _TIMEOUT_HINTS):
            return Timeout(f"Kubo at {self.url} did not finish {what}"
                           f"{' of ' + subject if subject else ''} within {self.timeout:g} s "
                           f"(IPFS_API_TIMEOUT): {message.strip()}")
        if subject is not None and any(hint in lowered for hint in _NOT_FOUND_HINTS):
            if "no link named" in lowered or "no such file" in lowered:
                return NotFound(f"{subject}: {message}")
            return BlockNotFound(subject, f"Kubo at {self.url} ({message})")
        return IpfsMcpError(f"Kubo at {self.url}: {what} failed ({status}): {message}")

    @contextmanager
    def _stream(self, path: str, params: dict[str, Any] | None = None, *,
                content: Iterator[bytes] | bytes | None = None, boundary: str | None = None,
                subject: str | None = None, timeout: float | None = None
                ) -> Iterator[httpx.Response]:
        """POST to ``/api/v0/<path>`` and yield the streaming response (200 only)."""
        headers = dict(self._headers)
        if boundary is not None:
            headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        query = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        request_timeout = httpx.USE_CLIENT_DEFAULT if timeout is None else timeout
        try:
            with self.client.stream("POST", self._endpoint(path), params=query, content=content,
                                    headers=headers, timeout=request_timeout) as response:
                if response.status_code != 200:
                    raise self._error(path, response, subject)
                yield response
        except httpx.HTTPError as exc:  # connect, timeout and protocol errors
            raise self._unavailable(path, exc) from exc

    def _json(self, path: str, params: dict[str, Any] | None = None, *,
              subject: str | None = None, timeout: float | None = None,
              content: Iterator[bytes] | bytes | None = None, boundary: str | None = None
              ) -> list[dict[str, Any]]:
        """The answer's JSON objects (Kubo streams some answers as one object per line)."""
        with self._stream(path, params, subject=subject, timeout=timeout, content=content,
                          boundary=boundary) as response:
            out = []
            for line in response.iter_lines():
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except ValueError as exc:
                    raise IpfsMcpError(f"Kubo at {self.url}: {path} sent a line that is not "
                                       f"JSON: {line[:200]!r}") from exc
                if isinstance(value, dict) and value.get("Type") == "error" \
                        and "Message" in value:
                    # An error after a 200: Kubo's streaming commands report failures in-band.
                    raise IpfsMcpError(f"Kubo at {self.url}: {path} failed: {value['Message']}")
                out.append(value)
            return out

    def _read_params(self, **params: Any) -> dict[str, Any]:
        # Kubo's own timeout (a global option): the daemon stops searching at our bound.
        return {**params, "timeout": _duration(self.timeout)}

    # -- node primitives the verified reader builds on ----------------------------------
    def _block_get_raw(self, cid: CID) -> bytes:
        # Errors while reading the body surface inside _stream, which maps them.
        with self._stream("block/get", self._read_params(arg=cid_str(cid)),
                          subject=cid_str(cid)) as response:
            return response.read()

    def _cat_raw(self, cid: CID, offset: int, length: int) -> Iterator[bytes]:
        with self._stream("cat", self._read_params(arg=cid_str(cid), offset=offset,
                                                   length=length),
                          subject=cid_str(cid)) as response:
            yield from response.iter_bytes(_PIECE)

    # -- adding -------------------------------------------------------------------------
    def _add(self, parts: Iterator[_Part], options: ImportOptions | None, pin: bool,
             wrap: bool, name: str = "", *, directories: bool = False
             ) -> list[tuple[str, CID]]:
        o = check_add_options(options, directories=directories or wrap)
        params = {**add_flags(o), "pin": pin, "wrap-with-directory": wrap,
                  "pin-name": name if pin and name else None,
                  "hash": "sha2-256", "progress": False}
        boundary = multipart_boundary()
        answers = self._json("add", params, content=_multipart(parts, boundary),
                             boundary=boundary)
        added = [(str(a.get("Name", "")), parse_cid(a["Hash"])) for a in answers
                 if isinstance(a, dict) and "Hash" in a]
        if not added:
            raise IpfsMcpError(f"Kubo at {self.url}: add answered without a CID")
        # Kubo sends every entry it added, the root last.
        return added

    def add_bytes(self, data: bytes, *, pin: bool = True, name: str = "",
                  options: ImportOptions | None = None) -> str:
        """Add one file's bytes; the CID is the one ``ipfs add`` gives (and our importer).

        ``wrap_with_directory`` is ignored here, as in the embedded backend: bytes have no
        name to wrap them under.
        """
        added = self._add(iter([_Part("data", "file", iter([bytes(data)]))]), options, pin,
                          wrap=False, name=name)
        return cid_str(added[-1][1])

    def add_stream(self, stream: BinaryIO, *, pin: bool = True, name: str = "",
                   options: ImportOptions | None = None,
                   progress: Callable[[int], None] | None = None) -> str:
        """Add one file from a binary stream, sent in 1 MiB pieces as it is read."""
        added = self._add(iter([_Part(name or "data", "file", _pieces(stream, progress))]),
                          options, pin, wrap=False, name=name)
        return cid_str(added[-1][1])

    def add_path(self, path: str | Path, *, recursive: bool = True, pin: bool = True,
                 name: str = "", options: ImportOptions | None = None,
                 progress: Callable[[int], None] | None = None) -> ImportResult:
        """Add a file or folder as ``ipfs add [-r]`` does (dotfiles skipped unless
        ``hidden``; symlinks kept as symlinks unless ``follow_symlinks``).

        Raises:
            NotFound: no such path.
            InvalidInput: a folder without ``recursive``, or an option Kubo cannot honour.
        """
        top = Path(path)
        o = check_add_options(options, directories=top.is_dir())
        if not top.exists():
            raise NotFound(f"no such file or folder: {top}")
        if top.is_dir() and not recursive:
            raise InvalidInput(f"{top} is a folder; add it recursively (-r)")
        label = top.resolve().name if top.name in ("", ".", "..") else top.name
        sizes: list[int] = []
        added = self._add(_walk_parts(top, label, o, sizes, progress), o, pin,
                          wrap=o.wrap_with_directory, name=name or label,
                          directories=top.is_dir())
        entries = added_entries(top, label, added)
        return ImportResult(added[-1][1], sum(sizes), entries)

    # -- reading (verified) -------------------------------------------------------------
    def ls(self, cid: str) -> list[Entry]:
        """A directory's entries (names and CIDs verified), or the file itself."""
        root = self.reader.resolve(cid)
        answers = self._json("ls", self._read_params(arg=cid_str(root), size=True,
                                                    **{"resolve-type": True}),
                             subject=cid_str(root))
        reported = []
        for answer in answers:
            for obj in answer.get("Objects") or []:
                for link in obj.get("Links") or []:
                    reported.append((link.get("Name", ""), parse_cid(link["Hash"]),
                                     unixfs_kind(link.get("Type")), int(link.get("Size") or 0),
                                     link.get("Target") or None))
        return verified_listing(self.reader, cid_str(root), reported)

    def block_put(self, data: bytes, *, codec: str = "raw") -> str:
        """Store one block; the CID (v1, sha2-256) is computed here and checked.

        Raises:
            InvalidInput: an unsupported codec.
            IntegrityError: the daemon stored it under another hash.
        """
        codec_name = block_codec(codec)
        expected = cid_of_block(data, version=1, codec=codec_name)
        got = self._block_put(data, {"cid-codec": codec_name, "mhtype": "sha2-256"})
        if bytes(got.digest) != bytes(expected.digest) or got.codec.name != codec_name:
            raise IntegrityError(f"Kubo at {self.url} stored the block as {got}, but it is "
                                 f"{cid_str(expected)}")
        return cid_str(expected)

    def _block_put(self, data: bytes, params: dict[str, Any]) -> CID:
        boundary = multipart_boundary()
        answers = self._json("block/put", params, boundary=boundary,
                             content=_multipart(iter([_Part("data", "file", iter([data]))]),
                                                boundary))
        try:
            return parse_cid(answers[-1]["Key"])
        except (IndexError, KeyError, TypeError) as exc:
            raise IpfsMcpError(f"Kubo at {self.url}: block/put answered {answers!r}") from exc

    # -- pins ---------------------------------------------------------------------------
    def _pin_add(self, cid: CID, *, recursive: bool, name: str) -> None:
        target = cid_str(cid)
        self._json("pin/add", self._read_params(arg=target, recursive=recursive,
                                                name=name or None), subject=target)

    def _pin_rm(self, cid: CID) -> None:
        target = cid_str(cid)
        self._json("pin/rm", {"arg": target, "recursive": True}, subject=target)

    def pin_listing(self) -> list[tuple[str, str, str]]:
        out = []
        for answer in self._json("pin/ls", {"type": "all", "names": True, "stream": True}):
            if "Cid" in answer:
                out.append((cid_str(parse_cid(answer["Cid"])), str(answer.get("Type", "")),
                            str(answer.get("Name") or "")))
            for key, info in (answer.get("Keys") or {}).items():  # the classic answer
                out.append((cid_str(parse_cid(key)), str((info or {}).get("Type", "")),
                            str((info or {}).get("Name") or "")))
        return out

    def pin_types(self, cid: str | None = None, *, type: str = "recursive") -> dict[str, str]:
        """Pinned CIDs with their pin type (``recursive``, ``direct``, ``indirect``, ``all``).

        Raises:
            PinNotFound: ``cid`` was given and is not pinned.
        """
        params: dict[str, Any] = {"type": type}
        if cid is not None:
            params["arg"] = cid_str(parse_cid(cid))
        out: dict[str, str] = {}
        for answer in self._json("pin/ls", params, subject=params.get("arg")):
            keys = answer.get("Keys")
            if isinstance(keys, dict):  # the classic answer: one object for all pins
                for key, info in keys.items():
                    out[cid_str(parse_cid(key))] = str((info or {}).get("Type", ""))
            elif "Cid" in answer:  # the streamed answer (stream=true)
                out[cid_str(parse_cid(answer["Cid"]))] = str(answer.get("Type", ""))
        return out

    # -- CAR ----------------------------------------------------------------------------
    def _export_into(self, root: CID, out: BinaryIO) -> None:
        with self._stream("dag/export", self._read_params(arg=cid_str(root)),
                          subject=cid_str(root)) as response:
            check_car(root, IterReader(response.iter_bytes(_PIECE), out))

    def dag_import(self, stream: BinaryIO, *, pin_roots: bool = True) -> car.CarImportReport:
        """Send a CAR to the daemon, verifying every block on the way (a bad CAR stops the
        upload), and pin its roots.

        Raises:
            IntegrityError: a block does not match its CID.
            BlockNotFound: the daemon could not pin a root (the CAR did not hold its DAG).
        """
        counted = CountingCar(stream)
        boundary = multipart_boundary()
        answers = self._json("dag/import", {"pin-roots": pin_roots}, boundary=boundary,
                             content=_multipart(iter([_Part("file", "file", counted.pieces())]),
                                                boundary))
        for answer in answers:
            root = answer.get("Root") or {}
            if root.get("PinErrorMsg"):
                cid = (root.get("Cid") or {}).get("/", "?")
                raise BlockNotFound(cid, f"Kubo at {self.url} (pinning the CAR's root: "
                                         f"{root['PinErrorMsg']})")
        return car.CarImportReport(tuple(counted.roots), counted.blocks, counted.size)

    # -- node ---------------------------------------------------------------------------
    def id(self, *, timeout: float | None = None) -> dict[str, Any]:
        """The daemon's ``id``: ``ID``, ``Addresses``, ``AgentVersion``, ``Protocols``..."""
        answers = self._json("id", timeout=timeout)
        if not answers or "ID" not in answers[0]:
            raise IpfsMcpError(f"Kubo at {self.url}: id answered {answers!r}")
        return answers[0]

    def health(self) -> str:
        """One line for the health report; the daemon is asked now.

        Raises:
            BackendUnavailable: it does not answer.
        """
        info = self.id(timeout=min(self.timeout, 30.0))
        return (f"RPC API at {self.url}: {info.get('AgentVersion', '?')} "
                f"peer {info['ID']}")

    def swarm_peers(self) -> list[tuple[str, str]]:
        """Connected peers as ``(peer_id, multiaddr)``."""
        answers = self._json("swarm/peers")
        peers = (answers[0].get("Peers") if answers else None) or []
        return [(str(p.get("Peer", "")), str(p.get("Addr", ""))) for p in peers]

    def swarm_connect(self, multiaddr: str) -> None:
        """Dial ``multiaddr`` from the daemon.

        Raises:
            NetworkError: the daemon could not connect (its message says why).
        """
        try:
            self._json("swarm/connect", {"arg": multiaddr, "timeout": _duration(self.timeout)})
        except BackendUnavailable:
            raise
        except IpfsMcpError as exc:
            raise NetworkError(f"Kubo at {self.url} could not connect to {multiaddr}: "
                               f"{exc}") from exc

    def provide(self, cid: str, *, recursive: bool = False) -> int:
        """Announce ``cid`` (the daemon must hold it) through the daemon's routing; how many
        provider records it reported sending."""
        target = cid_str(parse_cid(cid))
        answers = self._json("routing/provide", {"arg": target, "recursive": recursive,
                                                 "timeout": _duration(self.timeout)},
                             subject=target, timeout=self.timeout + _MARGIN)
        return max(1, sum(1 for a in answers if a.get("Type") in (5, None)))

    def stats_bw(self) -> dict[str, Any]:
        """``stats/bw``: ``TotalIn``, ``TotalOut``, ``RateIn``, ``RateOut``."""
        answers = self._json("stats/bw")
        return answers[0] if answers else {}

    def bitswap_stat(self) -> dict[str, Any]:
        """``bitswap/stat``: ``BlocksReceived``, ``BlocksSent``, ``DataReceived``, ..."""
        answers = self._json("bitswap/stat")
        return answers[0] if answers else {}

    def routing_table_size(self) -> int | None:
        """Peers in the daemon's DHT routing tables (``stats/dht``), if it reports them."""
        try:
            answers = self._json("stats/dht")
        except IpfsMcpError:
            return None
        total = 0
        for answer in answers:
            for bucket in answer.get("Buckets") or []:
                total += len(bucket.get("Peers") or [])
        return total

    def find_providers(self, cid: str, *, limit: int = 20, timeout: float | None = None
                       ) -> list[Provider]:
        """Peers the daemon's routing says provide ``cid`` (at most ``limit``)."""
        target = cid_str(parse_cid(cid))
        seconds = timeout or self.timeout
        params = {"arg": target, "num-providers": limit, "timeout": _duration(seconds)}
        answers = self._json("routing/findprovs", params, timeout=seconds + 5)
        found: dict[str, Provider] = {}
        for answer in answers:
            if answer.get("Type") != 4:  # 4 = Provider in Kubo's routing query events
                continue
            for response in answer.get("Responses") or []:
                pid = str(response.get("ID", ""))
                if pid and pid not in found:
                    found[pid] = Provider(pid, tuple(response.get("Addrs") or ()))
        return list(found.values())[:limit]


# -- helpers: parameters, multipart, CAR checking ----------------------------------------
def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class _Part:
    path: str  # the entry's path inside the upload
    kind: str  # "file" | "directory" | "symlink"
    body: Iterator[bytes]


_CONTENT_TYPES = {"file": "application/octet-stream", "directory": "application/x-directory",
                  "symlink": "application/symlink"}


def _encode_name(path: str) -> str:
    # Kubo URL-unescapes the part's filename. Escaping every byte keeps quotes, ';' and
    # non-ASCII out of the header's own syntax; Kubo gets the path back, '/' and all.
    return "".join(f"%{b:02X}" for b in path.encode())


def _multipart(parts: Iterator[_Part], boundary: str) -> Iterator[bytes]:
    """A multipart/form-data body produced as it is sent (one file open at a time)."""
    for part in parts:
        yield (f"--{boundary}\r\n"
               f'Content-Disposition: form-data; name="file"; '
               f'filename="{_encode_name(part.path)}"\r\n'
               f"Content-Type: {_CONTENT_TYPES[part.kind]}\r\n\r\n").encode()
        yield from part.body
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def _pieces(stream: BinaryIO, progress: Callable[[int], None] | None = None
            ) -> Iterator[bytes]:
    while piece := stream.read(_PIECE):
        if progress is not None:
            progress(len(piece))  # may raise OperationCancelled: the upload stops here
        yield piece


def _file_body(path: Path, sizes: list[int],
               progress: Callable[[int], None] | None = None) -> Iterator[bytes]:
    # Opened only when the upload reaches it, so a folder of many files holds one open.
    with open(path, "rb") as stream:
        total = 0
        for piece in _pieces(stream, progress):  # type: ignore[arg-type]
            total += len(piece)
            yield piece
        sizes.append(total)


def _walk_parts(top: Path, name: str, o: ImportOptions, sizes: list[int],
                progress: Callable[[int], None] | None = None) -> Iterator[_Part]:
    """The parts of ``ipfs add -r``: each folder before what it holds, names sorted, dotfiles
    skipped unless ``hidden``, symlinks sent as symlinks unless ``follow_symlinks``."""
    if not top.is_dir():  # a file, or a symlink named on the command line (followed)
        yield _Part(name, "file", _file_body(top, sizes, progress))
        return
    following: set[Path] = set()

    def walk(folder: Path, rel: str) -> Iterator[_Part]:
        yield _Part(rel, "directory", iter(()))
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.name.startswith(".") and not o.hidden:
                continue
            child = f"{rel}/{entry.name}"
            if entry.is_symlink() and not o.follow_symlinks:
                yield _Part(child, "symlink", iter([os.fsencode(os.readlink(entry.path))]))
            elif entry.is_dir():
                target = Path(entry.path).resolve()
                if entry.is_symlink():  # followed: guard against cycles
                    if target in following or folder.resolve().is_relative_to(target):
                        raise InvalidInput(f"symlink cycle at {entry.path}")
                    following.add(target)
                yield from walk(target if entry.is_symlink() else Path(entry.path), child)
            elif stat.S_ISREG(os.stat(entry.path).st_mode):
                yield _Part(child, "file", _file_body(Path(entry.path), sizes, progress))
            else:
                raise InvalidInput(f"cannot add {entry.path}: not a file, folder or symlink")

    yield from walk(top.resolve() if top.is_symlink() else top, name)
