"""The importer against Kubo's known vectors and its own exporter.

Parity with real importers over random inputs lives in tests/interop/.
"""

from __future__ import annotations

import io
import os
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipfs_mcp.backends.core import dagpb, unixfs
from ipfs_mcp.backends.core.chunkers import CHUNK_SIZE_LIMIT, parse_chunker
from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.core.exporter import Exporter
from ipfs_mcp.backends.core.importer import Importer, ImportOptions
from ipfs_mcp.backends.errors import InvalidInput, UnsafePath
from ipfs_mcp.backends.repo.repository import Repo
from tests.kubo_vectors import FILE_VECTORS as VECTORS

V1 = ImportOptions(cid_version=1)


@pytest.mark.parametrize(("data", "v0", "v1"), VECTORS)
def test_known_file_vectors(data: bytes, v0: str, v1: str) -> None:
    assert cid_str(Importer().add_bytes(data).cid_obj) == v0
    assert cid_str(Importer(options=V1).add_bytes(data).cid_obj) == v1


def test_known_directory_vector(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_bytes(b"aaa\n")
    (tmp_path / "d" / "b.txt").write_bytes(b"bbb\n")
    assert cid_str(Importer().add_path(tmp_path / "d").root) == \
        "Qmbf84Ab1zsAStesz6Q7CTHJWKhZyMd9KtYPqrxEvFuBsF"
    assert cid_str(Importer(options=V1).add_path(tmp_path / "d").root) == \
        "bafybeieb2ojvdcdqsm2dwkzjc4unjujhh7dkkbr4njv4tzh5fb3fjdx4wu"


def test_empty_directory_matches_kubo(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert cid_str(Importer().add_path(tmp_path / "empty").root) == \
        "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"


class _Blocks(dict):
    def put_block(self, cid: bytes, data: bytes) -> None:
        self[cid] = data


def _root_links(chunks: int, chunk: int = 16) -> list[int]:
    """Link counts per level, from the root down the first path."""
    blocks = _Blocks()
    node = Importer(blocks, ImportOptions(chunk_size=chunk)).add_bytes(os.urandom(chunks * chunk))
    counts = []
    cid = node.cid
    while True:
        pb = dagpb.decode(blocks[cid])
        if not pb.links:
            return counts
        counts.append(len(pb.links))
        cid = bytes(pb.links[0].cid)


def test_balanced_layout_fills_174_then_grows_a_level() -> None:
    assert _root_links(174) == [174]
    assert _root_links(175) == [2, 174]  # old root becomes the first child of a new root
    assert _root_links(174 * 174) == [174, 174]
    assert _root_links(174 * 174 + 1) == [2, 174, 174]


def test_dag_pb_is_canonical_links_before_data() -> None:
    blocks = _Blocks()
    node = Importer(blocks, ImportOptions(chunk_size=4)).add_bytes(b"x" * 10)
    root = blocks[node.cid]
    assert root[0] == 0x12  # field 2 (Links) comes first
    decoded = dagpb.decode(root)
    assert dagpb.encode(decoded) == root
    fs = unixfs.decode(decoded.data or b"")
    assert fs.filesize == 10 and fs.blocksizes == (4, 4, 2)


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=5000), chunk=st.integers(1, 700), raw=st.booleans(),
       offset=st.integers(0, 5200), length=st.one_of(st.none(), st.integers(0, 5200)))
def test_import_export_round_trip_with_ranges(tmp_path_factory: pytest.TempPathFactory,
                                              data: bytes, chunk: int, raw: bool, offset: int,
                                              length: int | None) -> None:
    repo = Repo(tmp_path_factory.mktemp("r"), fsync=False)
    node = Importer(repo.blocks, ImportOptions(chunk_size=chunk, raw_leaves=raw,
                                               max_links=3)).add_bytes(data)
    exporter = Exporter(repo.blocks.get)
    assert exporter.read(node.cid_obj) == data
    end = None if length is None else offset + length
    assert exporter.read(node.cid_obj, offset, length) == data[offset:end]
    assert exporter.stat(node.cid_obj).size == len(data)


