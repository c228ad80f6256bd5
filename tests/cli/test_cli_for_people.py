"""The command line as a person meets it: ``--version``, ``--json`` on every command, help
text on every flag, and one-line errors in the CLI's words with a hint where one helps.

Every command runs as a real subprocess (``python -m ipfs_mcp.server.cli``) on a repo of
its own (``HF_HOME`` under the test's folder).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ipfs_mcp.server.cli import build_parser
from tests.cli.test_cli_network_get import command_env

MISSING = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"  # in no repo of these tests


def run(home: Path, *args: str, cwd: Path | None = None, stdin: bytes | None = None
        ) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "ipfs_mcp.server.cli", *args], input=stdin,
                           capture_output=True, timeout=120, env=command_env(home), cwd=cwd,
                           check=False)


def ok(home: Path, *args: str, cwd: Path | None = None, stdin: bytes | None = None
       ) -> subprocess.CompletedProcess[bytes]:
    proc = run(home, *args, cwd=cwd, stdin=stdin)
    assert proc.returncode == 0, (args, proc.stderr.decode())
    return proc


def one_line_error(proc: subprocess.CompletedProcess[bytes]) -> str:
    err = proc.stderr.decode()
    assert proc.returncode != 0, proc.stdout
    assert len(err.strip().splitlines()) == 1 and err.startswith("Error: "), err
    assert "Traceback" not in err
    return err.strip()


def test_version_is_the_package_metadata(tmp_path: Path) -> None:
    out = ok(tmp_path, "--version").stdout.decode().strip()
    assert out == f"ipfs-mcp {importlib.metadata.version('ipfs-mcp')}"


def _leaves(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
            ) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command that runs (``pin add``, not ``pin``) with its parser."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [(prefix, parser)]
    return [leaf for name, child in subs[0].choices.items()
            for leaf in _leaves(child, (*prefix, name))]


def test_every_flag_and_argument_has_help_and_every_command_takes_json() -> None:
    leaves = _leaves(build_parser())
    assert len(leaves) >= 20
    for name, parser in leaves:
        for action in parser._actions:
            assert action.help, f"{' '.join(name)}: {action.dest} has no help text"
        flags = {flag for a in parser._actions for flag in a.option_strings}
        # serve's stdout is the MCP protocol itself: there is nothing else to print.
        assert "--json" in flags or name == ("serve",), f"{' '.join(name)} lacks --json"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def test_json_on_every_command(tmp_path: Path, home: Path) -> None:
    """Each command that runs once without a daemon, with --json: stdout is one JSON value
    (a command whose output is bytes describes the file -o wrote)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"hello\n")
    added = json.loads(ok(home, "add", "-r", "--json", str(src)).stdout)
    root, leaf = added["cid"], added["entries"][0]["cid"]
    out = tmp_path / "out"
    out.mkdir()

    def js(*args: str, stdin: bytes | None = None) -> Any:
        return json.loads(ok(home, *args, "--json", stdin=stdin).stdout)

    assert js("cat", leaf, "-o", str(out / "a")) == {
        "cid": leaf, "output": str(out / "a"), "bytes": 6}
    assert (out / "a").read_bytes() == b"hello\n"
    assert js("get", root, "-o", str(out / "tree"))["kind"] == "directory"
    assert [e["name"] for e in js("ls", root)] == ["a.txt"]
    assert js("pin", "rm", root) == [{"cid": root, "pinned": False}]
    assert js("pin", "add", root) == [{"cid": root, "pinned": True, "type": "recursive"}]
    assert [p["cid"] for p in js("pin", "ls")] == [root]
    put = js("block", "put", stdin=b"block bytes")
    assert put["size"] == 11
    assert js("block", "get", put["cid"], "-o", str(out / "b"))["bytes"] == 11
    car = js("dag", "export", root, "-o", str(out / "x.car"))
    assert car["bytes"] == (out / "x.car").stat().st_size > 0
    assert js("dag", "import", str(out / "x.car"))["roots"] == [root]
    assert js("repo", "stat")["pins"] == 1
    assert js("repo", "gc")["removed"] == 1  # the unpinned block
    assert js("repo", "verify")["ok"] is True
    assert js("filestore", "ls") == []
    assert js("filestore", "verify") == []
    assert js("backend")["backend"] == "hf_cache"
    assert js("id")["running"] is False


