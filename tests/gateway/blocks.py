"""Hand-made blocks for gateway tests: dag-cbor and dag-json values, and UnixFS nodes a
normal importer would never write (names that climb out, sizes that lie)."""

from __future__ import annotations

import hashlib

from multiformats import CID

from ipfs_mcp.backends.core import dagpb, unixfs
from ipfs_mcp.backends.core.dagpb import sha256_cid
from ipfs_mcp.backends.core.unixfs import NodeType
from ipfs_mcp.backends.hf_cache import HFCacheBackend

DAG_PB, RAW, DAG_CBOR, DAG_JSON = 0x70, 0x55, 0x71, 0x0129


def put(backend: HFCacheBackend, codec: int, data: bytes) -> CID:
    """Store ``data`` as a CIDv1 block of ``codec``; returns its CID."""
    cid = sha256_cid(1, codec, hashlib.sha256(data).digest())
    backend.repo.blocks.put(cid, data)
    return cid


def put_folder(backend: HFCacheBackend, entries: dict[str, CID]) -> CID:
    """A plain UnixFS folder linking ``entries`` under exactly these names, whatever they are."""
    links = tuple(dagpb.PBLink(cid, name, 0) for name, cid in entries.items())
    data = unixfs.encode(unixfs.UnixFSData(NodeType.DIRECTORY))
    return put(backend, DAG_PB, dagpb.encode(dagpb.PBNode(links, data)))


def put_file(backend: HFCacheBackend, leaves: list[bytes], declared: int | None = None) -> CID:
    """A UnixFS file over raw leaves; ``declared`` (default: the true size) is its filesize."""
    links = tuple(dagpb.PBLink(put(backend, RAW, leaf), "", len(leaf)) for leaf in leaves)
    size = sum(len(leaf) for leaf in leaves)
    data = unixfs.encode(unixfs.UnixFSData(
        NodeType.FILE, filesize=size if declared is None else declared,
        blocksizes=tuple(len(leaf) for leaf in leaves)))
    return put(backend, DAG_PB, dagpb.encode(dagpb.PBNode(links, data)))
