"""The Kubo CLI backend against Kubo 0.43's own ``ipfs`` CLI, on the suite's daemon's repo.

The RPC tests cover the wider input space with the same verifying reader; these check
that every operation works through the CLI and its output formats.
"""

from __future__ import annotations

import io
import random
import shlex
from pathlib import Path

import pytest
from interop.kubo_daemon import KuboDaemon

from ipfs_mcp.backends import router
from ipfs_mcp.backends.core.car import read_car
from ipfs_mcp.backends.core.cids import cid_of_block, cid_str
from ipfs_mcp.backends.core.importer import ImportOptions
from ipfs_mcp.backends.errors import (
    BackendUnavailable,
    BlockNotFound,
    InvalidInput,
    PinNotFound,
    Timeout,
)
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.remote.kubo.cli import KuboCLIBackend
from ipfs_mcp.backends.repo.repository import Repo

from .helpers import ours, ours_path, random_tree, same_tree


def test_every_operation_through_the_cli(cli: KuboCLIBackend, kubo: KuboDaemon,
                                         tmp_path: Path) -> None:
    # add: the CIDs Kubo gives, which are our importer's
    hello = cli.add_bytes(b"hello world\n")
    assert hello == "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
    data = random.Random(5).randbytes(300_000)
    v1 = ImportOptions(cid_version=1, chunk_size=4096)
    big = cli.add_stream(io.BytesIO(data), options=v1)
    assert big == ours(data, v1)
    for options in (ImportOptions(chunk_size=1024, trickle=True, max_links=5),
                    ImportOptions(cid_version=1, chunker="rabin-1024-4096-16384",
                                  max_links=9)):
        assert cli.add_bytes(data, pin=False, options=options) == ours(data, options)
    tree = random_tree(tmp_path / "tree", random.Random("cli"), files=8)
    root = cid_str(cli.add_path(tree).root)
    assert root == ours_path(tree)

    # reads, every byte verified
    assert cli.cat(hello) == b"hello world\n"
    assert cli.cat(big, offset=4000, length=9000) == data[4000:13000]
    names = {e.name for e in cli.ls(root)}
    assert names == {p.name for p in tree.iterdir() if not p.name.startswith(".")}
    out = tmp_path / "out"
    assert cli.get_to_path(root, output_path=out).kind == "directory"
    local = HFCacheBackend(Repo(tmp_path / "repo"))  # the same tree, written by our exporter
    local.add_path(tree)
    local.get_to_path(root, output_path=tmp_path / "expected")
    assert same_tree(tmp_path / "expected", out)
    assert cli.stat(f"{root}/empty").kind == "directory"

    # blocks
    raw = random.randbytes(200)
    raw_cid = cli.block_put(raw)
    assert raw_cid == cid_str(cid_of_block(raw))
    assert cli.block_get(raw_cid) == raw
    pb = bytes.fromhex("0a0408021800")
    assert cli.block_put(pb, codec="dag-pb") == cid_str(cid_of_block(pb, codec="dag-pb"))
    assert cli.block_get(root) == local.block_get(root)  # binary-safe

    # CAR out and in
    car_bytes = cli.dag_export(root)
    assert car_bytes is not None
    assert [cid_str(r) for r in read_car(io.BytesIO(car_bytes))[0]] == [root]
    fresh = random.randbytes(50_000)
    fresh_cid = local.add_bytes(fresh)
    report = cli.dag_import(io.BytesIO(local.dag_export(fresh_cid) or b""))
    assert [cid_str(r) for r in report.roots] == [fresh_cid]

    # pins
    pins = {cid_str(p.cid): p for p in cli.pins()}
    assert pins[root].type == "recursive" and pins[fresh_cid].type == "recursive"
    assert cli.unpin(root) == ["recursive"]
    with pytest.raises(PinNotFound):  # it really was unpinned
        cli.unpin(root)
    assert cli.pin(root, name="tree pin").name == "tree pin"
    assert {cid_str(p.cid): p.name for p in cli.pins()}[root] == "tree pin"  # --names
    named = cli.add_bytes(b"named by add " + random.randbytes(8), name="from add")
    assert {cid_str(p.cid): p.name for p in cli.pins()}[named] == "from add"

    # the node
    info = cli.id()
    assert info["ID"] == kubo.peer_id
    assert info["ID"] in [p.peer_id for p in cli.find_providers(hello, timeout=3)]


def test_cli_refuses_what_kubo_add_cannot_do(cli: KuboCLIBackend, tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(InvalidInput, match="symlinks"):
        cli.add_path(tmp_path / "d", options=ImportOptions(follow_symlinks=True))
    with pytest.raises(InvalidInput, match="node configuration"):
        cli.add_path(tmp_path / "d", options=ImportOptions(shard_threshold=10))


def test_a_block_the_cli_cannot_find_in_time_is_a_timeout(kubo: KuboDaemon) -> None:
    fast = KuboCLIBackend.connect(kubo.cli_command, env=kubo.cli_env, timeout=3)
    missing = cid_str(cid_of_block(b"nowhere to be found " + random.randbytes(16)))
    with pytest.raises(Timeout) as info:
        fast.block_get(missing)
    assert not isinstance(info.value, BlockNotFound)
    assert "IPFS_API_TIMEOUT" in str(info.value)


def test_missing_binary_is_unavailable_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailable, match="not found on PATH.*KUBO_CMD"):
        KuboCLIBackend.connect("definitely-not-an-ipfs-binary")
    gone = KuboCLIBackend([str(tmp_path / "was-here" / "ipfs")])  # removed after connect
    with pytest.raises(BackendUnavailable, match="KUBO_CMD"):
        gone.cat("QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o")
    with pytest.raises(BackendUnavailable, match="KUBO_CMD"):
        gone.add_stream(io.BytesIO(b"data"))


def test_router_selects_the_cli_from_kubo_cmd(kubo: KuboDaemon,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IPFS_BACKEND", "kubo")
    monkeypatch.setenv("KUBO_CMD", shlex.join(kubo.cli_command))
    monkeypatch.setenv("IPFS_PATH", str(kubo.repo))
    router.reset()
    assert isinstance(router.get_backend(), KuboCLIBackend)
    cid = router.add_bytes(b"through the router and the CLI\n")
    assert cid == ours(b"through the router and the CLI\n")
    assert router.cat(cid) == b"through the router and the CLI\n"
    assert router.last_read() == router.ReadReport("cat", "kubo", {})
