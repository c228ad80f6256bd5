"""Property tests: whatever path an agent makes up, no write lands outside the writable roots
or inside the hub cache or the IPFS repo, and no read reaches the repo.

Paths are built from names that matter here (the hub cache's own folders, symlinks into it,
out of the roots and in a loop, a dangling one, a relative one going up), ``..`` and ``.``,
absolute prefixes, case variants and Unicode look-alikes (fullwidth solidus and full stop,
one-dot leaders, combining dots, zero-width space, fullwidth letters). Each accepted path is
really written through the exporter, and the file system is then checked: the protected
trees hash the same, and every new entry lies inside a writable root.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.errors import IpfsMcpError
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.tools.roots import AllowedRoots

from .scene import tree_digest

NAMES = [
    "work", "home", "hub", "HUB", "Hub", "models--v--m", "MODELS--V--M", "blobs", "BLOBS",
    "refs", "main", "snapshots", "ipfs", "IPFS", "identity.key", ".cache", "huggingface",
    "..", ".", "", "new", "f.bin", "to-hub", "to-blobs", "to-outside", "to-home", "loop",
    "dangling", "rel-up", "outside",
    "hub\uff0fblobs",          # fullwidth solidus: a name, not a separator
    "\uff0e\uff0e",            # fullwidth full stops
    "\u2024\u2024",            # one-dot leaders
    ".\u0307", "\u0307.",      # a dot with a combining dot above
    "hub\u200b",               # a zero-width space
    "\uff48\uff55\uff42",      # fullwidth "hub"
    "h\u0075\u0308b",          # a combining diaeresis
    "\u212a",                  # the Kelvin sign, which casefolds to "k"
]


def _layout(base: Path) -> dict[str, Path]:
    home = base / "home"
    hf_home = home / ".cache" / "huggingface"
    hub = hf_home / "hub"
    victim = hub / "models--v--m"
    (victim / "blobs").mkdir(parents=True)
    (victim / "blobs" / ("b" * 64)).write_bytes(b"weights")
    (victim / "refs").mkdir()
    (victim / "refs" / "main").write_text("c" * 40)
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    places = {"base": base, "home": home, "hf_home": hf_home, "hub": hub, "work": home / "work",
              "outside": outside, "repo": hf_home / "ipfs"}
    _make_work(places)
    return places


def _make_work(places: dict[str, Path]) -> None:
    """The user's project: symlinks into the hub cache, out of the roots, and in a loop."""
    work, hub = places["work"], places["hub"]
    work.mkdir()
    (work / "notes.txt").write_text("mine")
    (work / "to-hub").symlink_to(hub)
    (work / "to-blobs").symlink_to(hub / "models--v--m" / "blobs")
    (work / "to-outside").symlink_to(places["outside"])
    (work / "to-home").symlink_to(places["home"])
    (work / "loop").symlink_to(work)
    (work / "dangling").symlink_to(hub / "models--v--m" / "blobs" / "new")
    (work / "rel-up").symlink_to(Path("..") / ".cache" / "huggingface" / "hub")


def _entries(base: Path) -> set[Path]:
    found: set[Path] = set()
    for dirpath, dirnames, filenames in os.walk(base):  # symlinks are listed, not followed
        for name in [*dirnames, *filenames]:
            found.add(Path(dirpath) / name)
    return found


def _inside(path: Path, folder: Path) -> bool:
    real, root = Path(os.path.realpath(path)), Path(os.path.realpath(folder))
    return real == root or real.is_relative_to(root)


@dataclass(frozen=True)
class World:
    places: dict[str, Path]
    backend: HFCacheBackend
    file: str
    folder: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """One tree for every example (each example puts it back as it found it)."""
    base = tmp_path_factory.mktemp("paths")
    places = _layout(base)
    backend = HFCacheBackend(Repo(places["repo"], fsync=False), hub_cache=places["hub"])
    source = tmp_path_factory.mktemp("source")
    (source / "sub").mkdir()
    (source / "a.txt").write_text("a")
    (source / "sub" / "b.txt").write_text("b")
    folder = cid_str(backend.add_path(source).root)
    return World(places, backend, backend.add_bytes(b"agent bytes"), folder)


path_strategy = st.tuples(
    st.sampled_from(["", "/", "~/", "{base}/", "{home}/", "{work}/", "{hub}/", "{hf_home}/",
                     "{work}/to-hub/", "{home}/./.cache/", "{base}//home/"]),
    st.lists(st.sampled_from(NAMES), min_size=1, max_size=6),
    st.booleans(),
)


@settings(max_examples=400, deadline=None)
@given(choice=path_strategy, allow_home=st.booleans(), overwrite=st.booleans())
def test_no_write_lands_outside_the_roots_or_inside_protected_folders(
        world: World, choice: tuple[str, list[str], bool], allow_home: bool,
        overwrite: bool) -> None:
    places = world.places
    base = places["base"]
    prefix, names, as_folder = choice
    text = prefix.format(**{k: str(v) for k, v in places.items()}) + "/".join(names)
    allowed = places["home"] if allow_home else places["work"]
    roots = AllowedRoots.for_server([allowed], hub_cache=places["hub"], repo=places["repo"])
    guarded = {k: tree_digest(places[k]) for k in ("hub", "repo", "outside")}
    before = _entries(base)
    try:
        real = roots.check_write(text, overwrite=overwrite)
    except IpfsMcpError:
        real = None
    if real is not None:
        assert _inside(real, allowed), (text, real)
        for folder in ("hub", "repo"):
            assert not _inside(real, places[folder]), (text, real)
        try:
            world.backend.get_to_path(world.folder if as_folder else world.file,
                                      output_path=real, overwrite=overwrite)
        except (IpfsMcpError, OSError):
            pass  # refused or impossible (a file where a folder is needed): checked below
    try:
        read = roots.check_read(text)
    except IpfsMcpError:
        read = None
    if read is not None:
        assert any(_inside(read, r) for r in (allowed, places["hub"])), (text, read)
        assert not _inside(read, places["repo"]), (text, read)
    after = _entries(base)
    try:
        for folder, digest in guarded.items():
            assert tree_digest(places[folder]) == digest, (text, folder)
        # Added, and (overwrite=true) replaced: all of it inside the writable root.
        for entry in after ^ before:
            assert _inside(entry.parent, allowed), (text, entry)
            for folder in ("hub", "repo"):
                assert not _inside(entry.parent, places[folder]), (text, entry)
    finally:
        # Every example starts from the same tree.
        for entry in sorted(after - before, key=lambda p: len(p.parts)):
            if entry.is_symlink() or entry.is_file():
                entry.unlink(missing_ok=True)
            elif entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
        if before - after:  # something was replaced: lay the project out again
            work = places["work"]
            if work.is_dir() and not work.is_symlink():
                shutil.rmtree(work)
            else:
                work.unlink(missing_ok=True)
            _make_work(places)
