"""A command loads only what it uses: the MCP SDK (the largest import, seconds on a loaded
machine) comes in with ``serve`` and ``daemon``, never with ``add``, ``cat`` or ``--version``.

Every CLI test, and every person running a command, pays each import again per process; this
checks the set of modules a command loads, which is what start-up time follows.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.cli.test_cli_network_get import command_env

# Runs a command in-process, then says which of the heavy packages were imported.
PROBE = """
import json, sys
from ipfs_mcp.server import cli
try:
    cli.main(sys.argv[1:])
except SystemExit:
    pass
heavy = ("mcp", "starlette", "uvicorn", "hypercorn", "libp2p")
print(json.dumps(sorted(name for name in heavy if name in sys.modules)), file=sys.stderr)
"""


def _run(home: Path, *args: str) -> tuple[str, list[str]]:
    """The command's stdout, and the heavy packages it loaded."""
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True,
                          timeout=120, env=command_env(home), check=False)
    last = proc.stderr.decode().strip().splitlines()[-1]
    return proc.stdout.decode().strip(), list(json.loads(last))


def _loaded(home: Path, *args: str) -> list[str]:
    return _run(home, *args)[1]


def test_local_commands_do_not_load_the_mcp_sdk_or_the_node(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"aaa\n")
    assert _loaded(tmp_path, "--version") == []
    cid, loaded = _run(tmp_path, "add", "-Q", str(tmp_path / "a.txt"))
    assert loaded == []
    assert _run(tmp_path, "cat", cid) == ("aaa", [])


def test_the_daemon_command_still_loads_what_it_runs(tmp_path: Path) -> None:
    # `id` on a stopped node reads the daemon module: the lazy load must reach it.
    assert "mcp" in _loaded(tmp_path, "id", "--json")
