"""A file's layout (each raw leaf's offset) is bounded in leaves: a crafted DAG of tiny
leaves is copied, in bounded memory, instead of being laid out slot by slot."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ipfs_mcp.backends.core.importer import Importer, ImportOptions
from ipfs_mcp.backends.repo import receiver
from ipfs_mcp.backends.repo.repository import Repo


def test_a_file_with_more_leaves_than_the_bound_is_not_laid_out(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = Repo(tmp_path / "repo", fsync=False)
    data = os.urandom(40 * 1024)
    node = Importer(repo.blocks, ImportOptions(cid_version=1, chunk_size=1024)
                    ).add_bytes(data)
    layout = receiver.file_layout(repo.blocks.get, node.cid_obj, len(data))
    assert isinstance(layout, receiver.FileLayout)
    assert [s.offset for s in layout.slots] == list(range(0, len(data), 1024))
    monkeypatch.setattr(receiver, "MAX_LAYOUT_LEAVES", 16)  # the bound, made small
    why = receiver.file_layout(repo.blocks.get, node.cid_obj, len(data))
    assert why == "it has more than 16 leaves, too many to place"