@pytest.mark.parametrize("kwargs", [
    {"cid_version": 2}, {"chunk_size": 0}, {"chunk_size": CHUNK_SIZE_LIMIT + 1},
    {"chunker": "rabin-1-2-3"},  # boxo: rabin min must be at least 16
    {"chunker": "rabin-16-32-32"}, {"chunker": "rabin-10"}, {"chunker": "fastcdc"},
    {"chunker": "size-"}, {"chunker": "size-1-2"}, {"chunker": "size-1024", "chunk_size": 2048},
    {"max_links": 1}, {"max_links": 0, "trickle": True}, {"max_directory_links": -1},
    {"max_hamt_fanout": 4}, {"max_hamt_fanout": 12}, {"max_hamt_fanout": 2048},
    {"hamt_size_estimation": "bytes"}, {"shard_threshold": -1},
])
def test_options_are_validated(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        ImportOptions(**kwargs)  # type: ignore[arg-type]


def test_chunker_spellings() -> None:
    assert ImportOptions.from_chunker("size-1024") == ImportOptions(chunk_size=1024)
    assert ImportOptions.from_chunker("default") == ImportOptions()
    assert ImportOptions(chunker="size-262144") == ImportOptions()
    assert ImportOptions(chunker=f"size-{CHUNK_SIZE_LIMIT}").chunk_size == CHUNK_SIZE_LIMIT
    assert ImportOptions(chunker="rabin").chunker_spec == "rabin-87381-262144-393216"
    assert ImportOptions(chunker="rabin-4096").chunker_spec == "rabin-1365-4096-6144"
    assert ImportOptions(chunker="rabin-min:16-avg:32-max:64").chunker_spec == "rabin-16-32-64"
    assert ImportOptions(chunker="buzhash").chunker_spec == "buzhash"
    assert ImportOptions(max_links=1, trickle=True).max_links == 1


def test_profiles_are_kubos() -> None:
    v1 = ImportOptions.from_profile("unixfs-v1-2025")
    assert (v1.cid_version, v1.leaves_are_raw, v1.chunk_size, v1.max_links,
            v1.max_hamt_fanout, v1.shard_threshold, v1.hamt_size_estimation, v1.trickle) == \
        (1, True, 1048576, 1024, 256, 262144, "block", False)
    v0 = ImportOptions.from_profile("unixfs-v0-2015")
    assert ImportOptions.from_profile("legacy-cid-v0") == v0
    assert (v0.cid_version, v0.raw_leaves, v0.chunk_size, v0.max_links,
            v0.hamt_size_estimation) == (0, False, 262144, 174, "links")
    # the profile sets raw leaves off explicitly: CIDv1 does not turn them on (as in Kubo),
    # while without a profile it does
    assert not ImportOptions.from_profile("unixfs-v0-2015", cid_version=1).leaves_are_raw
    assert ImportOptions.from_profile(None, cid_version=1).leaves_are_raw
    # flags override the profile; None means "not given"
    over = ImportOptions.from_profile("unixfs-v1-2025", chunker="rabin", trickle=True,
                                      cid_version=None, max_links=7)
    assert (over.chunker_spec, over.trickle, over.cid_version, over.max_links) == \
        ("rabin-87381-262144-393216", True, 1, 7)
    assert ImportOptions.from_profile("unixfs-v1-2025", chunker="size-1024").chunk_size == 1024
    assert ImportOptions.from_profile(None) == ImportOptions()
    with pytest.raises(InvalidInput, match="unixfs-v1-2025"):
        ImportOptions.from_profile("unixfs-v2-2030")


def test_profile_vectors() -> None:
    """Kubo's CIDs (INTEROP.md) where the profile's choices coincide with plain flags."""
    v1 = Importer(options=ImportOptions.from_profile("unixfs-v1-2025"))
    assert cid_str(v1.add_bytes(b"hello world\n").cid_obj) == VECTORS[1][2]
    legacy = Importer(options=ImportOptions.from_profile("legacy-cid-v0"))
    for data, v0, _ in VECTORS:
        assert cid_str(legacy.add_bytes(data).cid_obj) == v0


def test_hidden_files_skipped_unless_asked(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_bytes(b"a")
    plain = Importer().add_path(tmp_path / "d").root
    (tmp_path / "d" / ".git").write_bytes(b"secret")
    assert Importer().add_path(tmp_path / "d").root == plain
    assert Importer(options=ImportOptions(hidden=True)).add_path(tmp_path / "d").root != plain


def test_symlinks_become_symlink_nodes_or_are_followed(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "blob").write_bytes(b"content")
    (tmp_path / "d" / "link").symlink_to("../blob")
    blocks = _Blocks()
    Importer(blocks).add_path(tmp_path / "d")
    as_link = Importer().add_path(tmp_path / "d")
    kinds = {e.path: e.kind for e in as_link.entries}
    assert kinds["link"] == "symlink"
    followed = Importer(options=ImportOptions(follow_symlinks=True)).add_path(tmp_path / "d")
    assert {e.path: e.kind for e in followed.entries}["link"] == "file"


def test_wrap_with_directory(tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_bytes(b"hello world\n")
    result = Importer(options=ImportOptions(wrap_with_directory=True)).add_path(
        tmp_path / "hello.txt")
    assert [e.path for e in result.entries] == ["hello.txt", ""]
    repo = Repo(tmp_path / "r")
    Importer(repo.blocks, ImportOptions(wrap_with_directory=True)).add_path(tmp_path / "hello.txt")
    exporter = Exporter(repo.blocks.get)
    inner = exporter.resolve(result.root, "hello.txt")
    assert cid_str(inner) == "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"


def test_hamt_switch_and_listing(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "r", fsync=False)
    importer = Importer(repo.blocks, ImportOptions(shard_threshold=2000))
    leaf = importer.add_bytes(b"x")
    names = [f"entry-{i:04d}-{'n' * (i % 7)}" for i in range(600)]
    node = importer.add_directory([(n, leaf) for n in names])
    root = dagpb.decode(repo.blocks.get(node.cid_obj))
    assert unixfs.decode(root.data or b"").type == unixfs.NodeType.HAMT_SHARD
    assert sorted(name for name, _ in Exporter(repo.blocks.get).children(node.cid_obj)) == \
        sorted(names)
    small = importer.add_directory([("a", leaf)])
    assert unixfs.decode(dagpb.decode(repo.blocks.get(small.cid_obj)).data or b"").type == \
        unixfs.NodeType.DIRECTORY


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "nul\x00"])
def test_unsafe_names_are_refused_on_import(name: str) -> None:
    importer = Importer()
    with pytest.raises(UnsafePath):
        importer.add_directory([(name, importer.add_bytes(b"x"))])


# -- chunkers ---------------------------------------------------------------------------------
# Chunk lengths from boxo v0.43.0's own chunker (chunk.FromString(spec).NextBytes() until EOF)
# for random.Random(seed).randbytes(size), and for runs of zero bytes.
BOXO_CHUNKS = [
    ("rabin", 1, 1_500_000,
     [144975, 102610, 93372, 132180, 226005, 193264, 393216, 177883, 36495]),
    ("rabin-512-4096-16384", 2, 60_000, [844, 2733, 6678, 6172, 9872, 16384, 16384, 933]),
    ("rabin-16-32-64", 3, 2_000,
     [64, 64, 16, 17, 17, 45, 18, 20, 55, 64, 52, 64, 36, 35, 20, 64, 57, 26, 64, 21, 64, 31, 63,
      27, 36, 28, 39, 18, 64, 17, 46, 64, 64, 64, 19, 44, 64, 19, 37, 38, 39, 42, 17, 37, 64, 64,
      37, 35]),
    ("rabin-8192", 4, 100_000,
     [3544, 12288, 12288, 3114, 12288, 12288, 9445, 7284, 9404, 3982, 4301, 9774]),
    ("buzhash", 5, 1_500_000, [226006, 524288, 163405, 524288, 62013]),
    ("rabin", None, 1_200_000, [87381] * 13 + [64047]),
    ("buzhash", None, 1_200_000, [131072] * 9 + [20352]),
]


class _TrickleReads(io.RawIOBase):
    """A stream that hands out at most 7 bytes per read (a pipe, a slow socket)."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        n = min(7, len(buf), len(self._data))
        buf[:n] = self._data[:n]
        self._data = self._data[n:]
        return n


@pytest.mark.parametrize(("spec", "seed", "size", "lengths"), BOXO_CHUNKS,
                         ids=[f"{c[0]}-{c[1]}" for c in BOXO_CHUNKS])
def test_chunkers_cut_where_boxo_does(spec: str, seed: int | None, size: int,
                                      lengths: list[int]) -> None:
    data = bytes(size) if seed is None else random.Random(seed).randbytes(size)
    chunks = list(parse_chunker(spec).chunks(io.BytesIO(data)))
    assert [len(c) for c in chunks] == lengths
    assert b"".join(chunks) == data


@settings(max_examples=25, deadline=None)
@given(data=st.binary(max_size=3000), spec=st.sampled_from(
    ["size-1", "size-7", "size-1000", "rabin-16-32-64", "rabin-20-100-400", "rabin-48"]))
def test_chunks_cover_the_stream_whatever_the_reads(data: bytes, spec: str) -> None:
    chunker = parse_chunker(spec)
    whole = list(chunker.chunks(io.BytesIO(data)))
    assert b"".join(whole) == data and all(whole)
    assert list(chunker.chunks(_TrickleReads(data))) == whole  # short reads change nothing


# -- trickle ----------------------------------------------------------------------------------
def _shape(blocks: _Blocks, cid: bytes) -> Any:
    """A file DAG as nested lists; a leaf as the UnixFS type of its dag-pb block, or
    'block' for a raw block."""
    if cid[:2] == b"\x01\x55":
        return "block"
    pb = dagpb.decode(blocks[cid])
    fs = unixfs.decode(pb.data or b"")
    if not pb.links:
        return fs.type.name.lower()
    return [_shape(blocks, bytes(link.cid)) for link in pb.links]


def test_trickle_layout_is_boxos() -> None:
    """max_links leaves first, then 4 subtrees of each depth (boxo depthRepeat)."""
    def shape(leaves: int, **kw: Any) -> Any:
        blocks = _Blocks()
        options = ImportOptions(trickle=True, chunk_size=1, max_links=2, **kw)
        node = Importer(blocks, options).add_bytes(os.urandom(leaves))
        return _shape(blocks, node.cid)

    # dag-pb leaves are typed Raw in the trickle layout (File in the balanced one)
    r = "raw"
    assert shape(1) == [r]  # even one chunk gets a root above it
    assert shape(2) == [r, r]
    assert shape(3) == [r, r, [r]]
    assert shape(10) == [r, r] + [[r, r]] * 4
    # then depth-2 subtrees: 2 leaves and four depth-1 subtrees each
    assert shape(11) == [r, r] + [[r, r]] * 4 + [[r]]
    depth2 = [r, r] + [[r, r]] * 4
    assert shape(10 + 2 * 10) == [r, r] + [[r, r]] * 4 + [depth2] * 2
    assert shape(3, cid_version=1) == ["block", "block", ["block"]]
    blocks = _Blocks()
    node = Importer(blocks, ImportOptions(chunk_size=4)).add_bytes(b"x" * 9)
    assert _shape(blocks, node.cid) == ["file"] * 3


def test_trickle_empty_and_small_files() -> None:
    trickle = ImportOptions(trickle=True)
    # an empty file: a root with no links, which under CIDv0 is the usual empty file
    assert cid_str(Importer(options=trickle).add_bytes(b"").cid_obj) == VECTORS[0][1]
    # a one-chunk file: a root above its leaf, so not the balanced CID
    assert cid_str(Importer(options=trickle).add_bytes(b"hello world\n").cid_obj) != \
        VECTORS[1][1]


@settings(max_examples=30, deadline=None)
@given(data=st.binary(max_size=4000), chunk=st.integers(1, 300), links=st.integers(1, 6),
       raw=st.booleans(), offset=st.integers(0, 4100))
def test_trickle_round_trip(tmp_path_factory: pytest.TempPathFactory, data: bytes, chunk: int,
                           links: int, raw: bool, offset: int) -> None:
    repo = Repo(tmp_path_factory.mktemp("t"), fsync=False)
    options = ImportOptions(trickle=True, chunk_size=chunk, max_links=links, raw_leaves=raw)
    node = Importer(repo.blocks, options).add_bytes(data)
    exporter = Exporter(repo.blocks.get)
    assert exporter.read(node.cid_obj) == data
    assert exporter.read(node.cid_obj, offset, 100) == data[offset:offset + 100]


# -- directories: the HAMT switch and fanouts -------------------------------------------------
def _kind(blocks: Any, node: Any) -> unixfs.NodeType:
    return unixfs.decode(dagpb.decode(blocks.get(node.cid_obj)).data or b"").type


def test_hamt_switch_is_over_not_at_the_threshold(tmp_path: Path) -> None:
    """Kubo 0.40+: sharded when the estimate is > the threshold (0.22 used >=)."""
    repo = Repo(tmp_path / "r", fsync=False)
    importer = Importer(repo.blocks)
    leaf = importer.add_bytes(b"x")  # CIDv0: 34 bytes
    def names(extra: int) -> list[tuple[str, Any]]:
        # 2048 * (94 + 34) == 262144; the first name grows or shrinks by one byte
        return [((f"{i:06d}" + "n" * (88 + (extra if i == 0 else 0))), leaf)
                for i in range(2048)]
    assert _kind(repo.blocks, importer.add_directory(names(0))) is unixfs.NodeType.DIRECTORY
    assert _kind(repo.blocks, importer.add_directory(names(1))) is unixfs.NodeType.HAMT_SHARD
    assert _kind(repo.blocks, importer.add_directory(names(-1))) is unixfs.NodeType.DIRECTORY
    # Kubo 0.22's rule is the threshold minus one
    old = Importer(repo.blocks, ImportOptions(shard_threshold=262143))
    assert _kind(repo.blocks, old.add_directory(names(0))) is unixfs.NodeType.HAMT_SHARD
    # 0 turns sharding off
    off = Importer(repo.blocks, ImportOptions(shard_threshold=0))
    assert _kind(repo.blocks, off.add_directory(names(5000))) is unixfs.NodeType.DIRECTORY


def test_block_estimate_is_the_plain_blocks_size(tmp_path: Path) -> None:
    """unixfs-v1-2025 counts the whole serialized block (Tsize and framing too)."""
    repo = Repo(tmp_path / "r", fsync=False)
    leaf = Importer(repo.blocks, ImportOptions(cid_version=1)).add_bytes(b"x")
    entries = [(f"{i:05d}", leaf) for i in range(1000)]
    plain = Importer(repo.blocks, ImportOptions(cid_version=1, shard_threshold=0))
    size = len(repo.blocks.get(plain.add_directory(entries).cid_obj))
    for threshold, kind in ((size, unixfs.NodeType.DIRECTORY),
                            (size - 1, unixfs.NodeType.HAMT_SHARD)):
        block = Importer(repo.blocks, ImportOptions(cid_version=1, shard_threshold=threshold,
                                                    hamt_size_estimation="block"))
        assert _kind(repo.blocks, block.add_directory(entries)) is kind
    # the links estimate (name + CID bytes) is far smaller: no shard at the same threshold
    links = Importer(repo.blocks, ImportOptions(cid_version=1, shard_threshold=size - 1))
    assert _kind(repo.blocks, links.add_directory(entries)) is unixfs.NodeType.DIRECTORY


def test_max_directory_links(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "r", fsync=False)
    leaf = Importer(repo.blocks).add_bytes(b"x")
    entries = [(f"e{i}", leaf) for i in range(10)]
    for options, kind in (
            (ImportOptions(max_directory_links=10), unixfs.NodeType.DIRECTORY),
            (ImportOptions(max_directory_links=9), unixfs.NodeType.HAMT_SHARD),
            (ImportOptions(max_directory_links=9, hamt_size_estimation="disabled"),
             unixfs.NodeType.HAMT_SHARD),
            (ImportOptions(shard_threshold=1, hamt_size_estimation="disabled"),
             unixfs.NodeType.DIRECTORY)):
        assert _kind(repo.blocks, Importer(repo.blocks, options).add_directory(entries)) is kind
    with pytest.raises(InvalidInput, match="max_directory_links"):
        Importer(options=ImportOptions(max_directory_links=9, shard_threshold=0)).add_directory(
            entries)


@pytest.mark.parametrize(("fanout", "digits"), [(8, 1), (16, 1), (32, 2), (256, 2), (1024, 3)])
def test_hamt_fanouts(tmp_path: Path, fanout: int, digits: int) -> None:
    repo = Repo(tmp_path / "r", fsync=False)
    options = ImportOptions(max_directory_links=1, max_hamt_fanout=fanout)
    importer = Importer(repo.blocks, options)
    leaf = importer.add_bytes(b"x")
    names = [f"name {i}" for i in range(300)]
    node = importer.add_directory([(n, leaf) for n in names])
    root = dagpb.decode(repo.blocks.get(node.cid_obj))
    assert unixfs.decode(root.data or b"").fanout == fanout
    assert len(root.links) <= fanout
    prefixes = {link.name[:digits] for link in root.links}
    assert all(int(p, 16) < fanout and p == p.upper() for p in prefixes)
    assert len(prefixes) == len(root.links)  # one link per occupied slot
    assert sorted(name for name, _ in Exporter(repo.blocks.get).children(node.cid_obj)) == \
        sorted(names)
