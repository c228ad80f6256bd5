"""DAG bombs and full disks: hostile DAGs, built here by hand as CARs (what a hostile peer
could serve), are refused with one clear error before anything is written, and a disk that
fills mid-write leaves nothing partial behind."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client
from multiformats import CID

from ipfs_mcp.backends.core import car, limits, unixfs
from ipfs_mcp.backends.core.cids import cid_of_block, cid_str
from ipfs_mcp.backends.core.dagpb import encode_link, encode_node
from ipfs_mcp.backends.core.exporter import Exporter
from ipfs_mcp.backends.core.rooted import OutputTarget
from ipfs_mcp.backends.errors import (
    DagTooLarge,
    DiskFull,
    IntegrityError,
    InvalidInput,
    IpfsMcpError,
    TooLarge,
    TooManyEntries,
    WriteTooLarge,
)
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.server.app import build_server
from ipfs_mcp.server.config import ServerSettings
from tests.conftest import fill_disk

LEAF = 256 * 1024
FANOUT = 174
BOMB_SIZE = LEAF * FANOUT**4  # 240 TB from five blocks


def _file_node(links: list[tuple[CID, int]], *, filesize: int | None = None,
               blocksizes: list[int] | None = None, data: bytes | None = None
               ) -> tuple[CID, bytes]:
    """A UnixFS file node; sizes default to the truth, and a test passes lies explicitly."""
    sizes = [size for _, size in links] if blocksizes is None else blocksizes
    total = len(data or b"") + sum(sizes) if filesize is None else filesize
    body = unixfs.encode(unixfs.UnixFSData(unixfs.NodeType.FILE, data=data, filesize=total,
                                           blocksizes=tuple(sizes)))
    block = encode_node([encode_link(bytes(cid), "", size) for cid, size in links], body)
    return cid_of_block(block, version=1, codec="dag-pb"), block


def _car(root: CID, blocks: list[tuple[CID, bytes]]) -> bytes:
    out = io.BytesIO()
    car.write_car(out, [root], iter(blocks))
    return out.getvalue()


def bomb_car() -> tuple[CID, bytes]:
    """One 256 KiB raw leaf, linked 174 times by each of four levels: 5 blocks, 240 TB."""
    leaf = os.urandom(LEAF)
    cid = cid_of_block(leaf, version=1, codec="raw")
    blocks = [(cid, leaf)]
    size = LEAF
    for _ in range(4):
        cid, block = _file_node([(cid, size)] * FANOUT)
        size *= FANOUT
        blocks.append((cid, block))
    assert size == BOMB_SIZE
    return cid, _car(cid, list(reversed(blocks)))


PAYLOAD = b"the bottom of a very deep chain\n"


def chain_car(depth: int) -> tuple[CID, bytes]:
    """A file whose only leaf sits ``depth`` single-link nodes down."""
    cid = cid_of_block(PAYLOAD, version=1, codec="raw")
    blocks = [(cid, PAYLOAD)]
    for _ in range(depth):
        cid, block = _file_node([(cid, len(PAYLOAD))])
        blocks.append((cid, block))
    return cid, _car(cid, list(reversed(blocks)))


def _import(backend: HFCacheBackend, blob: bytes) -> None:
    backend.dag_import(io.BytesIO(blob), pin_roots=False)


def _everything(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*")) if folder.exists() else []


@pytest.fixture
def home(isolated_hf_home: Path) -> HFCacheBackend:
    """The backend on the repo the CLI and the MCP server of this test use."""
    # fsync off only to build the fixtures fast; the code under test opens its own repo.
    return HFCacheBackend(Repo(isolated_hf_home / "ipfs", fsync=False))


@pytest.fixture(scope="module")
def bomb() -> tuple[CID, bytes]:
    return bomb_car()


@pytest.fixture(scope="module")
def chain() -> tuple[CID, bytes]:
    return chain_car(3000)


@pytest.fixture(scope="module")
def too_deep() -> tuple[CID, bytes]:
    return chain_car(limits.MAX_DAG_DEPTH + 10)


# -- the 240 TB claim ---------------------------------------------------------------------
@pytest.mark.parametrize("overwrite", [False, True])
def test_240tb_bomb_is_refused_before_any_byte(home: HFCacheBackend, tmp_path: Path,
                                               bomb: tuple[CID, bytes], overwrite: bool) -> None:
    root, blob = bomb
    _import(home, blob)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(WriteTooLarge) as caught:
        home.get_to_path(cid_str(root), output_path=out / "model.bin", overwrite=overwrite)
    assert caught.value.declared == BOMB_SIZE
    assert caught.value.free < BOMB_SIZE
    assert f"declares {BOMB_SIZE} bytes" in str(caught.value)
    assert _everything(out) == []  # no file, no temp file


def test_240tb_bomb_is_refused_even_with_a_huge_limit(home: HFCacheBackend, tmp_path: Path,
                                                      bomb: tuple[CID, bytes]) -> None:
    root, blob = bomb
    _import(home, blob)
    with pytest.raises(WriteTooLarge, match="bytes free"):
        home.get_to_path(cid_str(root), output_path=tmp_path / "x", max_bytes=1 << 62)
    assert not (tmp_path / "x").exists()


def test_write_limit_refuses_what_the_disk_could_hold(home: HFCacheBackend,
                                                      tmp_path: Path) -> None:
    cid = home.add_bytes(os.urandom(100_000))
    with pytest.raises(WriteTooLarge) as caught:
        home.get_to_path(cid, output_path=tmp_path / "f", max_bytes=99_999)
    assert (caught.value.declared, caught.value.limit) == (100_000, 99_999)
    assert not (tmp_path / "f").exists()
    home.get_to_path(cid, output_path=tmp_path / "f", max_bytes=100_000)
    assert (tmp_path / "f").stat().st_size == 100_000


def test_folder_of_bombs_is_refused_by_its_sum(home: HFCacheBackend, tmp_path: Path,
                                               bomb: tuple[CID, bytes]) -> None:
    root, blob = bomb
    _import(home, blob)
    links = [encode_link(bytes(root), f"part{i}", 0) for i in range(3)]
    folder = encode_node(links, unixfs.DIRECTORY_DATA)
    folder_cid = cid_of_block(folder, version=1, codec="dag-pb")
    home.repo.blocks.put(folder_cid, folder)
    with pytest.raises(WriteTooLarge):
        home.get_to_path(cid_str(folder_cid), output_path=tmp_path / "tree")
    assert _everything(tmp_path / "tree") == [] and not list(tmp_path.glob(".tree*"))


def test_into_hf_cache_refuses_a_folder_holding_the_bomb(isolated_hf_home: Path,
                                                         bomb: tuple[CID, bytes]) -> None:
    hub = isolated_hf_home / "hub"
    backend = HFCacheBackend(Repo(isolated_hf_home / "ipfs", fsync=False), hub_cache=hub)
    root, blob = bomb
    _import(backend, blob)
    block = encode_node([encode_link(bytes(root), "model.safetensors", 0)],
                        unixfs.DIRECTORY_DATA)
    folder = cid_of_block(block, version=1, codec="dag-pb")
    backend.repo.blocks.put(folder, block)
    with pytest.raises(WriteTooLarge, match=f"declares {BOMB_SIZE} bytes"):
        backend.export_to_hf(cid_str(folder), "victim/m")
    assert [p for p in _everything(hub) if p.is_file() or p.is_symlink()] == []


def run_cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "ipfs_mcp.server.cli", *args],
                          capture_output=True, timeout=120, env=os.environ.copy())


def test_cli_get_refuses_the_bomb(home: HFCacheBackend, tmp_path: Path,
                                  bomb: tuple[CID, bytes]) -> None:
    root, blob = bomb
    _import(home, blob)
    out = tmp_path / "cli"
    out.mkdir()
    proc = run_cli("get", cid_str(root), "-o", str(out / "model.bin"))
    assert proc.returncode != 0
    err = proc.stderr.decode()
    assert f"declares {BOMB_SIZE} bytes" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert _everything(out) == []


pytest_anyio = pytest.mark.anyio


@pytest_anyio
async def test_mcp_fetch_cid_refuses_the_bomb_and_keeps_serving(
        home: HFCacheBackend, work: Path, bomb: tuple[CID, bytes]) -> None:
    root, blob = bomb
    _import(home, blob)
    small = home.add_bytes(b"still serving\n")
    settings = ServerSettings.load(allow_roots=[str(work)], p2p=False)
    with anyio.fail_after(60):
        async with Client(build_server(settings)) as client:
            result = await client.call_tool(
                "fetch_cid", {"cid": cid_str(root), "output_path": str(work / "model.bin")})
            assert result.is_error
            text = " ".join(getattr(c, "text", "") for c in result.content)
            assert f"declares {BOMB_SIZE} bytes" in text and "Traceback" not in text
            assert _everything(work) == []
            again = await client.call_tool("fetch_cid", {"cid": small})
            assert not again.is_error
            assert again.structured_content is not None
            assert again.structured_content["text"] == "still serving\n"


# -- the write limit setting --------------------------------------------------------------
def test_max_write_setting_parses_sizes_and_refuses_typos() -> None:
    from ipfs_mcp.backends.settings import BackendSettings

    home = {"HF_HOME": "/nonexistent-home"}
    assert BackendSettings.from_env(home).max_write is None
    assert BackendSettings.from_env({**home, "IPFS_MCP_MAX_WRITE": "20G"}).max_write == 20 << 30
    assert BackendSettings.from_env({**home, "IPFS_MCP_MAX_WRITE": "1234"}).max_write == 1234
    with pytest.raises(InvalidInput, match="IPFS_MCP_MAX_WRITE"):
        BackendSettings.from_env({**home, "IPFS_MCP_MAX_WRITE": "lots"})
    loaded = ServerSettings.load({**home, "IPFS_MCP_MAX_WRITE": "1G"}, max_write=5)
    assert loaded.backend.max_write == 5


def test_cli_get_honours_max_write_bytes(home: HFCacheBackend, tmp_path: Path) -> None:
    cid = home.add_bytes(os.urandom(5000))
    proc = run_cli("get", cid, "-o", str(tmp_path / "f"), "--max-write-bytes", "4999")
    err = proc.stderr.decode()
    assert proc.returncode != 0 and "write limit is 4999 bytes" in err, err
    assert not (tmp_path / "f").exists()
    env = {**os.environ, "IPFS_MCP_MAX_WRITE": "4999"}
    proc = subprocess.run([sys.executable, "-m", "ipfs_mcp.server.cli", "get", cid, "-o",
                           str(tmp_path / "f")], capture_output=True, timeout=120, env=env)
    assert proc.returncode != 0 and b"write limit is 4999 bytes" in proc.stderr
    assert run_cli("get", cid, "-o", str(tmp_path / "f")).returncode == 0
    assert (tmp_path / "f").stat().st_size == 5000


@pytest_anyio
async def test_mcp_server_applies_its_write_limit(home: HFCacheBackend, work: Path) -> None:
    cid = home.add_bytes(os.urandom(5000))
    settings = ServerSettings.load(allow_roots=[str(work)], p2p=False, max_write=4999)
    with anyio.fail_after(60):
        async with Client(build_server(settings)) as client:
            result = await client.call_tool(
                "fetch_cid", {"cid": cid, "output_path": str(work / "f")})
            assert result.is_error
            text = " ".join(getattr(c, "text", "") for c in result.content)
            assert "write limit is 4999 bytes" in text
    assert _everything(work) == []


# -- the deep chain -----------------------------------------------------------------------
def test_3000_deep_chain_reads_and_writes_the_right_bytes(
        home: HFCacheBackend, tmp_path: Path, chain: tuple[CID, bytes]) -> None:
    root, blob = chain
    _import(home, blob)
    assert home.cat(cid_str(root)) == PAYLOAD
    assert home.cat(cid_str(root), offset=4, length=6) == PAYLOAD[4:10]
    home.get_to_path(cid_str(root), output_path=tmp_path / "deep.txt")
    assert (tmp_path / "deep.txt").read_bytes() == PAYLOAD
    # Pinning, CAR export and GC walk the same 3001 blocks without recursion.
    home.pin(cid_str(root))
    exported = home.dag_export(cid_str(root))
    assert exported is not None
    roots, blocks = car.read_car(io.BytesIO(exported))
    assert roots == [root] and sum(1 for _ in blocks) == 3001
    assert home.repo.gc().kept == 3001


def test_chain_deeper_than_the_bound_is_a_one_line_error(
        home: HFCacheBackend, tmp_path: Path, too_deep: tuple[CID, bytes]) -> None:
    root, blob = too_deep
    _import(home, blob)
    with pytest.raises(DagTooLarge, match=f"more than {limits.MAX_DAG_DEPTH} levels deep"):
        home.cat(cid_str(root))
    with pytest.raises(DagTooLarge):
        home.get_to_path(cid_str(root), output_path=tmp_path / "deep.txt")
    assert _everything(tmp_path) == []
    with pytest.raises(DagTooLarge):
        home.dag_export(cid_str(root))


def test_cli_cat_and_get_of_the_deep_chain(home: HFCacheBackend, tmp_path: Path,
                                            chain: tuple[CID, bytes],
                                            too_deep: tuple[CID, bytes]) -> None:
    root, blob = chain
    _import(home, blob)
    cat = run_cli("cat", cid_str(root))
    assert cat.returncode == 0, cat.stderr.decode()
    assert cat.stdout == PAYLOAD
    got = run_cli("get", cid_str(root), "-o", str(tmp_path / "deep.txt"))
    assert got.returncode == 0, got.stderr.decode()
    assert (tmp_path / "deep.txt").read_bytes() == PAYLOAD
    deep_root, blob = too_deep
    _import(home, blob)
    failed = run_cli("cat", cid_str(deep_root))
    err = failed.stderr.decode()
    assert failed.returncode != 0 and "levels deep" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest_anyio
async def test_mcp_serves_the_deep_chain_and_keeps_serving(
        home: HFCacheBackend, work: Path, chain: tuple[CID, bytes],
        too_deep: tuple[CID, bytes]) -> None:
    root, blob = chain
    _import(home, blob)
    deep_root, blob = too_deep
    _import(home, blob)
    settings = ServerSettings.load(allow_roots=[str(work)], p2p=False)
    with anyio.fail_after(60):
        async with Client(build_server(settings)) as client:
            deep = await client.call_tool("fetch_cid", {"cid": cid_str(root)})
            assert not deep.is_error, deep.content
            assert deep.structured_content is not None
            assert deep.structured_content["text"] == PAYLOAD.decode()
            bad = await client.call_tool("fetch_cid", {"cid": cid_str(deep_root)})
            assert bad.is_error
            text = " ".join(getattr(c, "text", "") for c in bad.content)
            assert "levels deep" in text and "Traceback" not in text
            listed = await client.call_tool("ls", {"cid": cid_str(root)})
            assert not listed.is_error, listed.content


# -- wide DAGs (the bounds lowered, so a test can reach them with a few blocks) ----------
def _folder(home: HFCacheBackend, entries: list[tuple[str, CID]]) -> CID:
    block = encode_node([encode_link(bytes(cid), name, 0) for name, cid in entries],
                        unixfs.DIRECTORY_DATA)
    cid = cid_of_block(block, version=1, codec="dag-pb")
    home.repo.blocks.put(cid, block)
    return cid


def test_folder_wider_than_the_bound_is_refused(home: HFCacheBackend, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_DIR_ENTRIES", 8)
    small = CID.decode(home.add_bytes(b"f"))
    ok = _folder(home, [(f"f{i}", small) for i in range(8)])
    assert len(home.ls(cid_str(ok))) == 8
    wide = _folder(home, [(f"f{i}", small) for i in range(9)])
    with pytest.raises(DagTooLarge, match="more than 8 entries"):
        home.ls(cid_str(wide))
    with pytest.raises(DagTooLarge):
        home.get_to_path(cid_str(wide), output_path=tmp_path / "out")
    assert _everything(tmp_path) == []


def test_folder_fanning_out_through_shared_subfolders_is_bounded(
        home: HFCacheBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each level links the one below three times: 20 blocks, 3**20 entries to write."""
    monkeypatch.setattr(limits, "MAX_TREE_ENTRIES", 1000)
    cid = CID.decode(home.add_bytes(b"tiny"))
    for level in range(20):
        cid = _folder(home, [(f"d{level}-{i}", cid) for i in range(3)])
    with pytest.raises(DagTooLarge, match="more than 1000 entries in its tree"):
        list(Exporter(home.repo.blocks.get).tree(cid))
    # A write counts the tree from its 20 distinct blocks and is refused before walking it.
    with pytest.raises(TooManyEntries, match=f"would create {3**21 // 2}"):
        home.get_to_path(cid_str(cid), output_path=tmp_path / "out")
    assert _everything(tmp_path) == []


