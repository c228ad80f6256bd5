"""Our importer against a real Kubo 0.43.1 ``ipfs add --only-hash``, under every import
profile and add option.

Kubo comes from :func:`.gobuild.kubo_binary` and runs without a daemon: one repo per import
profile (``ipfs init --profile test[,PROFILE]`` in a temporary ``IPFS_PATH``), then
``ipfs --offline add -r --only-hash FLAGS FOLDER`` on a folder that holds a
whole batch of cases, so one option set costs one Kubo process.

With ``--max-directory-links`` or ``--max-hamt-fanout`` the batch is really added
(``--pin=false``) instead: under ``--only-hash`` Kubo 0.43 makes the folder it was given the
root of a throw-away MFS built without those two options (``core/coreapi/unixfs.go``:
``mfs.NewRoot(ctx, md, emptyDirNode, nil, nil)``), so that one folder's CID differs from the
one its real ``add`` stores; folders inside it are not affected. Every entry Kubo lists (each
file, folder and symlink) is compared with ours, for the option set taken as Kubo takes it:
the profile's config first, the flags over it (:meth:`ImportOptions.from_profile`).

Inputs are random and new on every run; a failure names the seed, and
``IPFS_MCP_PARITY_SEED=N`` replays it. Sizes sit on and around the edges where the DAG's
shape changes: one chunk, a full node of links, a new level (balanced) or a new repeat
depth (trickle), the chunkers' minimum and maximum; folders sit exactly at, one byte over
and one byte under the 256 KiB sharding threshold, under both size estimates, and around
``--max-directory-links`` under each ``--max-hamt-fanout``.
"""

from __future__ import annotations

import os
import random
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ipfs_mcp.backends.core.importer import Importer, ImportOptions

from .parity import Mismatches, added_entries, entries_of, run_ipfs
from .test_importer_parity import make_tree, write

SEED = int(os.environ.get("IPFS_MCP_PARITY_SEED") or secrets.randbits(32))
THRESHOLD = 262144

# Our option names -> Kubo's `ipfs add` flags.
FLAGS = {"cid_version": "--cid-version", "raw_leaves": "--raw-leaves", "chunker": "--chunker",
         "trickle": "--trickle", "max_links": "--max-file-links", "hidden": "--hidden",
         "max_directory_links": "--max-directory-links", "max_hamt_fanout": "--max-hamt-fanout"}


def kubo_flags(overrides: dict[str, Any]) -> list[str]:
    out = []
    for key, value in overrides.items():
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        out.append(f"{FLAGS[key]}={text}")
    return out


class KuboHasher:
    """``ipfs add --only-hash`` of a real Kubo 0.43, one offline repo per import profile."""

    def __init__(self, binary: Path, base: Path) -> None:
        self._binary = binary
        self._base = base
        self._repos: dict[str | None, Path] = {}

    def _repo(self, profile: str | None) -> Path:
        if profile not in self._repos:
            repo = self._base / (profile or "no-profile")
            profiles = "test" if profile is None else f"test,{profile}"
            run_ipfs(self._binary, repo, ["init", "--profile", profiles])
            self._repos[profile] = repo
        return self._repos[profile]

    def add(self, folder: Path, profile: str | None, overrides: dict[str, Any]) -> dict[str, str]:
        """``{relative path: CID}`` of every entry of ``folder`` ("" is the folder)."""
        only_hash = not {"max_directory_links", "max_hamt_fanout"} & overrides.keys()
        out = run_ipfs(self._binary, self._repo(profile), [
            "--offline", "add", "-r", "--only-hash" if only_hash else "--pin=false",
            "--progress=false", *kubo_flags(overrides), str(folder)])
        return added_entries(out, folder)


def ours(folder: Path, profile: str | None, overrides: dict[str, Any]) -> dict[str, str]:
    return entries_of(
        Importer(options=ImportOptions.from_profile(profile, **overrides)).add_path(folder))


def compare(m: Mismatches, label: str, expected: dict[str, str], got: dict[str, str]) -> None:
    """Kubo's listing (``expected``) against ours, entry by entry, into ``m``."""
    if set(expected) != set(got):
        m.cases.append(f"{label}: entries differ; only Kubo's "
                       f"{sorted(set(expected) - set(got))[:8]}, only ours "
                       f"{sorted(set(got) - set(expected))[:8]}")
    for path in sorted(set(expected) & set(got)):
        m.check(f"{label} {path!r}", expected[path], got[path])


