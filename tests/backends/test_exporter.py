"""get_to_path never writes outside its output folder, whatever a DAG claims."""

from __future__ import annotations

from pathlib import Path

import pytest

from ipfs_mcp.backends.core import unixfs
from ipfs_mcp.backends.core.cids import cid_of_block
from ipfs_mcp.backends.core.dagpb import encode_link, encode_node
from ipfs_mcp.backends.core.exporter import Exporter
from ipfs_mcp.backends.core.importer import Importer
from ipfs_mcp.backends.errors import InvalidInput, NotFound, TargetExists, UnsafePath
from ipfs_mcp.backends.repo.repository import Repo


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


def _tree(repo: Repo, tmp_path: Path) -> object:
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    (src / "a" / "b" / "deep.txt").write_bytes(b"deep")
    (src / "top.txt").write_bytes(b"top")
    return Importer(repo.blocks).add_path(src).root


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(".")]


def test_get_writes_tree_into_new_or_empty_folder(repo: Repo, tmp_path: Path) -> None:
    root = _tree(repo, tmp_path)
    exporter = Exporter(repo.blocks.get)
    exporter.get_to_path(root, tmp_path / "new" / "out")  # type: ignore[arg-type]
    assert (tmp_path / "new" / "out" / "a" / "b" / "deep.txt").read_bytes() == b"deep"
    (tmp_path / "empty").mkdir()
    exporter.get_to_path(root, tmp_path / "empty")  # type: ignore[arg-type]
    assert (tmp_path / "empty" / "top.txt").read_bytes() == b"top"
    assert not _leftovers(tmp_path) and not _leftovers(tmp_path / "new")


def test_existing_folder_is_refused_then_replaced_whole_with_overwrite(
        repo: Repo, tmp_path: Path) -> None:
    root = _tree(repo, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "top.txt").write_bytes(b"old contents")
    (out / "mine.txt").write_bytes(b"the user's")
    exporter = Exporter(repo.blocks.get)
    with pytest.raises(TargetExists, match="existing folder"):
        exporter.get_to_path(root, out)  # type: ignore[arg-type]
    assert (out / "top.txt").read_bytes() == b"old contents"
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt", "top.txt"]
    exporter.get_to_path(root, out, overwrite=True)  # type: ignore[arg-type]
    assert (out / "top.txt").read_bytes() == b"top"
    assert (out / "a" / "b" / "deep.txt").read_bytes() == b"deep"
    assert not (out / "mine.txt").exists()  # replaced, not merged
    assert not _leftovers(tmp_path)


@pytest.mark.parametrize("existing", ["file", "symlink", "folder"])
def test_existing_target_is_refused_for_a_file(repo: Repo, tmp_path: Path,
                                               existing: str) -> None:
    cid = Importer(repo.blocks).add_bytes(b"new bytes").cid_obj
    out = tmp_path / "notes.txt"
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"keep me")
    if existing == "file":
        out.write_bytes(b"user notes")
    elif existing == "symlink":
        out.symlink_to(victim)
    else:
        out.mkdir()
    exporter = Exporter(repo.blocks.get)
    with pytest.raises(TargetExists):
        exporter.get_to_path(cid, out)
    assert victim.read_bytes() == b"keep me"
    if existing == "file":
        assert out.read_bytes() == b"user notes"
    exporter.get_to_path(cid, out, overwrite=True)
    assert out.read_bytes() == b"new bytes" and not out.is_symlink()
    assert victim.read_bytes() == b"keep me"  # the link was replaced, not followed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "repo", "victim.txt"]


def test_file_overwrite_replaces_folder_and_folder_replaces_file(repo: Repo,
                                                                 tmp_path: Path) -> None:
    importer = Importer(repo.blocks)
    file_cid = importer.add_bytes(b"file").cid_obj
    root = _tree(repo, tmp_path)
    exporter = Exporter(repo.blocks.get)
    out = tmp_path / "x"
    out.mkdir()
    (out / "old").write_bytes(b"old")
    exporter.get_to_path(file_cid, out, overwrite=True)
    assert out.read_bytes() == b"file"
    exporter.get_to_path(root, out, overwrite=True)  # type: ignore[arg-type]
    assert (out / "top.txt").read_bytes() == b"top"
    assert not _leftovers(tmp_path)


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
