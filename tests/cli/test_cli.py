"""The `ipfs-mcp` command line, run as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.core.importer import Importer
from ipfs_mcp.tools.import_options import ImportArgs


def run(*args: str, stdin: bytes | None = None, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "ipfs_mcp.server.cli", *args], input=stdin,
                          capture_output=True, timeout=120, env=os.environ.copy())
    if ok:
        assert proc.returncode == 0, proc.stderr.decode()
    return proc


PLANTED_BUG = """
import sys
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.server import cli

def planted(*args, **kwargs):
    raise ValueError("a planted bug")

HFCacheBackend.cat = HFCacheBackend.cat_stream = HFCacheBackend.stat = planted
sys.exit(cli.main(sys.argv[1:]))
"""


def run_with_a_planted_bug(*args: str) -> subprocess.CompletedProcess:
    """The CLI with a bug planted in the embedded backend's reads."""
    return subprocess.run([sys.executable, "-c", PLANTED_BUG, *args], capture_output=True,
                          timeout=120, env=os.environ.copy())


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "d"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"aaa\n")
    (root / "b.txt").write_bytes(b"bbb\n")
    (root / "sub" / "big.bin").write_bytes(os.urandom(700_000))
    return root


def test_add_cat_get_ls_like_kubo(tree: Path, tmp_path: Path) -> None:
    out = run("add", "-r", str(tree)).stdout.decode().splitlines()
    assert out[-1].startswith("added ") and out[-1].endswith(" d")
    root = run("add", "-r", "-Q", str(tree)).stdout.decode().strip()
    assert run("cat", f"{root}/a.txt").stdout == b"aaa\n"
    big = (tree / "sub" / "big.bin").read_bytes()
    assert run("cat", f"{root}/sub/big.bin", "--offset", "300000", "--length", "5").stdout == \
        big[300000:300005]
    listing = json.loads(run("ls", "--json", root).stdout)
    assert [(e["name"], e["kind"]) for e in listing] == \
        [("a.txt", "file"), ("b.txt", "file"), ("sub", "directory")]
    run("get", root, "-o", str(tmp_path / "out"))
    assert (tmp_path / "out" / "sub" / "big.bin").read_bytes() == big
    added = json.loads(run("add", "--json", "--cid-version", "1", str(tree / "a.txt")).stdout)
    assert added["cid"].startswith("bafkrei")


def test_add_flags_are_the_tools_import_options(tree: Path) -> None:
    """`add` has a flag named after every import option the MCP tools take, and an add with
    all of them gives the CID the importer gives for the same options."""
    given = ImportArgs(profile="unixfs-v1-2025", cid_version=0, raw_leaves=False,
                       chunker="size-1000", trickle=True, max_file_links=3,
                       max_directory_links=1, max_hamt_fanout=8)
    argv: list[str] = []
    for name, value in given.model_dump().items():
        flag = name.replace("_", "-")
        argv += ([f"--{flag}"] if value is True else [f"--no-{flag}"] if value is False
                 else [f"--{flag}", str(value)])
    added = json.loads(run("add", "--json", "-r", *argv, str(tree)).stdout)
    assert added["cid"] == cid_str(Importer(options=given.to_options()).add_path(tree).root)


def test_pins_repo_and_backend(tree: Path) -> None:
    root = run("add", "-rQ", "--no-pin", str(tree)).stdout.decode().strip()
    assert json.loads(run("pin", "ls", "--json").stdout) == []
    run("pin", "add", root)
    pins = json.loads(run("pin", "ls", "--json").stdout)
    assert [p["cid"] for p in pins] == [root]
    assert json.loads(run("repo", "gc", "--json").stdout)["removed"] == 0
    run("pin", "rm", root)
    assert json.loads(run("repo", "gc", "--json").stdout)["removed"] > 0
    assert json.loads(run("repo", "stat", "--json").stdout)["blocks"] == 0
    assert "checked 0 blocks" in run("repo", "verify").stdout.decode()
    assert json.loads(run("backend", "--json").stdout)["backend"] == "hf_cache"


def test_blocks_and_car(tree: Path, tmp_path: Path) -> None:
    cid = run("block", "put", stdin=b"block bytes").stdout.decode().strip()
    assert run("block", "get", cid).stdout == b"block bytes"
    root = run("add", "-rQ", str(tree)).stdout.decode().strip()
    run("dag", "export", root, "-o", str(tmp_path / "x.car"))
    report = json.loads(run("dag", "import", "--json", str(tmp_path / "x.car")).stdout)
    assert report["roots"] == [root] and report["blocks"] == 8


@pytest.mark.parametrize(("args", "message"), [
    (("cat", "Qmfoo"), "'Qmfoo' is not a CID: a CID looks like Qm"),
    (("cat", "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"), "not found"),
    (("add", "/definitely/not/here"), "no such file"),
    (("get", "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4", "-o", "/proc/x"),
     "not found"),
])
def test_errors_are_one_line_without_traceback(args: tuple[str, ...], message: str) -> None:
    proc = run(*args, ok=False)
    err = proc.stderr.decode()
    assert proc.returncode == 1
    assert message in err and "Traceback" not in err
    assert err.startswith("Error: ")


def _car(header: bytes, sections: list[bytes] = ()) -> bytes:  # type: ignore[assignment]
    """A CAR v1 of raw parts: the header's length, the header, each section behind its own."""
    from ipfs_mcp.backends.core import varint
    return (varint.encode(len(header)) + header
            + b"".join(varint.encode(len(s)) + s for s in sections))


def _keccak_section() -> bytes:
    # CIDv1 raw with a keccak-256 multihash (0x1b): multiformats knows the code but can only
    # compute it with pycryptodome, which it imports on first use.
    return b"\x01\x55\x1b\x20" + b"\x00" * 32 + b"block"


def _root_header() -> bytes:
    import dag_cbor

    from ipfs_mcp.backends.core.cids import cid_of_block
    return dag_cbor.encode({"roots": [cid_of_block(b"root")], "version": 1})


@pytest.mark.parametrize(("car", "message"), [
    (_car(b"\x7b" + b"\xff" * 8), "CAR header is not dag-cbor"),  # a random header's 8-byte length
    (b"\xff" * 9 + b"\x01", "malformed CAR varint"),  # a 10-byte header-length varint
    (_car(b"\x81" * 100_000 + b"\x00"), "nested deeper"),
    (_car(_root_header(), [_keccak_section()]), "unsupported hash function"),
], ids=["random-header", "long-varint", "deep-header", "keccak-section"])
def test_dag_import_of_a_hostile_car_is_one_line(tmp_path: Path, car: bytes,
                                                 message: str) -> None:
    path = tmp_path / "hostile.car"
    path.write_bytes(car)
    proc = run("dag", "import", str(path), ok=False)
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("Error: ") and message in err, err


def test_an_unexpected_error_is_one_line_exit_2_and_debug_shows_the_trace() -> None:
    # A bug planted on purpose (the embedded backend's reads raise a ValueError no command
    # expects): whatever escapes a command must still be one line, exit status 2.
    cid = "QmZLRFWaz9Kypt2ACNMDzA5uzACDRiCqwdkNSP1UZsu56D"
    proc = run_with_a_planted_bug("cat", cid)
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("Error: unexpected ValueError: a planted bug") and "--debug" in err
    debug = run_with_a_planted_bug("--debug", "cat", cid)
    assert debug.returncode == 2
    assert "Traceback (most recent call last)" in debug.stderr.decode()
