"""store_model's first page is built from the add's own entries (no block read, so a cluster
peer outside the allocation is never asked for one): it must be exactly the page a walk of
the stored DAG gives, entries and cursor, and that cursor must walk on the same way."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Union

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from multiformats import CID

from ipfs_mcp.backends.core.exporter import Entry
from ipfs_mcp.backends.core.importer import ImportOptions
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.remote.kubo.upload import LocalTree, added_entries
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.tools.listings import added_page, files_page
from ipfs_mcp.tools.paging import Cursors

CHUNK = 16  # small chunks, so files of 0..3 chunks stay a few bytes
CURSORS = Cursors(b"k" * 32)
# Names whose byte order traps a careless sort: prefixes, separators-like characters,
# case, combining marks, multi-byte UTF-8 (code point order is UTF-8 byte order).
NAMES = ["a", "a-b", "a.b", "a0", "a b", "ab", "A", "b", "_", "~", "é", "e\u0301", "ä",
         "日本", "z", "\U0001f600", "\uff41", "a\u00a0"]
TARGETS = ["a", "a-b", "../a", "b/c", "/etc/passwd", "日本", "missing"]

Tree = dict[str, Union[bytes, tuple[str], "Tree"]]  # file bytes, (link target,), folder

_leaf = st.one_of(st.binary(max_size=3 * CHUNK),
                  st.sampled_from(TARGETS).map(lambda t: (t,)))
trees: st.SearchStrategy[Tree] = st.recursive(
    st.dictionaries(st.sampled_from(NAMES), _leaf, max_size=4),
    lambda inner: st.dictionaries(st.sampled_from(NAMES), st.one_of(_leaf, inner),
                                  max_size=4),
    max_leaves=14)


def _write(where: Path, tree: Tree) -> None:
    where.mkdir()
    for name, item in tree.items():
        if isinstance(item, bytes):
            (where / name).write_bytes(item)
        elif isinstance(item, tuple):
            os.symlink(item[0], where / name)
        else:
            _write(where / name, item)


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HFCacheBackend, Path]]:
    base = tmp_path_factory.mktemp("added")
    backend = HFCacheBackend(Repo(base / "repo", fsync=False), hub_cache=base / "hub")
    yield backend, base
    backend.close()


def _walk_on(backend: HFCacheBackend, root: CID, cursor: str | None,
             total: int | None) -> list[Entry]:
    """Every entry after ``cursor``, a page of 2 at a time, read from the stored DAG."""
    out: list[Entry] = []
    for _ in range(1000):  # bounded: the trees here have far fewer entries
        if cursor is None:
            return out
        page = files_page(backend.exporter(), root, cursors=CURSORS, limit=2, cursor=cursor)
        out.extend(page.entries)
        cursor = page.cursor
    raise AssertionError("the walk did not end")


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(tree=trees, wrap=st.booleans())
@example(tree={"d": {n: n.encode() for n in NAMES}, **{n: (n,) for n in NAMES}}, wrap=False)
def test_the_page_from_the_adds_entries_is_the_page_of_the_dag(
        place: tuple[HFCacheBackend, Path], tree: Tree, wrap: bool) -> None:
    backend, base = place
    top = base / uuid.uuid4().hex
    _write(top, tree)
    options = ImportOptions(chunk_size=CHUNK, wrap_with_directory=wrap)
    result = backend.add_path(top, pin=False, options=options)
    total = len(result.entries)
    whole = files_page(backend.exporter(), result.root, cursors=CURSORS, limit=10_000,
                       total=total)
    for limit in (1, 2, 3, 5, 100):
        ours = added_page(result.entries, result.root, options=options, cursors=CURSORS,
                          limit=limit, total=total)
        read = files_page(backend.exporter(), result.root, cursors=CURSORS, limit=limit,
                          total=total)
        assert ours == read
        assert ours.entries + _walk_on(backend, result.root, ours.cursor,
                                       total) == whole.entries


def test_a_sharded_folder_falls_back_to_the_dag(place: tuple[HFCacheBackend, Path]) -> None:
    backend, base = place
    top = base / uuid.uuid4().hex
    _write(top, {"plain": {"x": b"1"}, "many": {name: name.encode() for name in NAMES}})
    # A threshold this low shards "many" (its names and CIDs are well over 64 bytes) and
    # leaves "plain" (one name and one CID: 35 bytes) a plain folder.
    options = ImportOptions(chunk_size=CHUNK, shard_threshold=64)
    result = backend.add_path(top, pin=False, options=options)
    assert added_page(result.entries, result.root, options=options, cursors=CURSORS,
                      limit=100) is None
    many = next(e.cid for e in result.entries if e.path == "many")
    # Why: the sharded folder lists in hash order, not in the sorted order of the entries.
    listed = [e.name for e in backend.exporter().ls(many)]
    assert sorted(listed) == sorted(NAMES) and listed != sorted(NAMES)
    plain = base / uuid.uuid4().hex
    _write(plain, {"plain": {"x": b"1"}})
    alone = backend.add_path(plain, pin=False, options=options)
    assert added_page(alone.entries, alone.root, options=options, cursors=CURSORS,
                      limit=100) == files_page(backend.exporter(), alone.root,
                                               cursors=CURSORS, limit=100)


def test_a_remote_nodes_answers_give_the_same_page(place: tuple[HFCacheBackend, Path]) -> None:
    """Kubo and the cluster answer names and CIDs only; kinds, sizes and link targets are
    read from the local tree that was sent, where a symlink to a folder is still a symlink."""
    backend, base = place
    top = base / uuid.uuid4().hex
    _write(top, {"d": {"f": b"x" * 40}, "to-d": ("d",), "to-f": ("d/f",), "gone": ("nowhere",),
                 "e": b""})
    options = ImportOptions(chunk_size=CHUNK)
    result = backend.add_path(top, pin=False, options=options)
    sent = LocalTree.open(top, recursive=True, options=options)
    # The answers a node gives for this add (its CIDs are ours: the interop tests show it).
    answers = [(f"{sent.name}/{e.path}" if e.path else sent.name, e.cid)
               for e in result.entries]
    remote = added_entries(sent, answers)
    assert added_page(remote, result.root, options=options, cursors=CURSORS, limit=100) == \
        files_page(backend.exporter(), result.root, cursors=CURSORS, limit=100)
