"""Nocopy against a real Kubo 0.43.1 ``ipfs add --nocopy`` (``Experimental.FilestoreEnabled``).

Kubo comes from :func:`.gobuild.kubo_binary` and runs offline, without a daemon, on a repo
next to the files (Kubo's filestore takes only files under the repo's parent folder). Both
sides add the same folder by reference: random trees under several option sets (sizes on
the chunk and fan-out edges), and an HF-style snapshot whose files are symlinks into
``blobs/``. Compared are every entry's CID and every reference (leaf CID, size, file,
offset), as ``ipfs filestore ls`` lists them. Then the very files both sides refer to are
damaged (a byte flipped, a file truncated, a blob deleted) and ``ipfs filestore verify``'s
status for each leaf must equal ours.

Inputs are random and new on every run; a failure names the seed, and
``IPFS_MCP_PARITY_SEED=N`` replays it.
"""

from __future__ import annotations

import os
import random
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.core.importer import ImportOptions
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.hub.layout import RECORD_PATH
from ipfs_mcp.backends.repo.repository import Repo
from tests.backends.test_filestore import blob_of, make_hf_model

from .parity import added_entries, entries_of, run_ipfs
from .test_importer_parity import edge_sizes, make_tree, write
from .test_kubo043_parity import kubo_flags

SEED = int(os.environ.get("IPFS_MCP_PARITY_SEED") or secrets.randbits(32))

Ref = tuple[str, int, str, int]  # leaf CID, size, resolved file, offset


class KuboFilestore:
    """One offline Kubo repo with the filestore on, beside the files it refers to."""

    def __init__(self, binary: Path, base: Path) -> None:
        self._binary = binary
        self.base = base  # Kubo refers only to files under here (the repo's parent)
        self._repo = base / "kubo"
        self.run(["init", "--profile", "test"])
        self.run(["config", "--json", "Experimental.FilestoreEnabled", "true"])

    def run(self, argv: Sequence[str], *, check: bool = True) -> str:
        return run_ipfs(self._binary, self._repo, argv, cwd=self.base, check=check)

    def add(self, folder: Path, flags: Sequence[str]) -> dict[str, str]:
        """``{relative path: CID}`` of every entry of ``folder`` ("" is the folder)."""
        out = self.run(["--offline", "add", "-r", "--nocopy", "--dereference-symlinks",
                        "--hidden", "--progress=false", *flags, str(folder)])
        return added_entries(out, folder)

    def refs(self) -> set[Ref]:
        return {ref for _, ref in self._lines(["filestore", "ls"], status=False)}

    def verify(self) -> dict[Ref, str]:
        return {ref: status for status, ref in self._lines(["filestore", "verify"], status=True)}

    def _lines(self, argv: list[str], *, status: bool) -> list[tuple[str, Ref]]:
        found = []
        for line in self.run(["--offline", *argv]).splitlines():
            words = line.split()
            head = words.pop(0) if status else "ok"
            # "CID SIZE PATH OFFSET"; a path may hold spaces, so split from both ends.
            cid, size, offset = words[0], int(words[1]), int(words[-1])
            # Kubo prints "%6d %s %d": one space each side of the path, which may itself
            # start or end with spaces, so nothing is stripped.
            rel = line.split(f" {words[1]} ", 1)[1].rsplit(" ", 1)[0]
            found.append((head, (cid, size, os.path.realpath(self.base / rel), offset)))
        return found


def ours_add(folder: Path, repo: Path, overrides: dict[str, Any]) -> tuple[
        dict[str, str], set[Ref], HFCacheBackend]:
    backend = HFCacheBackend(Repo(repo, fsync=False))
    options = ImportOptions.from_profile(None, nocopy=True, follow_symlinks=True, hidden=True,
                                         **overrides)
    entries = entries_of(backend.add_path(folder, options=options))
    refs = {(r.cid, r.size, r.path, r.offset) for r in backend.repo.filestore.ls()}
    return entries, refs, backend


def comparable(refs: set[Ref]) -> set[Ref]:
    """References whose leaf is unique to one place: a leaf of a few random bytes may sit in
    two files, and then each side keeps the one it wrote last (one row per leaf)."""
    return {r for r in refs if r[1] >= 64}


OPTION_SETS: list[dict[str, Any]] = [
    {},
    {"cid_version": 1},
    {"chunker": "size-1024"},
    {"chunker": "size-1024", "max_links": 4},
    {"chunker": "size-1024", "trickle": True},
    {"chunker": "rabin-512-1024-2048"},
]