@pytest.mark.parametrize("command", [("cat",), ("block", "get"), ("dag", "export")])
def test_json_without_o_for_bytes_is_one_clear_line(home: Path, command: tuple[str, ...]
                                                    ) -> None:
    cid = ok(home, "block", "put", stdin=b"x").stdout.decode().strip()
    line = one_line_error(run(home, *command, cid, "--json"))
    assert "add -o FILE" in line


@pytest.mark.parametrize(("args", "says"), [
    (("get", "hello"), ["'hello' is not a CID", "a CID looks like Qm", "or bafy"]),
    (("cat", "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdz"),
     ["is not a valid CID", "a character is wrong"]),
    (("get", MISSING, "--peer", "127.0.0.1:4101"),
     ["--peer 127.0.0.1:4101: not a multiaddr", "/ip4/127.0.0.1/tcp/4101/p2p/12D3KooW"]),
    (("get", MISSING, "--peer", "/ip4/127.0.0.1/tcp/4101"), ["names no peer", "/p2p/"]),
    (("get", MISSING), [f"{MISSING} not found here", "add --peer <multiaddr>",
                        "run the daemon"]),
    (("cat", MISSING), [f"{MISSING} not found here"]),
    (("get", MISSING, "--bogus"), ["unrecognized arguments: --bogus", "see `ipfs-mcp"]),
    (("pin",), ["required", "see `ipfs-mcp pin --help`"]),
    (("frobnicate",), ["invalid choice", "see `ipfs-mcp --help`"]),
], ids=["not-a-cid", "mistyped-bafy", "host-port-peer", "peerless-multiaddr", "local-miss",
        "local-miss-cat", "unknown-flag", "missing-subcommand", "unknown-command"])
def test_mistakes_are_one_line_in_the_clis_words(home: Path, args: tuple[str, ...],
                                                 says: list[str]) -> None:
    line = one_line_error(run(home, *args))
    for words in says:
        assert words in line, line
    for internal in ("alphabet", "Pad bits", "blockstore at", str(home), "into_hf_cache",
                     "allowed root", "usage:"):
        assert internal not in line, line


def test_writing_into_the_hub_cache_is_refused_in_the_clis_words(tmp_path: Path,
                                                                 home: Path) -> None:
    cid = ok(home, "block", "put", stdin=b"x").stdout.decode().strip()
    (home / "hub").mkdir(parents=True, exist_ok=True)
    line = one_line_error(run(home, "get", cid, "-o", str(home / "hub" / "x")))
    assert "--hf ORG/NAME" in line
    assert "into_hf_cache" not in line and "allowed root" not in line


def test_get_refuses_a_missing_parent_folder(tmp_path: Path, home: Path) -> None:
    cid = ok(home, "block", "put", stdin=b"x").stdout.decode().strip()
    target = tmp_path / "nonexist" / "dir" / "x"
    line = one_line_error(run(home, "get", cid, "-o", str(target)))
    assert f"the folder {target.parent} does not exist" in line
    assert not (tmp_path / "nonexist").exists()
    one_line_error(run(home, "cat", cid, "-o", str(target)))
    # A network get refuses it too, before its node starts (the peer is never dialled).
    peer = "/ip4/127.0.0.1/tcp/9/p2p/12D3KooWAVuk2UfRS3RrbUrE5NPAz1pUY557NEgPjG9notBKYXA2"
    line = one_line_error(run(home, "get", cid, "-o", str(target), "--peer", peer))
    assert "does not exist" in line and "nothing answers" not in line
    assert not (tmp_path / "nonexist").exists()


def test_nocopy_add_of_a_relative_path_with_a_folder(tmp_path: Path, home: Path) -> None:
    (tmp_path / "data" / "site").mkdir(parents=True)
    (tmp_path / "data" / "site" / "hello.txt").write_bytes(b"hello\n")
    one = json.loads(ok(home, "add", "--nocopy", "--json", "data/site/hello.txt",
                        cwd=tmp_path).stdout)
    assert one["nocopy"] is True and one["size"] == 6
    tree = json.loads(ok(home, "add", "-r", "--nocopy", "--json", "data", cwd=tmp_path).stdout)
    assert {e["path"] for e in tree["entries"]} >= {"site/hello.txt"}
    assert ok(home, "cat", one["cid"]).stdout == b"hello\n"
    refs = json.loads(ok(home, "filestore", "ls", "--json").stdout)
    assert {r["path"] for r in refs} == {str(tmp_path / "data" / "site" / "hello.txt")}
