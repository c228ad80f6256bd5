"""``kubo``: an existing Kubo node as a backend, over either transport.

:class:`KuboBackend` holds every operation once (add, cat, ls, blocks, CARs, pins, the
node's swarm and routing) as Kubo commands, and sends them through a
:class:`~.transport.KuboTransport`: the ``ipfs`` CLI or Kubo's HTTP RPC API. Both speak the
same commands, so both give the same answers (providers with their addresses included).

What comes back is checked, not trusted: blocks against their CIDs, file bytes leaf by
leaf (:class:`~.verified.VerifiedReader`), listings against the verified directory, CARs
block by block, and the CID of an add against the one asked for where it can differ.

The commands and options are Kubo's documented ones (tested against Kubo 0.43):
``block/put`` with ``cid-codec``, provider lookups through ``routing/findprovs``, pins with
names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import httpx
from multiformats import CID

from ipfs_mcp.backends.core import car, dagpb
from ipfs_mcp.backends.core.cids import (
    block_codec,
    cid_of_block,
    cid_str,
    parse_cid,
    verify_block,
)
from ipfs_mcp.backends.core.exporter import Entry, Exporter
from ipfs_mcp.backends.core.hamt import FANOUT as DEFAULT_HAMT_FANOUT
from ipfs_mcp.backends.core.importer import (
    DEFAULT_MAX_LINKS,
    DEFAULT_SHARD_THRESHOLD,
    ImportOptions,
    ImportResult,
)
from ipfs_mcp.backends.core.rooted import OutputTarget
from ipfs_mcp.backends.errors import (
    BackendUnavailable,
    BlockNotFound,
    IntegrityError,
    InvalidCID,
    InvalidInput,
    IpfsMcpError,
    NetworkError,
    NotFound,
)
from ipfs_mcp.backends.network import Network
from ipfs_mcp.backends.remote.kubo.cli_transport import CLITransport
from ipfs_mcp.backends.remote.kubo.http_transport import HTTPTransport
from ipfs_mcp.backends.remote.kubo.names import KuboNames
from ipfs_mcp.backends.remote.kubo.network import KuboNetwork
from ipfs_mcp.backends.remote.kubo.transport import Body, FileBody, KuboTransport
from ipfs_mcp.backends.remote.kubo.upload import LocalTree, added_entries, read_pieces
from ipfs_mcp.backends.remote.kubo.verified import (
    CountingCar,
    IterReader,
    VerifiedReader,
    check_car,
    unixfs_kind,
    verified_listing,
)
from ipfs_mcp.backends.repo.pins import Pin

if TYPE_CHECKING:
    from ipfs_mcp.backends.backend import CacheCounters, Replication
    from ipfs_mcp.backends.repo.repository import Repo

__all__ = ["KuboBackend", "Provider", "check_add_options", "add_flags"]

_DAG_PB = 0x70
_PROVIDER = 4  # a routing query event that carries providers (Kubo's QueryEventType)
_VALUE = 5  # ... one that reports a record sent


@dataclass(frozen=True)
class Provider:
    """A peer that says it provides a CID: its id and the addresses the node knows for it."""

    peer_id: str
    addrs: tuple[str, ...]


def declared_size(cid: CID, block: bytes, *, recursive: bool = True) -> int:
    """What a verified root declares it holds (Kubo's CumulativeSize): the root block plus,
    for a recursive dag-pb root, each link's Tsize."""
    size = len(block)
    if recursive and cid.codec.code == _DAG_PB:
        size += sum(link.tsize for link in dagpb.decode(block).links)
    return size


def check_add_options(options: ImportOptions | None, *, directories: bool = True
                      ) -> ImportOptions:
    """The options, if Kubo's ``add`` can honour them; our CIDs must equal the node's.

    ``directories`` says whether the add makes any directory (a folder, or a file wrapped
    in one). Without one, the HAMT settings cannot change a CID, so a profile that sets
    them (``unixfs-v1-2025``'s block size estimation) is fine for files.

    Raises:
        InvalidInput: an option Kubo's ``add`` has no flag for (it would be ignored, and the
            node would hand back a CID other than the one asked for).
    """
    o = options or ImportOptions()
    hamt_differs = (o.shard_threshold != DEFAULT_SHARD_THRESHOLD
                    or o.hamt_size_estimation != "links")
    if hamt_differs and (directories or o.wrap_with_directory):
        raise InvalidInput("Kubo's HAMT threshold and size estimation are node configuration "
                           "(Import.UnixFSHAMTDirectorySizeThreshold and ...SizeEstimation), "
                           "not add options, and they shape folders; use the hf_cache "
                           "backend for other values, or add files one by one")
    return o


def add_flags(o: ImportOptions) -> dict[str, str | int | bool | None]:
    """Kubo 0.43's ``add`` options for the import options (``max-file-links`` and the
    other layout options only when they differ from Kubo's defaults)."""
    flags: dict[str, str | int | bool | None] = {
        "cid-version": o.cid_version, "raw-leaves": o.leaves_are_raw,
        "chunker": o.chunker_spec}
    if o.trickle:
        flags["trickle"] = True
    if o.max_links != DEFAULT_MAX_LINKS:
        flags["max-file-links"] = o.max_links
    if o.max_directory_links:
        flags["max-directory-links"] = o.max_directory_links
    if o.max_hamt_fanout != DEFAULT_HAMT_FANOUT:
        flags["max-hamt-fanout"] = o.max_hamt_fanout
    return flags


class KuboBackend:
    """A Kubo node through a transport (see the module docstring).

    Args:
        transport: how commands reach the node (:class:`~.cli_transport.CLITransport` or
            :class:`~.http_transport.HTTPTransport`); use :meth:`connect` to probe it first.
    """

    name = "kubo"
    repo: Repo | None = None  # the node keeps its own repo; no embedded one
    counters: CacheCounters | None = None
    replication: Replication | None = None  # one node: no replication factor

    def __init__(self, transport: KuboTransport) -> None:
        self.transport = transport
        self.timeout = transport.timeout
        self.reader = VerifiedReader(self._block_get_raw, self._cat_raw)
        # Where Kubo is the backend, Kubo is the node: the network tools speak for it.
        self.network: Network | None = KuboNetwork(self, transport.label)
        self.names = KuboNames(transport)  # and its names are Kubo's (its keys, its routing)

    @classmethod
    def connect(cls, transport: KuboTransport) -> KuboBackend:
        """A backend whose node answered ``id`` (so the way in, and any token, work).

        Raises:
            BackendUnavailable: nothing answers, or it refused us (with a hint).
        """
        backend = cls(transport)
        try:
            backend.id(timeout=transport.probe_timeout)
        except BackendUnavailable:
            backend.close()
            raise
        except IpfsMcpError as exc:
            backend.close()
            raise BackendUnavailable(transport.not_kubo(exc)) from exc
        return backend

    @classmethod
    def over_http(cls, api: str | None = None, *, client: httpx.Client | None = None,
                  authorization: str | None = None, timeout: float = 60.0) -> KuboBackend:
        """:meth:`connect` over the RPC API at ``api`` (see :class:`HTTPTransport`).

        Raises:
            BackendUnavailable: nothing answers there, or it refused us (with a hint).
        """
        return cls.connect(HTTPTransport(api, client=client, authorization=authorization,
                                         timeout=timeout))

    @classmethod
    def over_cli(cls, command: str | list[str], *, env: Mapping[str, str] | None = None,
                 timeout: float = 60.0) -> KuboBackend:
        """:meth:`connect` through the CLI ``command`` (see :class:`CLITransport`).

        Raises:
            BackendUnavailable: no binary, or the node does not answer.
        """
        return cls.connect(CLITransport.find(command, env=env, timeout=timeout))

    def close(self) -> None:
        self.transport.close()

    def __repr__(self) -> str:
        return f"KuboBackend({self.transport!r})"

    def _cid(self, value: object, cmd: str) -> CID:
        try:
            return parse_cid(str(value))
        except InvalidCID as exc:
            raise IpfsMcpError(f"{self.transport.node}: {cmd} answered {value!r}, not a CID"
                               ) from exc

    # -- node primitives the verified reader builds on ----------------------------------
    def _block_get_raw(self, cid: CID) -> bytes:
        text = cid_str(cid)  # verified by the reader
        return b"".join(self.transport.stream("block/get", text, subject=text, search=True))

    def _cat_raw(self, cid: CID, offset: int, length: int) -> Iterator[bytes]:
        text = cid_str(cid)
        return self.transport.stream("cat", text, options={"offset": offset, "length": length},
                                     subject=text, search=True)

    # -- adding -------------------------------------------------------------------------
    def _add(self, body: Body, options: ImportOptions | None, pin: bool, wrap: bool,
             name: str = "", *, directories: bool = False) -> list[tuple[str, CID]]:
        o = check_add_options(options, directories=directories or wrap)
        answers = self.transport.records("add", body=body, options={
            **add_flags(o), "pin": pin, "wrap-with-directory": wrap,
            "pin-name": name if pin and name else None, "hash": "sha2-256",
            "progress": False})
        added = [(str(a.get("Name", "")), self._cid(a["Hash"], "add")) for a in answers
                 if isinstance(a, dict) and "Hash" in a]
        if not added:
            raise IpfsMcpError(f"{self.transport.node}: add answered without a CID")
        # Kubo sends every entry it added, the root last.
        return added

    def add_bytes(self, data: bytes, *, pin: bool = True, name: str = "",
                  options: ImportOptions | None = None) -> str:
        """Add one file's bytes; the CID is the one ``ipfs add`` gives (and our importer).

        ``wrap_with_directory`` is ignored here, as in the embedded backend: bytes have no
        name to wrap them under.
        """
        added = self._add(FileBody(bytes(data)), options, pin, wrap=False, name=name)
        return cid_str(added[-1][1])

    def add_stream(self, stream: BinaryIO, *, pin: bool = True, name: str = "",
                   options: ImportOptions | None = None,
                   progress: Callable[[int], None] | None = None) -> str:
        """Add one file from a binary stream, sent in 1 MiB pieces as it is read."""
        body = FileBody(read_pieces(stream, progress), name or "data")
        return cid_str(self._add(body, options, pin, wrap=False, name=name)[-1][1])

    def add_path(self, path: str | Path, *, recursive: bool = True, pin: bool = True,
                 name: str = "", options: ImportOptions | None = None,
                 progress: Callable[[int], None] | None = None) -> ImportResult:
        """Add a file or folder as ``ipfs add [-r]`` does (dotfiles skipped unless
        ``hidden``; symlinks kept as symlinks unless ``follow_symlinks``).

        Raises:
            NotFound: no such path.
            InvalidInput: a folder without ``recursive``, or an option Kubo cannot honour
                (``follow_symlinks`` for a folder, on the CLI: it keeps symlinks).
        """
        o = check_add_options(options, directories=Path(path).is_dir())
        tree = LocalTree.open(path, recursive=recursive, options=o, progress=progress)
        added = self._add(tree, o, pin, wrap=o.wrap_with_directory, name=name or tree.name,
                          directories=tree.top.is_dir())
        return ImportResult(added[-1][1], tree.sent, added_entries(tree, added))

    # -- reading (verified) -------------------------------------------------------------
    def cat_stream(self, cid: str, *, offset: int = 0, length: int | None = None
                   ) -> Iterator[bytes]:
        return self.reader.cat(cid, offset, length)

    def cat(self, cid: str, *, offset: int = 0, length: int | None = None) -> bytes:
        return b"".join(self.cat_stream(cid, offset=offset, length=length))

    def stat(self, cid: str) -> Entry:
        return self.reader.stat(cid)

    def get_to_path(self, cid: str, *, output_path: str | Path | OutputTarget,
                    overwrite: bool = False,
                    max_bytes: int | None = None,
                    progress: Callable[[int], None] | None = None) -> Entry:
        """Written by our exporter (path safety, verified bytes), not by ``ipfs get``."""
        target = output_path if isinstance(output_path, OutputTarget) else Path(output_path)
        return self.reader.get_to_path(cid, target, overwrite=overwrite,
                                       max_bytes=max_bytes, progress=progress)

    def exporter(self, *, whole_dag: bool = False) -> Exporter:
        """Verified UnixFS reads over the node's blocks (the node fetches what it lacks;
        ``whole_dag`` changes nothing here)."""
        return self.reader.exporter()

    def ls(self, cid: str) -> list[Entry]:
        """A directory's entries (names and CIDs verified), or the file itself."""
        root = cid_str(self.reader.resolve(cid))
        answers = self.transport.records("ls", root, options={"size": True,
                                                              "resolve-type": True},
                                         subject=root, search=True)
        reported = []
        for answer in answers:
            for obj in answer.get("Objects") or []:
                for link in obj.get("Links") or []:
                    reported.append((link.get("Name", ""), parse_cid(link["Hash"]),
                                     unixfs_kind(link.get("Type")), int(link.get("Size") or 0),
                                     link.get("Target") or None))
        return verified_listing(self.reader, root, reported)

    # -- blocks and CARs ----------------------------------------------------------------
    def block_get(self, cid: str) -> bytes:
        return self.reader.load(parse_cid(cid))

    def block_put(self, data: bytes, *, codec: str = "raw") -> str:
        """Store one block; the CID (v1, sha2-256) is computed here and checked.

        Raises:
            InvalidInput: an unsupported codec.
            IntegrityError: the node stored it under another hash.
        """
        codec_name = block_codec(codec)
        expected = cid_of_block(data, version=1, codec=codec_name)
        answers = self.transport.records("block/put", body=FileBody(bytes(data)),
                                         options={"cid-codec": codec_name,
                                                  "mhtype": "sha2-256"})
        got = self._cid(answers[-1].get("Key") if answers else None, "block/put")
        if bytes(got.digest) != bytes(expected.digest) or got.codec.name != codec_name:
            raise IntegrityError(f"{self.transport.node} stored the block as {got}, but it "
                                 f"is {cid_str(expected)}")
        return cid_str(expected)

    def dag_export(self, cid: str, out: Path | BinaryIO | None = None) -> bytes | None:
        """The DAG as a CAR v1, as the node wrote it, every block verified and the DAG
        checked complete. To ``out`` (a path or stream) or returned as bytes.

        Raises:
            IntegrityError: a block does not match its CID, or the CAR is incomplete.
        """
        root = self.reader.resolve(cid)
        return car.write_export(out, lambda stream: self._export_into(root, stream))

    def _export_into(self, root: CID, out: BinaryIO) -> None:
        text = cid_str(root)
        chunks = self.transport.stream("dag/export", text, subject=text, search=True)
        check_car(root, IterReader(chunks, out))

    def dag_import(self, stream: BinaryIO, *, pin_roots: bool = True) -> car.CarImportReport:
        """Send a CAR to the node, verifying every block on the way (a bad CAR stops the
        upload), and pin its roots.

        Raises:
            IntegrityError: a block does not match its CID.
            BlockNotFound: the node could not pin a root (the CAR did not hold its DAG).
        """
        counted = CountingCar(stream)
        answers = self.transport.records("dag/import", options={"pin-roots": pin_roots},
                                         body=FileBody(counted.pieces(), "file"))
        for answer in answers:
            root = answer.get("Root") or {}
            if root.get("PinErrorMsg"):
                cid = (root.get("Cid") or {}).get("/", "?")
                raise BlockNotFound(cid, f"{self.transport.node} (pinning the CAR's root: "
                                         f"{root['PinErrorMsg']})")
        return car.CarImportReport(tuple(counted.roots), counted.blocks, counted.size)

    # -- pins: the node's, with our names and sizes -------------------------------------
    def pin(self, cid: str, *, recursive: bool = True, name: str = "",
            progress: Callable[[int], None] | None = None) -> Pin:
        """Pin (the node fetches what it lacks, within the timeout). ``progress`` hears
        nothing until the node answers: Kubo's ``pin add`` reports no bytes."""
        target = self.reader.resolve(cid)
        text = cid_str(target)
        self.transport.records("pin/add", text, options={"recursive": recursive,
                                                         "name": name or None},
                               subject=text, search=True)
        size = declared_size(target, self.reader.load(target), recursive=recursive)
        return Pin(target, "recursive" if recursive else "direct", name=name, size=size)

    def held_size(self, cid: CID) -> int | None:
        """The cumulative size ``cid``'s root declares, if the node holds the root: asked
        offline, so a root the node lacks costs one quick answer, never a network search.

        Raises:
            IntegrityError: the node's block does not match ``cid``.
        """
        text = cid_str(cid)
        try:
            block = b"".join(self.transport.stream("block/get", text,
                                                   options={"offline": True}, subject=text))
        except NotFound:
            return None
        return declared_size(cid, verify_block(cid, block).data)

    def unpin(self, cid: str) -> list[str]:
        """Raises: PinNotFound: it was not pinned (directly or recursively)."""
        target = cid_str(self.reader.resolve(cid))
        kinds = [kind for c, kind, _ in self.pin_listing() if c == target]
        self.transport.records("pin/rm", target, options={"recursive": True}, subject=target)
        return kinds or ["recursive"]

    def pins(self) -> list[Pin]:
        out = []
        for cid, kind, name in self.pin_listing():
            if kind in ("recursive", "direct"):
                out.append(Pin(parse_cid(cid), kind, name=name))  # type: ignore[arg-type]
        return out

    def pin_listing(self) -> list[tuple[str, str, str]]:
        """``(cid, type, name)`` of every pin, as the node lists them."""
        out = []
        for answer in self.transport.records("pin/ls", options={"type": "all", "names": True,
                                                                "stream": True}):
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
        args = [cid_str(parse_cid(cid))] if cid is not None else []
        out: dict[str, str] = {}
        for answer in self.transport.records("pin/ls", *args, options={"type": type},
                                             subject=args[0] if args else None):
            keys = answer.get("Keys")
            if isinstance(keys, dict):  # the classic answer: one object for all pins
                for key, info in keys.items():
                    out[cid_str(parse_cid(key))] = str((info or {}).get("Type", ""))
            elif "Cid" in answer:  # the streamed answer (stream=true)
                out[cid_str(parse_cid(answer["Cid"]))] = str(answer.get("Type", ""))
        return out

    # -- the node -----------------------------------------------------------------------
    def id(self, *, timeout: float | None = None) -> dict[str, Any]:
        """The node's ``id``: ``ID``, ``Addresses``, ``AgentVersion``, ``Protocols``..."""
        answers = self.transport.records("id", wait=timeout)
        if not answers or "ID" not in answers[0]:
            raise IpfsMcpError(f"{self.transport.node}: id answered {answers!r}")
        return answers[0]

    def health(self) -> str:
        """One line for the health report; the node is asked now.

        Raises:
            BackendUnavailable: it does not answer.
        """
        info = self.id(timeout=min(self.timeout, 30.0))
        return f"{self.transport.summary}: {info.get('AgentVersion', '?')} peer {info['ID']}"

    def swarm_peers(self) -> list[tuple[str, str]]:
        """Connected peers as ``(peer_id, multiaddr)``."""
        answers = self.transport.records("swarm/peers")
        peers = (answers[0].get("Peers") if answers else None) or []
        return [(str(p.get("Peer", "")), str(p.get("Addr", ""))) for p in peers]

    def swarm_connect(self, multiaddr: str) -> None:
        """Dial ``multiaddr`` from the node.

        Raises:
            NetworkError: the node could not connect (its message says why).
        """
        try:
            self.transport.records("swarm/connect", multiaddr, search=True)
        except BackendUnavailable:
            raise
        except IpfsMcpError as exc:
            raise NetworkError(f"{self.transport.node} could not connect to {multiaddr}: "
                               f"{exc}") from exc

    def provide(self, cid: str, *, recursive: bool = False) -> int:
        """Announce ``cid`` (the node must hold it) through the node's routing; how many
        provider records it reported sending."""
        target = cid_str(parse_cid(cid))
        answers = self.transport.records("routing/provide", target,
                                         options={"recursive": recursive}, subject=target,
                                         search=True)
        return max(1, sum(1 for a in answers if a.get("Type") in (_VALUE, None)))

    def find_providers(self, cid: str, *, limit: int = 20, timeout: float | None = None
                       ) -> list[Provider]:
        """Peers the node's routing says provide ``cid`` (at most ``limit``), with the
        addresses it knows for them."""
        target = cid_str(parse_cid(cid))
        seconds = float(timeout or self.timeout)
        answers = self.transport.records("routing/findprovs", target,
                                         options={"num-providers": limit}, search=seconds)
        found: dict[str, Provider] = {}
        for answer in answers:
            if answer.get("Type") != _PROVIDER:
                continue
            for response in answer.get("Responses") or []:
                pid = str(response.get("ID", ""))
                if pid and pid not in found:
                    found[pid] = Provider(pid, tuple(response.get("Addrs") or ()))
        return list(found.values())[:limit]

    def stats_bw(self) -> dict[str, Any]:
        """``stats/bw``: ``TotalIn``, ``TotalOut``, ``RateIn``, ``RateOut`` (empty where
        the node gives no exact numbers: its CLI prints them rounded)."""
        answers = self.transport.records("stats/bw")
        return answers[0] if answers else {}

    def bitswap_stat(self) -> dict[str, Any]:
        """``bitswap/stat``: ``BlocksReceived``, ``BlocksSent``, ``DataReceived``, ..."""
        answers = self.transport.records("bitswap/stat")
        return answers[0] if answers else {}

    def routing_table_size(self) -> int | None:
        """Peers in the node's DHT routing tables (``stats/dht``), if it reports them."""
        try:
            answers = self.transport.records("stats/dht")
        except IpfsMcpError:
            return None
        return sum(len(bucket.get("Peers") or []) for answer in answers
                   for bucket in answer.get("Buckets") or [])
