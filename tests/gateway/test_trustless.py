"""Trustless gateway over real HTTP: raw blocks, CAR streams (scopes, byte ranges, dups,
order), headers and status codes, a truncated CAR when a child block is missing."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
from multiformats import CID

from ipfs_mcp.backends.core import dagpb, unixfs
from ipfs_mcp.backends.core.car import read_car
from ipfs_mcp.backends.core.cids import cid_str, parse_cid
from ipfs_mcp.backends.core.dag import walk
from ipfs_mcp.backends.core.importer import ImportOptions
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.server.gateway import Gateway

from .conftest import cut_short, serving

pytestmark = pytest.mark.anyio

CAR_DFS_N = "application/vnd.ipld.car; version=1; order=dfs; dups=n"
IMMUTABLE = "public, max-age=29030400, immutable"
# 1 KiB chunks: a 5000-byte file is a root and five leaves, small enough to reason about.
SMALL_CHUNKS = ImportOptions(cid_version=1, chunk_size=1024)
# Distinct chunks (repeating bytes would make identical leaves, deduplicated in a CAR).
DATA = random.Random(11).randbytes(5120)


def car_of(body: bytes) -> tuple[list[CID], list[tuple[CID, bytes]]]:
    """Parse a CAR body; every block is verified against its CID by read_car."""
    roots, blocks = read_car(io.BytesIO(body))
    return roots, list(blocks)


def tree(backend: HFCacheBackend, tmp_path: Path, files: dict[str, bytes],
         options: ImportOptions = SMALL_CHUNKS) -> CID:
    folder = tmp_path / "tree"
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return backend.add_path(folder, options=options).root


def leaves_of(backend: HFCacheBackend, cid: CID) -> list[CID]:
    return [link.cid for link in dagpb.decode(backend.repo.blocks.get(cid)).links]


async def test_probe_identity_cid_is_an_empty_raw_block(gateway: Gateway) -> None:
    async with serving(gateway) as http:
        response = await http.get("/ipfs/bafkqaaa?format=raw")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-type"] == "application/vnd.ipld.raw"
    assert response.headers["content-length"] == "0"


async def test_raw_block_headers_and_bytes(gateway: Gateway, backend: HFCacheBackend) -> None:
    cid = backend.block_put(b"a raw block of bytes")
    async with serving(gateway) as http:
        by_query = await http.get(f"/ipfs/{cid}?format=raw")
        by_accept = await http.get(f"/ipfs/{cid}",
                                   headers={"accept": "application/vnd.ipld.raw"})
        head = await http.head(f"/ipfs/{cid}?format=raw")
        named = await http.get(f"/ipfs/{cid}?format=raw&filename=block.bin")
    for response in (by_query, by_accept):
        assert response.status_code == 200
        assert response.content == b"a raw block of bytes"
        h = response.headers
        assert h["content-type"] == "application/vnd.ipld.raw"
        assert h["content-length"] == str(len(b"a raw block of bytes"))
        assert h["x-content-type-options"] == "nosniff"
        assert h["cache-control"] == IMMUTABLE
        assert h["etag"] == f'"{cid}.raw"'
        assert h["x-ipfs-path"] == f"/ipfs/{cid}"
        assert h["x-ipfs-roots"] == cid
        assert h["content-disposition"] == f'attachment; filename="{cid}.bin"'
        assert h["access-control-allow-origin"] == "*"
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(b"a raw block of bytes"))
    assert named.headers["content-disposition"] == 'attachment; filename="block.bin"'


async def test_format_query_beats_accept(gateway: Gateway, backend: HFCacheBackend) -> None:
    cid = backend.block_put(b"precedence")
    async with serving(gateway) as http:
        car = await http.get(f"/ipfs/{cid}?format=car",
                             headers={"accept": "application/vnd.ipld.raw"})
        raw = await http.get(f"/ipfs/{cid}?format=raw",
                             headers={"accept": "application/vnd.ipld.car"})
    assert car.headers["content-type"] == CAR_DFS_N
    assert raw.headers["content-type"] == "application/vnd.ipld.raw"
    assert raw.content == b"precedence"


async def test_bad_requests_are_400_and_missing_roots_404(gateway: Gateway,
                                                          backend: HFCacheBackend) -> None:
    cid = backend.block_put(b"here")
    absent = cid_str(parse_cid(backend.block_put(b"gone")))
    backend.repo.blocks.path_of(bytes(parse_cid(absent).digest)).unlink()
    async with serving(gateway) as http:
        bad = [await http.get(url) for url in (
            "/ipfs/not-a-cid?format=raw",
            f"/ipfs/{cid}?format=car&dag-scope=everything",
            f"/ipfs/{cid}?format=car&entity-bytes=5:2",
            f"/ipfs/{cid}?format=car&entity-bytes=a:b",
            f"/ipfs/{cid}?format=car&car-version=2",
            f"/ipfs/{cid}?format=car&car-dups=maybe",
            f"/ipfs/{cid}?format=zip",
            f"/ipfs/{cid}/../x?format=car",
        )]
        missing_raw = await http.get(f"/ipfs/{absent}?format=raw")
        missing_car = await http.get(f"/ipfs/{absent}?format=car")
        missing_head = await http.head(f"/ipfs/{absent}?format=raw")
    assert [r.status_code for r in bad] == [400] * len(bad)
    assert missing_raw.status_code == missing_car.status_code == 404
    assert missing_head.status_code == 404


async def test_car_all_is_the_dag_in_depth_first_order(gateway: Gateway, tmp_path: Path,
                                                       backend: HFCacheBackend) -> None:
    files = {"a.txt": DATA[:5000], "sub/b.txt": b"b" * 3000, "sub/c.txt": b"tiny",
             "z.bin": bytes(range(256)) * 20}
    root = tree(backend, tmp_path, files)
    expected = [cid for cid, _ in walk(root, backend.repo.blocks.get)]
    async with serving(gateway) as http:
        response = await http.get(f"/ipfs/{root}?format=car")
        by_accept = await http.get(f"/ipfs/{root}", headers={"accept": "application/vnd.ipld.car"})
    assert response.status_code == 200
    h = response.headers
    assert h["content-type"] == CAR_DFS_N
    assert h["accept-ranges"] == "none"
    assert "content-length" not in h
    assert h["x-content-type-options"] == "nosniff"
    assert h["etag"].startswith(f'W/"{cid_str(root)}.car.')
    assert h["content-disposition"] == f'attachment; filename="{cid_str(root)}.car"'
    assert h["cache-control"] == IMMUTABLE
    roots, blocks = car_of(response.content)
    assert roots == [root]
    assert [cid for cid, _ in blocks] == expected
    assert len(expected) > 10  # a real multi-level DAG, not a single block
    assert by_accept.content == response.content


async def test_car_scopes_and_paths(gateway: Gateway, tmp_path: Path,
                                    backend: HFCacheBackend) -> None:
    root = tree(backend, tmp_path, {"sub/big.txt": DATA[:5000],
                                              "sub/other.txt": b"o"})
    sub = backend.exporter().resolve(root, "sub")
    big = backend.exporter().resolve(root, "sub/big.txt")
    leaves = leaves_of(backend, big)
    async with serving(gateway) as http:
        block = await http.get(f"/ipfs/{root}/sub/big.txt?format=car&dag-scope=block")
        entity = await http.get(f"/ipfs/{root}/sub/big.txt?format=car&dag-scope=entity")
        folder = await http.get(f"/ipfs/{root}/sub?format=car&dag-scope=entity")
        everything = await http.get(f"/ipfs/{root}/sub?format=car&dag-scope=all")
        absent = await http.get(f"/ipfs/{root}/sub/nope.txt?format=car")
    assert [c for c, _ in car_of(block.content)[1]] == [root, sub, big]
    assert [c for c, _ in car_of(entity.content)[1]] == [root, sub, big, *leaves]
    assert [c for c, _ in car_of(folder.content)[1]] == [root, sub]
    other = backend.exporter().resolve(root, "sub/other.txt")
    assert [c for c, _ in car_of(everything.content)[1]] == [root, sub, big, *leaves, other]
    assert absent.status_code == 404
    assert block.headers["x-ipfs-roots"] == ",".join(cid_str(c) for c in (root, sub, big))


async def test_entity_bytes_sends_only_the_blocks_of_the_range(
        gateway: Gateway, backend: HFCacheBackend) -> None:
    data = DATA  # 5120 bytes: five distinct leaves of 1024
    file_cid = parse_cid(backend.add_bytes(data, options=SMALL_CHUNKS))
    leaves = leaves_of(backend, file_cid)
    assert len(leaves) == 5
    cases = {"0:0": leaves[:1], "1024:2047": leaves[1:2], "1000:1100": leaves[0:2],
             "-5:*": leaves[4:], "-9999:-2000": leaves[:4], "0:*": leaves,
             "4096:*": leaves[4:], "9000:*": []}
    async with serving(gateway) as http:
        for span, expected in cases.items():
            response = await http.get(f"/ipfs/{file_cid}?format=car&entity-bytes={span}")
            assert response.status_code == 200, span
            got = [c for c, _ in car_of(response.content)[1]]
            assert got == [file_cid, *expected], span


async def test_entity_bytes_never_loads_blocks_outside_the_range(
        gateway: Gateway, backend: HFCacheBackend) -> None:
    data = DATA
    file_cid = parse_cid(backend.add_bytes(data, options=SMALL_CHUNKS))
    leaves = leaves_of(backend, file_cid)
    for gone in (leaves[0], leaves[4]):
        backend.repo.blocks.path_of(bytes(gone.digest)).unlink()
    async with serving(gateway) as http:
        response = await http.get(f"/ipfs/{file_cid}?format=car&entity-bytes=1024:4095")
        ranged = await http.get(f"/ipfs/{file_cid}", headers={"range": "bytes=2000-2100"})
    assert [c for c, _ in car_of(response.content)[1]] == [file_cid, *leaves[1:4]]
    assert ranged.status_code == 206
    assert ranged.content == data[2000:2101]


async def test_car_dups_and_identity_cids(gateway: Gateway, tmp_path: Path,
                                          backend: HFCacheBackend) -> None:
    same = DATA[:3000]
    root = tree(backend, tmp_path, {"one.txt": same, "two.txt": same})
    file_cid = backend.exporter().resolve(root, "one.txt")
    leaves = leaves_of(backend, file_cid)
    async with serving(gateway) as http:
        dups = await http.get(f"/ipfs/{root}",
                              headers={"accept": "application/vnd.ipld.car; dups=y"})
        once = await http.get(f"/ipfs/{root}?format=car&car-dups=n",
                              headers={"accept": "application/vnd.ipld.car; dups=y"})
        identity = await http.get("/ipfs/bafkqaf3imvwgy3zaneqgc3janfxgy2lomvscay3jmqfa",
                                  headers={"accept": "application/vnd.ipld.car; dups=y"})
    assert dups.headers["content-type"] == \
        "application/vnd.ipld.car; version=1; order=dfs; dups=y"
    assert [c for c, _ in car_of(dups.content)[1]] == [root, file_cid, *leaves,
                                                       file_cid, *leaves]
    assert once.headers["content-type"] == CAR_DFS_N
    assert [c for c, _ in car_of(once.content)[1]] == [root, file_cid, *leaves]
    assert identity.status_code == 200
    assert car_of(identity.content)[1] == []


async def test_missing_child_block_truncates_the_car(gateway: Gateway,
                                                     backend: HFCacheBackend) -> None:
    data = DATA
    file_cid = parse_cid(backend.add_bytes(data, options=SMALL_CHUNKS))
    leaves = leaves_of(backend, file_cid)
    backend.repo.blocks.path_of(bytes(leaves[2].digest)).unlink()
    async with serving(gateway) as http:
        received = await cut_short(http, f"/ipfs/{file_cid}?format=car")
    # What did arrive is a valid CAR prefix (read_car verifies each block): the root and
    # the leaves before the hole, and nothing after it.
    _, blocks = read_car(io.BytesIO(received))
    assert [cid for cid, _ in blocks] == [file_cid, *leaves[:2]]


async def test_hamt_path_loads_only_its_branch(gateway: Gateway, tmp_path: Path,
                                               backend: HFCacheBackend) -> None:
    files = {f"file-{n:04d}.txt": f"content {n}\n".encode() for n in range(600)}
    root = tree(backend, tmp_path, files, ImportOptions(cid_version=1, shard_threshold=1024))
    fs = unixfs.decode(dagpb.decode(backend.repo.blocks.get(root)).data or b"")
    assert fs.type == unixfs.NodeType.HAMT_SHARD
    shard_count = sum(1 for cid, _ in walk(root, backend.repo.blocks.get)
                      if cid.codec.code == 0x70)
    async with serving(gateway) as http:
        body = await http.get(f"/ipfs/{root}/file-0421.txt")
        car = await http.get(f"/ipfs/{root}/file-0421.txt?format=car&dag-scope=block")
        folder = await http.get(f"/ipfs/{root}?format=car&dag-scope=entity")
    assert body.status_code == 200 and body.content == b"content 421\n"
    blocks = [c for c, _ in car_of(car.content)[1]]
    assert blocks[0] == root and blocks[-1] == backend.exporter().resolve(root,
                                                                           "file-0421.txt")
    assert 2 <= len(blocks) < shard_count  # the branch, not the whole HAMT
    entity = [c for c, _ in car_of(folder.content)[1]]
    assert len(entity) == shard_count  # every shard, none of the 600 files