# -- file-count amplification (attack 7 of the security issue) ----------------------------
def amplifier(home: HFCacheBackend, width: int = 100, levels: int = 3) -> CID:
    """One tiny file, then ``levels`` folders each linking the one below ``width`` times:
    a few small blocks that expand to width**levels files."""
    cid = CID.decode(home.add_bytes(b"x"))
    for level in range(levels):
        cid = _folder(home, [(f"d{level}-{i}", cid) for i in range(width)])
    return cid


@pytest_anyio
async def test_mcp_fetch_cid_refuses_a_million_files_from_three_blocks_before_writing(
        home: HFCacheBackend, work: Path) -> None:
    root = amplifier(home)
    settings = ServerSettings.load(allow_roots=[str(work)], p2p=False)
    with anyio.fail_after(60):
        async with Client(build_server(settings)) as client:
            result = await client.call_tool(
                "fetch_cid", {"cid": cid_str(root), "output_path": str(work / "many")})
            text = " ".join(getattr(c, "text", "") for c in result.content)
            assert result.is_error, result.structured_content
            assert "would create 1010101 files, folders and links" in text, text
            assert "IPFS_MCP_MAX_WRITE_FILES" in text and "Traceback" not in text
    assert _everything(work) == []


def test_the_file_budget_is_a_setting_and_a_smaller_tree_fits(
        home: HFCacheBackend, tmp_path: Path) -> None:
    from ipfs_mcp.backends.settings import BackendSettings

    settings = BackendSettings.from_env({"IPFS_MCP_MAX_WRITE_FILES": "120"})
    assert settings.max_write_files == 120
    root = amplifier(home, width=10, levels=2)  # 100 files, 11 folders
    target = OutputTarget.at(tmp_path / "fits", max_entries=settings.max_write_files)
    with target:
        home.get_to_path(cid_str(root), output_path=target)
    assert len(list((tmp_path / "fits").rglob("*"))) == 110
    with OutputTarget.at(tmp_path / "over", max_entries=110) as target, \
            pytest.raises(TooManyEntries, match="would create 111"):
        home.get_to_path(cid_str(root), output_path=target)
    assert not (tmp_path / "over").exists()
    with pytest.raises(InvalidInput, match="IPFS_MCP_MAX_WRITE_FILES"):
        BackendSettings.from_env({"IPFS_MCP_MAX_WRITE_FILES": "lots"})


