"""Both directions of the HuggingFace hub cache layout, checked with huggingface_hub itself."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from huggingface_hub import hf_hub_download, snapshot_download

from ipfs_mcp.backends.core.importer import Importer, ImportOptions
from ipfs_mcp.backends.errors import InvalidInput, NotFound
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.hub.layout import RECORD_PATH, SnapshotRecord, parse_source
from ipfs_mcp.backends.repo.repository import Repo

FILES = {"config.json": b'{"model_type": "tiny"}\n', "model.safetensors": os.urandom(300_000),
         "tokenizer/vocab.txt": b"a\nb\nc\n"}


def make_cached_model(hub: Path, repo_id: str, commit: str = "a" * 40) -> Path:
    """Lay a model out as huggingface_hub's downloader does: blobs + snapshot symlinks."""
    folder = hub / f"models--{repo_id.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    for rel, data in FILES.items():
        etag = hashlib.sha256(data).hexdigest()
        (folder / "blobs").mkdir(exist_ok=True)
        (folder / "blobs" / etag).write_bytes(data)
        link = folder / "snapshots" / commit / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(folder / "blobs" / etag, link.parent))
    return folder / "snapshots" / commit


def test_add_cached_model_equals_adding_its_plain_files(tmp_path: Path) -> None:
    hub = tmp_path / "hub"
    make_cached_model(hub, "tiny-org/tiny-model")
    assert Path(snapshot_download("tiny-org/tiny-model", cache_dir=str(hub),
                                  local_files_only=True)).is_dir()
    backend = HFCacheBackend(Repo(tmp_path / "repo"), hub_cache=hub)
    result = backend.add_hf_model("tiny-org/tiny-model")
    plain = tmp_path / "plain"
    record = SnapshotRecord("tiny-org/tiny-model", "a" * 40, "main").encode()
    for rel, data in {**FILES, RECORD_PATH: record}.items():
        (plain / rel).parent.mkdir(parents=True, exist_ok=True)
        (plain / rel).write_bytes(data)
    # By reference (the default for the hub cache), as Kubo's `add --nocopy`: raw leaves;
    # the snapshot's files and its record (`add --hidden`, since the record is a dotfile).
    assert result.root == Importer(options=ImportOptions(raw_leaves=True, hidden=True)
                                   ).add_path(plain).root
    copied = backend.add_hf_model("tiny-org/tiny-model", nocopy=False)
    assert copied.root == Importer(options=ImportOptions(hidden=True)).add_path(plain).root
    assert {e.path for e in result.entries if e.kind == "file"} == {*FILES, RECORD_PATH}
    assert result.size == sum(len(d) for d in FILES.values()) + len(record)
    assert [p.name for p in backend.repo.pins] == ["tiny-org/tiny-model"] * 2  # both ways
    with pytest.raises(NotFound, match="not in the HuggingFace cache"):
        backend.add_hf_model("tiny-org/absent")
    with pytest.raises(NotFound):
        backend.add_hf_model("tiny-org/tiny-model", "no-such-revision")


def test_write_back_loads_offline_with_huggingface_hub(tmp_path: Path) -> None:
    source = tmp_path / "model"
    for rel, data in FILES.items():
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        (source / rel).write_bytes(data)
    backend = HFCacheBackend(Repo(tmp_path / "repo"), hub_cache=tmp_path / "hub")
    root = backend.add_path(source, options=ImportOptions(cid_version=1)).root
    written = backend.export_to_hf(str(root), "fetched/model")
    assert sorted(written.files) == sorted(FILES)
    for rel, data in FILES.items():
        path = hf_hub_download("fetched/model", rel, cache_dir=str(tmp_path / "hub"),
                               local_files_only=True)
        assert Path(path).read_bytes() == data
    snap = snapshot_download("fetched/model", cache_dir=str(tmp_path / "hub"),
                             local_files_only=True)
    assert Path(snap).name == written.commit


@pytest.mark.parametrize("bad", ["", "../x", "a/b/c", "org/../name", "/abs"])
def test_repo_ids_are_validated(bad: str) -> None:
    with pytest.raises(InvalidInput):
        parse_source(bad)


def test_revision_is_split() -> None:
    assert parse_source("org/name@v1.0") == ("org/name", "v1.0")
    assert parse_source("gpt2") == ("gpt2", None)
