"""get_to_path never writes outside its output folder, whatever a DAG claims."""

from __future__ import annotations

from pathlib import Path

import pytest

from ipfs_mcp.backends import unixfs
from ipfs_mcp.backends.cids import cid_of_block
from ipfs_mcp.backends.dagpb import encode_link, encode_node
from ipfs_mcp.backends.errors import InvalidInput, NotFound, UnsafePath
from ipfs_mcp.backends.exporter import Exporter
from ipfs_mcp.backends.importer import Importer
from ipfs_mcp.backends.repo import Repo


def _hostile_dir(repo: Repo, entries: list[tuple[str, bytes]]) -> object:
    """A directory block with arbitrary link names: what a malicious peer could serve."""
    importer = Importer(repo.blocks)
    links = [encode_link(importer.add_bytes(body).cid, name, len(body)) for name, body in entries]
    block = encode_node(links, unixfs.DIRECTORY_DATA)
    cid = cid_of_block(block, version=0, codec="dag-pb")
    repo.blocks.put(cid, block)
    return cid


@pytest.mark.parametrize("name", ["..", ".", "", "a/../../x", "/etc/passwd", "nul\x00byte"])
def test_hostile_entry_names_are_refused(repo: Repo, tmp_path: Path, name: str) -> None:
    cid = _hostile_dir(repo, [(name, b"pwned")])
    out = tmp_path / "out" / "inner"
    with pytest.raises(UnsafePath, match="unsafe directory entry name"):
        Exporter(repo.blocks.get).get_to_path(cid, out)  # type: ignore[arg-type]
    written = [p for p in tmp_path.rglob("*") if p.is_file() and repo.path not in p.parents]
    assert all("pwned" not in p.read_text(errors="ignore") for p in written)


def test_symlink_pointing_outside_is_refused(repo: Repo, tmp_path: Path) -> None:
    importer = Importer(repo.blocks)
    evil = importer.add_symlink("../../outside")
    fine = importer.add_symlink("sibling")
    root = importer.add_directory([("escape", evil)])
    with pytest.raises(UnsafePath, match="points outside"):
        Exporter(repo.blocks.get).get_to_path(root.cid_obj, tmp_path / "out")
    ok = importer.add_directory([("link", fine), ("sibling", importer.add_bytes(b"s"))])
    Exporter(repo.blocks.get).get_to_path(ok.cid_obj, tmp_path / "ok")
    assert (tmp_path / "ok" / "link").read_bytes() == b"s"


def test_get_writes_tree_and_overwrites_files_atomically(repo: Repo, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    (src / "a" / "b" / "deep.txt").write_bytes(b"deep")
    (src / "top.txt").write_bytes(b"top")
    root = Importer(repo.blocks).add_path(src).root
    out = tmp_path / "out"
    out.mkdir()
    (out / "top.txt").write_bytes(b"old contents")
    Exporter(repo.blocks.get).get_to_path(root, out)
    assert (out / "top.txt").read_bytes() == b"top"
    assert (out / "a" / "b" / "deep.txt").read_bytes() == b"deep"
    assert not [p for p in out.rglob("*.part")]


def test_resolve_and_errors(repo: Repo, tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"f")
    root = Importer(repo.blocks).add_path(tmp_path / "d").root
    exporter = Exporter(repo.blocks.get)
    assert exporter.read(exporter.resolve(root, "/f/")) == b"f"
    with pytest.raises(NotFound):
        exporter.resolve(root, "missing")
    with pytest.raises(InvalidInput, match="directory"):
        exporter.read(root)
    with pytest.raises(InvalidInput):
        list(exporter.cat(root, offset=-1))
