"""``ipfs_kit``: an adapter over ``ipfs_kit_py`` (the optional extra ``ipfs-mcp[ipfs-kit]``).

``ipfs_kit_py`` manages a Kubo node (its binary, repo and daemon). This adapter uses it
for that, and only after proving it works:

1. ``ipfs_kit_py`` must import (its import may try to download Kubo binaries; offline
   that fails, and we say so);
2. a real round trip through ``ipfs_kit_py`` itself: it adds a known payload and must
   answer with exactly the CID our importer computes (a real node's CID), then read the
   payload back. ``ipfs_kit_py`` can answer with made-up identifiers or mock results when
   it has no node; the probe refuses those, so the router moves on to ``hf_cache`` and
   says why;
3. the node it manages must have its RPC API running (the ``api`` file in its repo).

Data then goes through our verified Kubo backend over its RPC API
(:class:`~.kubo.backend.KuboBackend`) to that same node, so blocks, files and listings are
checked exactly as for ``kubo``.

What a user needs for it to work: ``pip install 'ipfs-mcp[ipfs-kit]'``; a Kubo binary that
``ipfs_kit_py`` can use (on PATH or installed by it while online); an initialised repo
(``ipfs init``, or ``ipfs_kit_py``'s ``ipfs_path``); and its daemon running.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ipfs_mcp.backends.core.car import CarImportReport
from ipfs_mcp.backends.core.cids import cid_str, parse_cid
from ipfs_mcp.backends.core.exporter import Entry, Exporter
from ipfs_mcp.backends.core.importer import Importer, ImportOptions, ImportResult
from ipfs_mcp.backends.core.rooted import OutputTarget
from ipfs_mcp.backends.errors import BackendUnavailable, InvalidCID
from ipfs_mcp.backends.repo.pins import Pin

if TYPE_CHECKING:
    from ipfs_mcp.backends.backend import CacheCounters, Replication
    from ipfs_mcp.backends.network import Network
    from ipfs_mcp.backends.remote.kubo.backend import KuboBackend
    from ipfs_mcp.backends.repo.repository import Repo

PROBE_PAYLOAD = b"ipfs-mcp backend probe\n"
# What ipfs-kit-py 0.3.0 (the newest release) really does, said wherever it is skipped:
# its import fails (an IndentationError in install_ipfs.py), and the IPFS client it would
# load is a mock returning fixed CIDs and canned bytes. The probe below refuses anything
# that is not a real node's answer; kubo and cluster deliver what it promised.
_HINT = ("ipfs-kit-py 0.3.0 cannot back real storage: its import fails (IndentationError in "
         "install_ipfs.py) and its IPFS client is a mock that returns fixed CIDs and canned "
         "bytes. For what it promised, use IPFS_BACKEND=kubo with IPFS_API pointing at a Kubo "
         "node, or IPFS_BACKEND=cluster with IPFS_CLUSTER_API pointing at an IPFS Cluster")


def _expected_probe_cid() -> str:
    return cid_str(Importer().add_bytes(PROBE_PAYLOAD).cid_obj)


def _cid_in(answer: Any) -> str | None:
    if isinstance(answer, str):
        return answer
    if isinstance(answer, dict):
        for key in ("cid", "Hash", "hash", "Cid"):
            value = answer.get(key)
            if isinstance(value, str):
                return value
    return None


def _bytes_in(answer: Any) -> bytes | None:
    value = answer.get("data", answer.get("content")) if isinstance(answer, dict) else answer
    if isinstance(value, str):
        return value.encode()
    return bytes(value) if isinstance(value, bytes | bytearray) else None


class IpfsKitBackend:
    """The node ``ipfs_kit_py`` manages, reached through our verified RPC client."""

    name = "ipfs_kit"

    def __init__(self, kit: Any, node: KuboBackend) -> None:
        self.kit = kit
        self.node = node  # over the RPC API of the node ipfs_kit_py manages

    @classmethod
    def connect(cls) -> IpfsKitBackend:
        """Import ipfs_kit_py, prove it works with a real round trip, find its node.

        Raises:
            BackendUnavailable: not installed, no working node, or answers that a real node
                would not give.
        """
        try:
            from ipfs_kit_py.ipfs_kit import ipfs_kit  # type: ignore[import-not-found]
        except ImportError as exc:
            raise BackendUnavailable("ipfs_kit_py is not installed (pip install "
                                     f"'ipfs-mcp[ipfs-kit]'); {_HINT}") from exc
        except Exception as exc:  # its import runs set-up code (binary downloads)
            raise BackendUnavailable(f"ipfs_kit_py failed to import: {exc}; {_HINT}") from exc
        try:
            kit = ipfs_kit(metadata={"role": "leecher"}, auto_start_daemons=False)
        except Exception as exc:  # a third-party constructor: anything can come out
            raise BackendUnavailable(f"ipfs_kit_py could not start: {exc}; {_HINT}") from exc
        cls._probe(kit)
        return cls(kit, cls._node_of(kit))

    @staticmethod
    def _probe(kit: Any) -> None:
        expected = _expected_probe_cid()
        with tempfile.TemporaryDirectory(prefix="ipfs-mcp-probe-") as tmp:
            path = Path(tmp) / "probe.txt"
            path.write_bytes(PROBE_PAYLOAD)
            try:
                added = kit.ipfs_add(str(path))
            except Exception as exc:
                raise BackendUnavailable(f"ipfs_kit_py's add failed: {exc}; {_HINT}") from exc
        text = _cid_in(added)
        try:
            got = cid_str(parse_cid(text or ""))
        except InvalidCID:
            got = None
        if got != expected:
            raise BackendUnavailable(
                f"ipfs_kit_py's add answered {str(added)[:200]!r}, not {expected}, the CID a "
                f"real node gives for the probe; refusing its identifiers. {_HINT}")
        try:
            read = kit.ipfs_cat(expected)
        except Exception as exc:
            raise BackendUnavailable(f"ipfs_kit_py's cat failed: {exc}; {_HINT}") from exc
        if _bytes_in(read) != PROBE_PAYLOAD:
            raise BackendUnavailable("ipfs_kit_py's cat did not return the probe's bytes; "
                                     f"{_HINT}")

    @staticmethod
    def _node_of(kit: Any) -> KuboBackend:
        repo = getattr(getattr(kit, "ipfs", None), "ipfs_path", None) or \
            os.environ.get("IPFS_PATH") or "~/.ipfs"
        api_file = Path(os.path.expanduser(str(repo))) / "api"
        try:
            api = api_file.read_text().strip()
        except OSError as exc:
            raise BackendUnavailable(f"ipfs_kit_py works, but its node's RPC API is not "
                                     f"running ({api_file} is missing): start its daemon "
                                     "(`ipfs daemon`)") from exc
        # Kubo's HTTP client loads only once ipfs_kit_py works: the router asks this
        # backend first on every command, and most machines do not have it.
        from ipfs_mcp.backends.remote.kubo.backend import KuboBackend

        return KuboBackend.over_http(api)

    def health(self) -> str:
        return f"ipfs_kit_py over {self.node.health()}"

    # -- the Backend protocol, on the node ipfs_kit_py manages --------------------------
    @property
    def repo(self) -> Repo | None:
        return None

    @property
    def counters(self) -> CacheCounters | None:
        return None

    @property
    def replication(self) -> Replication | None:
        return None

    @property
    def network(self) -> Network | None:
        return self.node.network  # the Kubo node ipfs_kit_py manages is the node

    def add_bytes(self, data: bytes, *, pin: bool = True, name: str = "",
                  options: ImportOptions | None = None) -> str:
        return self.node.add_bytes(data, pin=pin, name=name, options=options)

    def add_stream(self, stream: BinaryIO, *, pin: bool = True, name: str = "",
                   options: ImportOptions | None = None,
                   progress: Callable[[int], None] | None = None) -> str:
        return self.node.add_stream(stream, pin=pin, name=name, options=options,
                                    progress=progress)

    def add_path(self, path: str | Path, *, recursive: bool = True, pin: bool = True,
                 name: str = "", options: ImportOptions | None = None,
                 progress: Callable[[int], None] | None = None) -> ImportResult:
        return self.node.add_path(path, recursive=recursive, pin=pin, name=name,
                                  options=options, progress=progress)

    def cat(self, cid: str, *, offset: int = 0, length: int | None = None) -> bytes:
        return self.node.cat(cid, offset=offset, length=length)

    def cat_stream(self, cid: str, *, offset: int = 0, length: int | None = None
                   ) -> Iterator[bytes]:
        return self.node.cat_stream(cid, offset=offset, length=length)

    def stat(self, cid: str) -> Entry:
        return self.node.stat(cid)

    def get_to_path(self, cid: str, *, output_path: str | Path | OutputTarget,
                    overwrite: bool = False,
                    max_bytes: int | None = None,
                    progress: Callable[[int], None] | None = None) -> Entry:
        return self.node.get_to_path(cid, output_path=output_path, overwrite=overwrite,
                                     max_bytes=max_bytes, progress=progress)

    def exporter(self, *, whole_dag: bool = False) -> Exporter:
        return self.node.exporter(whole_dag=whole_dag)

    def ls(self, cid: str) -> list[Entry]:
        return self.node.ls(cid)

    def pin(self, cid: str, *, recursive: bool = True, name: str = "",
            progress: Callable[[int], None] | None = None) -> Pin:
        return self.node.pin(cid, recursive=recursive, name=name, progress=progress)

    def unpin(self, cid: str) -> list[str]:
        return self.node.unpin(cid)

    def pins(self) -> list[Pin]:
        return self.node.pins()

    def block_put(self, data: bytes, *, codec: str = "raw") -> str:
        return self.node.block_put(data, codec=codec)

    def block_get(self, cid: str) -> bytes:
        return self.node.block_get(cid)

    def dag_export(self, cid: str, out: Path | BinaryIO | None = None) -> bytes | None:
        return self.node.dag_export(cid, out)

    def dag_import(self, stream: BinaryIO, *, pin_roots: bool = True) -> CarImportReport:
        return self.node.dag_import(stream, pin_roots=pin_roots)

    def close(self) -> None:
        self.node.close()