@pytest.mark.parametrize("overrides", OPTION_SETS, ids=lambda o: ",".join(
    f"{k}={v}" for k, v in o.items()) or "defaults")
def test_random_trees_match_kubo_nocopy(kubo043_binary: Path, tmp_path: Path,
                                        overrides: dict[str, Any]) -> None:
    rng = random.Random(f"{SEED}-{sorted(overrides.items())}")
    kubo = KuboFilestore(kubo043_binary, tmp_path)
    folder = make_tree(tmp_path / "tree", rng, depth=2, width=8, dotfiles=True,
                       symlinks=False, max_size=600_000)
    chunk = 1024 if "chunker" in overrides else 262144
    for size in edge_sizes(chunk, 4 if "max_links" in overrides else 174):
        if size <= 1_200_000:
            write(folder / "edges" / f"{size:08d}.bin", rng.randbytes(size))
    os.symlink("edges", folder / "edges link")  # followed on both sides
    expected = kubo.add(folder, kubo_flags(overrides))
    got, refs, backend = ours_add(folder, tmp_path / "ours", overrides)
    assert got == expected, f"seed {SEED}: entries differ for {overrides}"
    assert {r[:2] for r in refs} == {r[:2] for r in kubo.refs()}, f"seed {SEED}"
    assert comparable(refs) == comparable(kubo.refs()), f"seed {SEED}: references differ"
    assert backend.repo.verify().ok


def test_hf_snapshot_with_symlinked_blobs_matches_kubo_and_tampering_too(
        kubo043_binary: Path, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    kubo = KuboFilestore(kubo043_binary, tmp_path)
    hub = tmp_path / "hub"
    weights = rng.randbytes(3 * 262144 + rng.randrange(1, 262144))
    shard = rng.randbytes(2 * 262144 + 17)
    tokenizer = rng.randbytes(5000)
    files = {"model.safetensors": weights, "shards/model-00002.bin": shard,
             "tokenizer.json": tokenizer, "config.json": b'{"layers": 2}\n',
             ".gitattributes": b"*.bin filter=lfs\n"}
    snapshot = make_hf_model(hub, "org/parity", files)
    backend = HFCacheBackend(Repo(tmp_path / "ours", fsync=False), hub_cache=hub)
    result = backend.add_hf_model("org/parity")  # by reference: the default
    # Kubo adds what we stored: the snapshot's files (links into blobs/, followed) beside
    # the commit record we wrote into the stored folder (a dotfile path: --hidden).
    record = next(e for e in result.entries if e.path == RECORD_PATH)
    view = tmp_path / "view"
    for rel in files:
        write_link = view / rel
        write_link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(snapshot / rel, write_link)
    write(view / RECORD_PATH, backend.cat(cid_str(record.cid)))
    expected = kubo.add(view, [])
    assert cid_str(result.root) == expected[""], f"seed {SEED}"
    got = {e.path: cid_str(e.cid) for e in result.entries if e.path}
    assert got == {k: v for k, v in expected.items() if k}
    ours = {(r.cid, r.size, r.path, r.offset) for r in backend.repo.filestore.ls()}
    # Kubo refers to the record's file; we hold the record's few bytes as blocks.
    record_refs = {r for r in kubo.refs() if r[2] == str(view / RECORD_PATH)}
    assert len(record_refs) == 1
    assert ours == kubo.refs() - record_refs
    assert all(Path(r[2]).parent.name == "blobs" for r in ours)

    # Damage the blobs both sides refer to; the statuses must agree leaf by leaf.
    with open(blob_of(hub, "org/parity", weights), "r+b") as handle:
        handle.seek(262144 + 10)
        handle.write(bytes([weights[262144 + 10] ^ 1]))
    os.truncate(blob_of(hub, "org/parity", shard), 262144 + 5)
    blob_of(hub, "org/parity", tokenizer).unlink()
    theirs = {ref: status for ref, status in kubo.verify().items() if ref not in record_refs}
    mine = {(r.cid, r.size, r.path, r.offset): r.status for r in backend.repo.filestore.verify()}
    assert mine == theirs
    assert sorted(theirs.values()).count("ok") == len(theirs) - 4  # 1 flipped, 2 cut, 1 gone
    assert {"changed", "no-file"} <= set(theirs.values())