@pytest.fixture(scope="module")
def kubo(kubo043_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> KuboHasher:
    return KuboHasher(kubo043_binary, tmp_path_factory.mktemp("kubo043-repos"))


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    """A generator per test, from the run's seed and the test's name."""
    return random.Random(f"{SEED}:{request.node.name}")


def check(kubo: KuboHasher, folder: Path, profile: str | None, overrides: dict[str, Any],
          what: str) -> dict[str, str]:
    """Kubo's and our import of ``folder`` agree on every entry; returns ours."""
    m = Mismatches(f"{what} [profile {profile}, {kubo_flags(overrides)}] (seed {SEED}; "
                   f"IPFS_MCP_PARITY_SEED={SEED} replays it)")
    got = ours(folder, profile, overrides)
    compare(m, folder.name, kubo.add(folder, profile, overrides), got)
    m.assert_none(shown=40)
    return got


# -- files: every profile and option, sizes on the layout's edges -----------------------------
@dataclass(frozen=True)
class OptionSet:
    id: str
    profile: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def options(self) -> ImportOptions:
        return ImportOptions.from_profile(self.profile, **self.overrides)


MiB = 1024 * 1024
OPTION_SETS = [
    OptionSet("defaults"),
    OptionSet("unixfs-v0-2015", "unixfs-v0-2015"),
    OptionSet("legacy-cid-v0", "legacy-cid-v0"),
    OptionSet("unixfs-v1-2025", "unixfs-v1-2025"),
    # 1024 links per node at 1 KiB chunks: the fan-out edge of the profile at 1 MiB files
    OptionSet("unixfs-v1-2025 size-1024", "unixfs-v1-2025", {"chunker": "size-1024"}),
    OptionSet("cid-v1", None, {"cid_version": 1}),
    OptionSet("raw-leaves v0", None, {"raw_leaves": True}),
    OptionSet("cid-v1 dag-pb leaves", None, {"cid_version": 1, "raw_leaves": False}),
    # the profile sets raw leaves off explicitly, so CIDv1 keeps dag-pb leaves
    OptionSet("unixfs-v0-2015 cid-v1", "unixfs-v0-2015", {"cid_version": 1}),
    OptionSet("unixfs-v1-2025 cid-v0", "unixfs-v1-2025", {"cid_version": 0}),
    OptionSet("max chunk", None, {"chunker": f"size-{2 * MiB - 256}", "cid_version": 1}),
    OptionSet("max-file-links 3", None, {"chunker": "size-1000", "max_links": 3}),
    OptionSet("max-file-links 7 raw", None,
              {"chunker": "size-333", "max_links": 7, "raw_leaves": True}),
    OptionSet("max-file-links 1024 v1", None,
              {"chunker": "size-256", "max_links": 1024, "cid_version": 1}),
    OptionSet("trickle", None, {"trickle": True}),
    OptionSet("trickle v1", None, {"trickle": True, "cid_version": 1}),
    OptionSet("trickle unixfs-v1-2025", "unixfs-v1-2025", {"trickle": True,
                                                           "chunker": "size-4096"}),
    OptionSet("trickle max-file-links 3", None,
              {"trickle": True, "chunker": "size-1000", "max_links": 3}),
    OptionSet("trickle max-file-links 1", None,
              {"trickle": True, "chunker": "size-100", "max_links": 1, "cid_version": 1}),
    OptionSet("rabin", None, {"chunker": "rabin"}),
    OptionSet("rabin v1", None, {"chunker": "rabin", "cid_version": 1}),
    OptionSet("rabin-AVG", None, {"chunker": "rabin-8192"}),
    OptionSet("rabin-MIN-AVG-MAX", None, {"chunker": "rabin-512-4096-16384", "max_links": 5}),
    OptionSet("rabin labels trickle", "unixfs-v1-2025",
              {"chunker": "rabin-min:1024-avg:8192-max:65536", "trickle": True}),
    OptionSet("buzhash", None, {"chunker": "buzhash"}),
    OptionSet("buzhash unixfs-v1-2025", "unixfs-v1-2025", {"chunker": "buzhash"}),
    OptionSet("buzhash trickle", None, {"chunker": "buzhash", "trickle": True, "cid_version": 1}),
]

FILE_BUDGET = 12 * MiB  # bytes per option set, so that the module stays quick
CDC_BUDGET = 3 * MiB  # content-defined chunking runs in Python at a few MB/s


def balanced_edges(chunk: int, links: int) -> set[int]:
    """Chunk counts where a balanced DAG changes shape: full nodes, new levels."""
    counts = {1, 2, links - 1, links, links + 1, 2 * links, links * links,
              links * links + 1, links ** 3, links ** 3 + 1}
    return {n * chunk + d for n in counts for d in (-1, 0, 1)}


def trickle_edges(chunk: int, links: int) -> set[int]:
    """Chunk counts where a trickle DAG changes shape: the root's own leaves, then each
    repeat of each depth (boxo: 4 subtrees per depth, a depth-d subtree holding
    ``links`` leaves plus 4 subtrees of every depth below d)."""
    def subtree(depth: int) -> int:
        return links + 4 * sum(subtree(k) for k in range(1, depth))

    counts, total = {1, 2, links}, links
    for depth in range(1, 5):
        for _ in range(4):
            total += subtree(depth)
            counts.add(total)
    return {n * chunk + d for n in counts for d in (-1, 0, 1)}


def cdc_data(rng: random.Random, size: int) -> bytes:
    """Random bytes, runs of one byte (no cut points: chunks end at max) and repeats."""
    kind = rng.randrange(3)
    if kind == 0:
        return rng.randbytes(size)
    if kind == 1:
        return bytes([rng.randrange(256)]) * size
    unit = rng.randbytes(rng.randrange(1, 5000))
    return (unit * (size // len(unit) + 1))[:size]


def file_sizes(o: ImportOptions, rng: random.Random) -> list[int]:
    chunker = o.make_chunker()
    if o.chunker is None:  # size-N
        c = o.chunk_size
        edges = trickle_edges(c, o.max_links) if o.trickle else balanced_edges(c, o.max_links)
        sizes = {0, 1, c - 1, c, c + 1} | {s for s in edges if 0 <= s <= 4 * MiB}
        sizes |= {rng.randrange(1, 3 * c + 2) for _ in range(3)}
        budget = FILE_BUDGET
    else:
        spec = chunker.spec
        lo, hi = ((128 << 10, 512 << 10) if spec == "buzhash"
                  else tuple(int(x) for x in spec.split("-")[1::2]))
        sizes = {0, 1, 16, 17, lo - 1, lo, lo + 1, hi - 1, hi, hi + 1, 2 * hi + 1}
        sizes |= {rng.randrange(1, 4 * hi) for _ in range(4)}
        budget = CDC_BUDGET
    kept, total = [], 0
    for size in sorted(s for s in sizes if s >= 0):
        if total + size <= budget:
            kept.append(size)
            total += size
    return kept


@pytest.mark.parametrize("case", OPTION_SETS, ids=lambda c: c.id)
def test_files(tmp_path: Path, kubo: KuboHasher, rng: random.Random, case: OptionSet) -> None:
    """Files on their layout's edges, one batch folder per option set."""
    options = case.options
    folder = tmp_path / "files"
    folder.mkdir()
    for size in file_sizes(options, rng):
        data = rng.randbytes(size) if options.chunker is None else cdc_data(rng, size)
        write(folder / f"{size:08d}.bin", data)
    check(kubo, folder, case.profile, case.overrides, f"files ({case.id})")


def test_known_vectors_under_kubo043(tmp_path: Path, kubo: KuboHasher) -> None:
    """INTEROP.md's CIDs come out of this Kubo too (guards the harness itself)."""
    folder = tmp_path / "d"
    write(folder / "a.txt", b"aaa\n")
    write(folder / "b.txt", b"bbb\n")
    assert kubo.add(folder, None, {})[""] == "Qmbf84Ab1zsAStesz6Q7CTHJWKhZyMd9KtYPqrxEvFuBsF"
    assert kubo.add(folder, None, {"cid_version": 1})[""] == \
        "bafybeieb2ojvdcdqsm2dwkzjc4unjujhh7dkkbr4njv4tzh5fb3fjdx4wu"


# -- folders around the HAMT threshold --------------------------------------------------------
def _varint_len(n: int) -> int:
    return max(1, (n.bit_length() + 6) // 7)


def link_cost(estimation: str, name_len: int, cid_len: int, tsize: int) -> int:
    """What one entry adds to boxo's size estimate (``linksize`` / ``linkSerializedSize``)."""
    if estimation == "links":
        return name_len + cid_len
    link = (1 + _varint_len(cid_len) + cid_len + 1 + _varint_len(name_len) + name_len
            + 1 + _varint_len(tsize))
    return 1 + _varint_len(link) + link


BLOCK_BASE = 4  # the block estimate's Data field of a plain directory (0a 02 08 01)
NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-_.ü日🎉"


def _random_name(rng: random.Random, index: int, max_bytes: int, min_bytes: int = 7) -> str:
    """A unique name of ``min_bytes`` (at least 7) to ``max_bytes`` UTF-8 bytes,
    multi-byte characters included."""
    name = f"{index:05d}-"
    target = rng.randrange(min_bytes, max_bytes + 1)
    while True:
        char = rng.choice(NAME_CHARS)
        if len((name + char).encode()) > target:
            return name
        name += char


def threshold_dir(root: Path, rng: random.Random, *, estimation: str, cid_len: int,
                  tsize_of: Any, delta: int) -> Path:
    """A folder of small files whose estimate is ``THRESHOLD + delta`` exactly: random
    names and file sizes, and a last name whose length lands on it.
    ``tsize_of(size)`` is a file's Tsize (only the block estimate uses it)."""
    root.mkdir(parents=True)
    target = THRESHOLD + delta - (BLOCK_BASE if estimation == "block" else 0)

    def cost(name_len: int, size: int) -> int:
        return link_cost(estimation, name_len, cid_len, tsize_of(size))

    total, index = 0, 0
    while True:
        remaining = target - total
        size = rng.randrange(0, 100)
        if remaining <= 250:  # a name of 1..~215 bytes can take the rest, unless the link
            # varint's step skips exactly this value: then one more entry first
            fits = [n for n in range(1, 240) if cost(n, size) == remaining]
            if fits:
                (root / ("~" * fits[0])).write_bytes(rng.randbytes(size))
                return root
        name = _random_name(rng, index, 200)
        if remaining - cost(len(name.encode()), size) < 60:
            name = f"{index:05d}"  # the smallest entry keeps room for the last one
        (root / name).write_bytes(rng.randbytes(size))
        total += cost(len(name.encode()), size)
        index += 1


def _leaf_tsize_v0(size: int) -> int:
    # a one-chunk file under CIDv0: a dag-pb leaf 0a L 08 02 [12 n data] 18 n
    inner = 2 + (1 + _varint_len(size) + size if size else 0) + 1 + _varint_len(size)
    return 1 + _varint_len(inner) + inner


@pytest.mark.parametrize(("profile", "overrides", "estimation", "cid_len", "tsize_of"), [
    (None, {}, "links", 34, _leaf_tsize_v0),
    (None, {"cid_version": 1}, "links", 36, lambda size: size),
    ("unixfs-v0-2015", {}, "links", 34, _leaf_tsize_v0),
    ("unixfs-v1-2025", {}, "block", 36, lambda size: size),
    ("unixfs-v1-2025", {"max_hamt_fanout": 64}, "block", 36, lambda size: size),
], ids=["defaults", "cid-v1", "unixfs-v0-2015", "unixfs-v1-2025", "unixfs-v1-2025 fanout 64"])
def test_hamt_threshold(tmp_path: Path, kubo: KuboHasher, rng: random.Random,
                        profile: str | None, overrides: dict[str, Any], estimation: str,
                        cid_len: int, tsize_of: Any) -> None:
    """Folders estimated exactly at, one byte over and one byte under 256 KiB: Kubo 0.43
    shards only the one over (``>``, not 0.22's ``>=``)."""
    parent = tmp_path / "thresholds"
    for delta in (-1, 0, 1):
        threshold_dir(parent / f"delta {delta:+d}", rng, estimation=estimation,
                      cid_len=cid_len, tsize_of=tsize_of, delta=delta)
    got = check(kubo, parent, profile, overrides, "threshold folders")
    # the folders really are on both sides of the line (so the test means what it says)
    plain = ours(parent, profile, {**overrides, "shard_threshold": 1 << 30})
    for delta in (-1, 0, 1):
        name = f"delta {delta:+d}"
        assert (got[name] == plain[name]) == (delta <= 0), f"{name}: sharded the wrong way"


def test_hamt_threshold_with_subfolders(tmp_path: Path, kubo: KuboHasher,
                                        rng: random.Random) -> None:
    """Sub-folders count in the estimate too (their name and CID, or their whole link)."""
    parent = tmp_path / "with subfolders"
    for j in range(2):
        folder = make_tree(parent / f"tree {j}", rng, depth=1, width=6, dotfiles=False,
                           symlinks=False, max_size=3000)
        # about 2500 * (70 + 35) bytes: on either side of 256 KiB, from run to run
        for i in range(rng.randrange(2200, 2800)):
            (folder / f"{i:05d}{'x' * rng.randrange(40, 100)}").write_bytes(b"%d" % i)
    for profile in ("unixfs-v0-2015", "unixfs-v1-2025"):
        check(kubo, parent, profile, {}, "folders with sub-folders near the threshold")


# -- --max-directory-links and --max-hamt-fanout ----------------------------------------------
def names_dir(root: Path, rng: random.Random, count: int, name_bytes: tuple[int, int]) -> Path:
    """``count`` small files with random names of ``name_bytes`` (min, max) bytes."""
    root.mkdir(parents=True)
    for i in range(count):
        (root / _random_name(rng, i, name_bytes[1], name_bytes[0])).write_bytes(
            rng.randbytes(rng.randrange(0, 50)))
    return root


@pytest.mark.parametrize("fanout", [8, 16, 32, 64, 128, 256, 512, 1024])
def test_max_directory_links_and_fanout(tmp_path: Path, kubo: KuboHasher, rng: random.Random,
                                        fanout: int) -> None:
    """A folder of N entries is plain with ``--max-directory-links=N`` and a HAMT of the
    given fanout with N-1; a big folder shards by size with that fanout."""
    parent = tmp_path / "links"
    count = rng.randrange(200, 400)
    counted = names_dir(parent / "counted", rng, count, (7, 40))
    names_dir(parent / "big", rng, 1700, (150, 200))  # over 256 KiB by its names alone
    check(kubo, parent, None, {"max_directory_links": count - 1, "max_hamt_fanout": fanout},
          "directory links and fanout")
    check(kubo, parent, "unixfs-v1-2025",
          {"max_directory_links": count, "max_hamt_fanout": fanout, "trickle": True},
          "directory links and fanout")
    at = ours(counted, None, {"max_directory_links": count, "max_hamt_fanout": fanout})
    over = ours(counted, None, {"max_directory_links": count - 1, "max_hamt_fanout": fanout})
    assert at[""] == ours(counted, None, {})[""] != over[""]  # N: plain; N-1: a HAMT


# -- random trees -----------------------------------------------------------------------------
TREE_SETS = [
    OptionSet("defaults"),
    OptionSet("hidden", None, {"hidden": True}),
    OptionSet("unixfs-v1-2025", "unixfs-v1-2025"),
    OptionSet("legacy-cid-v0 trickle", "legacy-cid-v0", {"trickle": True}),
    OptionSet("rabin small", None, {"chunker": "rabin-64-256-1024", "cid_version": 1}),
    OptionSet("buzhash", "unixfs-v1-2025", {"chunker": "buzhash", "hidden": True}),
    OptionSet("small dirs fanout 8", None, {"max_directory_links": 3, "max_hamt_fanout": 8}),
    OptionSet("small files", None, {"chunker": "size-512", "max_links": 4}),
]


@pytest.mark.parametrize("case", TREE_SETS, ids=lambda c: c.id)
def test_random_trees(tmp_path: Path, kubo: KuboHasher, rng: random.Random,
                      case: OptionSet) -> None:
    """Nested trees with odd names, empty files and folders, dotfiles and symlinks."""
    parent = tmp_path / "trees"
    for i in range(3):
        make_tree(parent / f"tree{i}", rng, depth=3, width=6 + 3 * i, dotfiles=True,
                  symlinks=True, max_size=[300_000, 30_000, 3_000][i])
    check(kubo, parent, case.profile, case.overrides, f"random trees ({case.id})")


# -- the CLI and the MCP tools pass the options through ---------------------------------------
# (tool arguments, the same options as our names for Kubo's flags)
FRONT_END_CASES = [
    ({"profile": "unixfs-v1-2025"}, "unixfs-v1-2025", {}),
    ({"profile": "legacy-cid-v0", "cid_version": 1}, "legacy-cid-v0", {"cid_version": 1}),
    ({"chunker": "rabin-64-256-1024", "trickle": True, "cid_version": 1}, None,
     {"chunker": "rabin-64-256-1024", "trickle": True, "cid_version": 1}),
    ({"chunker": "buzhash", "max_file_links": 3}, None, {"chunker": "buzhash", "max_links": 3}),
    ({"max_directory_links": 2, "max_hamt_fanout": 16, "chunker": "size-1000"}, None,
     {"max_directory_links": 2, "max_hamt_fanout": 16, "chunker": "size-1000"}),
]


def _front_end_folder(root: Path, rng: random.Random) -> Path:
    folder = root / "model"
    for name, size in (("config.json", 300), ("weights.bin", 700_000), ("tokenizer.json", 5000),
                       ("sub/a", 10), ("sub/b", 20), ("sub/c", 0)):
        write(folder / name, cdc_data(rng, size))
    return folder


@pytest.mark.anyio
async def test_mcp_store_model_and_add_content_take_kubo_options(
        work: Path, kubo: KuboHasher, rng: random.Random) -> None:
    """``store_model`` and ``add_content`` with a profile, a chunker, trickle and the link
    limits return the CIDs that Kubo 0.43 gives for the same profile and flags."""
    import anyio
    from mcp import Client

    from ipfs_mcp.server.app import build_server
    from ipfs_mcp.server.config import ServerSettings
    from ipfs_mcp.tools import models

    folder = _front_end_folder(work, rng)
    settings = ServerSettings.load(allow_roots=[str(work)], p2p=False, inline_max=4096,
                                   add_max=64 * 1024)
    with anyio.fail_after(120):
        async with Client(build_server(settings)) as client:
            for args, profile, overrides in FRONT_END_CASES:
                expected = kubo.add(folder, profile, overrides)
                stored = await client.call_tool("store_model", {
                    "source": str(folder), "announce": False, "nocopy": False, "import": args})
                assert not stored.is_error, stored.content
                result = models.StoreResult.model_validate(stored.structured_content)
                assert result.root_cid == expected[""], (args, SEED)
                added = await client.call_tool("add_content", {
                    "path": str(folder / "weights.bin"), "import": args})
                assert not added.is_error, added.content
                add = models.AddResult.model_validate(added.structured_content)
                assert add.cid == expected["weights.bin"], (args, SEED)
            refused = await client.call_tool("add_content", {"text": "x",
                                                             "import": {"chunker": "rabin-1"}})
            assert refused.is_error and "rabin" in " ".join(
                getattr(c, "text", "") for c in refused.content)


def test_cli_add_takes_kubo_options(tmp_path: Path, kubo: KuboHasher,
                                    rng: random.Random) -> None:
    """``ipfs-mcp add --profile ... --chunker ... --trickle --max-*-links ...`` prints the
    CIDs Kubo 0.43 prints for the same profile and flags."""
    import sys

    folder = _front_end_folder(tmp_path, rng)
    env = dict(os.environ)  # HF_HOME (so the repo) is the test's own, from the root conftest
    for args, profile, overrides in FRONT_END_CASES:
        argv = [f"--{key.replace('_', '-')}={value}" for key, value in args.items()
                if not isinstance(value, bool)]
        argv += [f"--{key}" for key, value in args.items() if value is True]
        proc = subprocess.run([sys.executable, "-m", "ipfs_mcp.server.cli", "add", "-r", "-Q",
                               "--no-pin", *argv, str(folder)], capture_output=True,
                              timeout=120, env=env, check=False)
        assert proc.returncode == 0, proc.stderr.decode()
        assert proc.stdout.decode().split() == [kubo.add(folder, profile, overrides)[""]], (
            args, SEED)
