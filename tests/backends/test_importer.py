"""The importer against Kubo's known vectors and its own exporter.

Parity with real importers over random inputs lives in tests/interop/.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipfs_mcp.backends import dagpb, unixfs
from ipfs_mcp.backends.cids import cid_str
from ipfs_mcp.backends.errors import InvalidInput, UnsafePath
from ipfs_mcp.backends.exporter import Exporter
from ipfs_mcp.backends.importer import Importer, ImportOptions
from ipfs_mcp.backends.repo import Repo

V1 = ImportOptions(cid_version=1)

# Kubo `ipfs add` (INTEROP.md): input -> (CIDv0 defaults, CIDv1 raw leaves)
VECTORS = [
    (b"", "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH",
     "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"),
    (b"hello world\n", "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o",
     "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"),
    (bytes(1 << 20), "QmVkbauSDEaMP4Tkq6Epm9uW75mWm136n81YH8fGtfwdHU",
     "bafybeiggzq4ryi7hscq5hzvzcnk4urnxt3asp37dhgvnjilf7exskximla"),
]


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


def test_options_are_validated() -> None:
    with pytest.raises(InvalidInput):
        ImportOptions(cid_version=2)
    with pytest.raises(InvalidInput):
        ImportOptions(chunk_size=0)
    with pytest.raises(InvalidInput):
        ImportOptions.from_chunker("rabin-1-2-3")
    assert ImportOptions.from_chunker("size-1024").chunk_size == 1024


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