def test_a_write_needing_more_inodes_than_are_free_is_refused(
        home: HFCacheBackend, tmp_path: Path) -> None:
    """A tmpfs with 64 inodes of its own (nobody else writes there, so its count holds
    still): a tree of 111 entries fits the budget but not the file system, and is refused
    before the first entry is made."""
    mount = tmp_path / "few-inodes"
    mount.mkdir()
    try:
        made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,nr_inodes=64", "tmpfs",
                               str(mount)], capture_output=True, timeout=30)
    except (FileNotFoundError, PermissionError) as exc:
        pytest.skip(f"cannot mount a tmpfs here ({exc}); needs root with mount(8)")
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()} (needs root)")
    try:
        free = limits.free_inodes(mount)
        assert free is not None and free < 111
        root = amplifier(home, width=10, levels=2)  # 100 files, 11 folders
        with OutputTarget.at(mount / "out", max_entries=1000) as target, \
                pytest.raises(TooManyEntries, match=f"would create 111 .* {free} free inodes"):
            home.get_to_path(cid_str(root), output_path=target)
        assert list(mount.iterdir()) == []
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True, timeout=30, check=True)


def test_node_with_more_links_than_the_bound_is_refused(
        home: HFCacheBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_LINKS_PER_NODE", 4)
    leaf = cid_of_block(b"12345", version=1, codec="raw")
    root, block = _file_node([(leaf, 5)] * 5)
    _import(home, _car(root, [(root, block), (leaf, b"12345")]))
    with pytest.raises(DagTooLarge, match="5 links, over the bound of 4"):
        home.cat(cid_str(root))
    with pytest.raises(DagTooLarge):
        home.dag_export(cid_str(root))


def test_hamt_deeper_than_its_hash_bits_is_refused(home: HFCacheBackend) -> None:
    """A HAMT (fanout 256) has 8 levels at most; a hostile one nests shards forever."""
    shard_data = unixfs.encode(unixfs.UnixFSData(unixfs.NodeType.HAMT_SHARD, data=b"\x01",
                                                 hash_type=unixfs.MURMUR3_X64_64, fanout=256))
    leaf = CID.decode(home.add_bytes(b"x"))
    block = encode_node([encode_link(bytes(leaf), "00name", 0)], shard_data)
    cid = cid_of_block(block, version=1, codec="dag-pb")
    home.repo.blocks.put(cid, block)
    for _ in range(10):
        block = encode_node([encode_link(bytes(cid), "00", 0)], shard_data)
        cid = cid_of_block(block, version=1, codec="dag-pb")
        home.repo.blocks.put(cid, block)
    with pytest.raises(IntegrityError, match="HAMT deeper than its hash bits"):
        home.ls(cid_str(cid))


# -- lying sizes --------------------------------------------------------------------------
def _lying_file(home: HFCacheBackend, *, leaf: bytes, blocksize: int,
                filesize: int | None = None) -> CID:
    leaf_cid = cid_of_block(leaf, version=1, codec="raw")
    root, block = _file_node([(leaf_cid, blocksize)], filesize=filesize)
    _import(home, _car(root, [(root, block), (leaf_cid, leaf)]))
    return root


def test_leaf_longer_than_its_blocksize_is_an_integrity_error(home: HFCacheBackend,
                                                             tmp_path: Path) -> None:
    root = _lying_file(home, leaf=os.urandom(300_000), blocksize=10)
    assert home.stat(cid_str(root)).size == 10
    with pytest.raises(IntegrityError, match="parent declares 10"):
        home.cat(cid_str(root))
    with pytest.raises(IntegrityError):
        home.get_to_path(cid_str(root), output_path=tmp_path / "new" / "folders" / "f")
    assert _everything(tmp_path) == []  # not even the folders it would have made


def test_blocksizes_not_summing_to_filesize_is_an_integrity_error(home: HFCacheBackend,
                                                                  tmp_path: Path) -> None:
    leaf = b"x" * 1000
    root = _lying_file(home, leaf=leaf, blocksize=1000, filesize=10)
    with pytest.raises(IntegrityError, match="filesize 10 is not"):
        home.cat(cid_str(root))
    with pytest.raises(IntegrityError):
        home.get_to_path(cid_str(root), output_path=tmp_path / "f")
    assert _everything(tmp_path) == []


def test_blocksizes_without_links_are_refused(home: HFCacheBackend) -> None:
    root, block = _file_node([], blocksizes=[1 << 40], data=b"tiny")
    _import(home, _car(root, [(root, block)]))
    with pytest.raises(IntegrityError, match="1 blocksizes for 0 links"):
        home.cat(cid_str(root))


def test_a_file_linking_to_a_folder_is_refused(home: HFCacheBackend) -> None:
    folder = encode_node([], unixfs.DIRECTORY_DATA)
    folder_cid = cid_of_block(folder, version=1, codec="dag-pb")
    root, block = _file_node([(folder_cid, 5)])
    _import(home, _car(root, [(root, block), (folder_cid, folder)]))
    with pytest.raises(IntegrityError, match="directory node"):
        home.cat(cid_str(root))


# -- CAR bounds ---------------------------------------------------------------------------
def test_oversized_car_section_is_refused_before_it_is_read(home: HFCacheBackend) -> None:
    header = b'\xa2eroots\x80gversion\x01'
    from multiformats import varint

    blob = bytes([len(header)]) + header + varint.encode(limits.MAX_CAR_SECTION + 1)
    with pytest.raises(TooLarge, match="section"):
        home.dag_import(io.BytesIO(blob + b"\x00" * 64))
    assert home.repo.stat().blocks == 0


def test_car_with_too_many_roots_is_refused(home: HFCacheBackend) -> None:
    cid = cid_of_block(b"r", version=1, codec="raw")
    out = io.BytesIO()
    car.write_car(out, [cid] * (limits.MAX_CAR_ROOTS + 1), iter([(cid, b"r")]))
    with pytest.raises(TooLarge, match="roots"):
        home.dag_import(io.BytesIO(out.getvalue()))
    assert home.repo.stat().blocks == 0


# -- a disk that fills up mid-write -------------------------------------------------------
def test_disk_filling_mid_write_leaves_nothing_partial(home: HFCacheBackend,
                                                       small_disk: Path) -> None:
    data = os.urandom(3 * 1024 * 1024)
    cid = home.add_bytes(data)
    filled: list[Path] = []

    def competing_writer(nbytes: int) -> None:
        if not filled:  # the disk fills after the write has begun
            filled.append(fill_disk(small_disk))

    target = small_disk / "model.bin"
    with pytest.raises(DiskFull, match="full"):
        home.get_to_path(cid, output_path=target, progress=competing_writer)
    assert filled and sorted(p.name for p in small_disk.iterdir()) == ["filler"]
    filled[0].unlink()
    assert home.repo.verify().ok
    home.get_to_path(cid, output_path=target)  # with the space back, the same write works
    assert target.read_bytes() == data


def test_import_into_a_full_repo_fails_cleanly_and_the_repo_verifies(
        small_disk: Path, bomb: tuple[CID, bytes]) -> None:
    repo = HFCacheBackend(Repo(small_disk / "ipfs"))
    payload = os.urandom(6 * 1024 * 1024)
    source = HFCacheBackend(Repo(small_disk.parent / "source"))
    blob = source.dag_export(source.add_bytes(payload))
    assert blob is not None
    # The blockstore reports the full disk as its own error, naming the cause.
    with pytest.raises(IpfsMcpError, match="No space left"):
        repo.dag_import(io.BytesIO(blob))
    assert repo.repo.verify().ok
    assert not list(repo.repo.pins)


def test_exporter_write_path_is_exact_under_the_disk_share(home: HFCacheBackend,
                                                          small_disk: Path) -> None:
    free = limits.free_bytes(small_disk)
    too_big = home.add_bytes(os.urandom(int(free * limits.DEFAULT_WRITE_SHARE) + 4096))
    with pytest.raises(WriteTooLarge):
        Exporter(home.repo.blocks.get).get_to_path(
            CID.decode(too_big), small_disk / "f")
    assert list(small_disk.iterdir()) == []
