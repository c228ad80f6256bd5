"""``ipfs-mcp get --peer ...``: a real subprocess fetching from a real provider.

The provider is one of our own nodes on 127.0.0.1, run by the test on trio; the command
runs as ``python -m ipfs_mcp.server.cli`` with its own HF_HOME. Every wait is on the
subprocess's own output lines (its ``--json`` progress on stderr) or its exit, under a
deadline; none sleeps. After every failure the command's repo must still verify.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
import trio
from anyio.abc import Process
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.p2p import P2PNode
from tests.p2p.nodes import GatedStore, add_bytes, add_path, node_at, repo_at, silent_peer

pytestmark = pytest.mark.anyio

DEADLINE = 120  # seconds for one command, on a loaded 2-core box
CHUNK = 262144


def command_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("IPFS_MCP_", "IPFS_BACKEND"))}
    env["HF_HOME"] = str(home)
    env["HF_HUB_OFFLINE"] = "1"
    return {**env, **(extra or {})}


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: list[str]
    progress: list[dict[str, Any]] = field(default_factory=list)

    @property
    def plain(self) -> list[str]:
        """The stderr lines that are not JSON progress."""
        return [line for line in self.stderr if not line.startswith("{")]

    @property
    def summary(self) -> dict[str, Any]:
        return json.loads(self.stdout)


def parse_stderr(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines if line.startswith("{")]


async def ipfs_mcp(home: Path, *args: str, env: dict[str, str] | None = None) -> Ran:
    with anyio.fail_after(DEADLINE):
        proc = await anyio.run_process(
            [sys.executable, "-m", "ipfs_mcp.server.cli", *args],
            env=command_env(home, env), check=False)
    stderr = proc.stderr.decode().splitlines()
    return Ran(proc.returncode, proc.stdout.decode(), stderr, parse_stderr(stderr))


async def repo_verifies(home: Path) -> None:
    ran = await ipfs_mcp(home, "repo", "verify")
    assert ran.code == 0, ran.stdout + "\n".join(ran.stderr)


@asynccontextmanager
async def provider(tmp_path: Path, name: str = "provider") -> AsyncIterator[P2PNode]:
    async with node_at(tmp_path / name) as node:
        yield node


def me_of(home: Path) -> str:
    """The command's peer id (its identity lives in its repo, the same on every run)."""
    from ipfs_mcp.p2p.identity import load_or_create_identity

    return str(ID.from_pubkey(load_or_create_identity(home / "ipfs").public_key))


async def test_get_from_a_peer_writes_the_bytes_with_json_progress(tmp_path: Path) -> None:
    data = os.urandom(5 * CHUNK + 1234)
    home, out = tmp_path / "home", tmp_path / "out.bin"
    async with provider(tmp_path) as node:
        root = cid_str(add_bytes(repo_at(tmp_path / "provider"), data))
        ran = await ipfs_mcp(
            home, "get", root, "-o", str(out), "--peer", node.addrs[0], "--json")
        assert ran.code == 0, ran.stderr
        assert out.read_bytes() == data
        assert ran.plain == []  # nothing on stderr but progress
        assert ran.progress, "no progress lines"
        last = ran.progress[-1]
        assert last["written"] == last["total"] == len(data)
        assert all(line["written"] <= len(data) for line in ran.progress)
        assert any(line["providers"] == 1 for line in ran.progress)
        summary = ran.summary
        assert summary["blocks_fetched"] == 7 and summary["providers"] == [node.peer_id]
        assert summary["size"] == len(data) and summary["output"] == str(out)
        assert node.bitswap.ledger(me_of(home)).blocks_sent == 7
    await repo_verifies(home)


async def test_get_replaces_like_kubo_and_says_so(tmp_path: Path) -> None:
    home, out = tmp_path / "home", tmp_path / "out.bin"
    out.write_bytes(b"old")
    async with provider(tmp_path) as node:
        root = cid_str(add_bytes(repo_at(tmp_path / "provider"), b"new bytes\n"))
        ran = await ipfs_mcp(home, "get", root, "-o", str(out), "--peer", node.addrs[0])
    assert ran.code == 0, ran.stderr
    assert out.read_bytes() == b"new bytes\n"
    assert f"Saved file {root} to {out}" in ran.stdout
    assert f"replaced a file of 3 bytes at {out.resolve()}" in "\n".join(ran.stderr)


async def test_second_get_resumes_from_the_blocks_already_here(tmp_path: Path) -> None:
    """Fetch one file of a folder first; the whole folder then asks only for the rest."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "a.bin").write_bytes(os.urandom(4 * CHUNK))
    (folder / "b.bin").write_bytes(os.urandom(3 * CHUNK))
    home = tmp_path / "home"
    async with provider(tmp_path) as node:
        root = cid_str(add_path(repo_at(tmp_path / "provider"), folder))
        first = await ipfs_mcp(home, "get", f"{root}/a.bin", "-o", str(tmp_path / "a.bin"),
                               "--peer", node.addrs[0], "--json")
        assert first.code == 0, first.stderr
        # The folder node, a.bin's node and its 4 leaves.
        assert first.summary["blocks_fetched"] == 6
        second = await ipfs_mcp(home, "get", root, "-o", str(tmp_path / "all"),
                                "--peer", node.addrs[0], "--json")
        assert second.code == 0, second.stderr
        assert second.summary["blocks_fetched"] == 4  # b.bin's node and its 3 leaves
        # The provider sent every block once over both runs: nothing was asked twice.
        assert node.bitswap.ledger(me_of(home)).blocks_sent == 10
    for name in ("a.bin", "b.bin"):
        assert (tmp_path / "all" / name).read_bytes() == (folder / name).read_bytes()
    await repo_verifies(home)


async def test_get_into_the_hub_cache_loads_offline(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "test"}\n')
    (folder / "weights.bin").write_bytes(os.urandom(2 * CHUNK + 7))
    home = tmp_path / "home"
    async with provider(tmp_path) as node:
        root = cid_str(add_path(repo_at(tmp_path / "provider"), folder))
        ran = await ipfs_mcp(home, "get", root, "--hf", "org/tiny@main",
                             "--peer", node.addrs[0], "--json")
    assert ran.code == 0, ran.stderr
    assert ran.summary["hf_repo_id"] == "org/tiny" and ran.summary["files_written"] == 2
    assert ran.progress[-1]["written"] == ran.progress[-1]["total"] == 2 * CHUNK + 7 + 23
    script = ("import sys, huggingface_hub as h; p = h.snapshot_download('org/tiny', "
              "local_files_only=True); sys.stdout.write(p)")
    with anyio.fail_after(DEADLINE):
        loaded = await anyio.run_process([sys.executable, "-c", script],
                                         env=command_env(home))
    snapshot = Path(loaded.stdout.decode())
    for name in ("config.json", "weights.bin"):
        assert (snapshot / name).read_bytes() == (folder / name).read_bytes()
    await repo_verifies(home)


def other_peer_id() -> str:
    return str(ID.from_pubkey(create_new_key_pair().public_key))


def one_error_line(ran: Ran) -> str:
    assert ran.code != 0
    assert len(ran.plain) == 1, ran.stderr
    assert ran.plain[0].startswith("Error: ")
    return ran.plain[0]


async def get_to_x(tmp_path: Path, home: Path, cid: str, peer: str, *flags: str) -> Ran:
    """``ipfs-mcp get CID -o tmp_path/x --peer PEER FLAGS``."""
    return await ipfs_mcp(home, "get", cid, "-o", str(tmp_path / "x"), "--peer", peer, *flags)


async def failed_cleanly(ran: Ran, tmp_path: Path, home: Path) -> str:
    """The get failed with exit code 1 and one error line (returned), wrote nothing to
    ``tmp_path/x``, and left the repo verifying."""
    line = one_error_line(ran)
    assert ran.code == 1 and not (tmp_path / "x").exists()
    await repo_verifies(home)
    return line


async def test_unreachable_peer_is_one_line_error(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with socket.socket() as sock:  # bound, never listening: a dial is refused at once
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        addr = f"/ip4/127.0.0.1/tcp/{port}/p2p/{other_peer_id()}"
        ran = await get_to_x(tmp_path, home, "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o",
                             addr)
    line = await failed_cleanly(ran, tmp_path, home)
    assert f"peer {addr}" in line and "nothing answers at" in line


async def test_wrong_peer_id_is_one_line_error(tmp_path: Path) -> None:
    home = tmp_path / "home"
    async with provider(tmp_path) as node:
        root = cid_str(add_bytes(repo_at(tmp_path / "provider"), b"hello\n"))
        transport = node.addrs[0].split("/p2p/")[0]
        addr = f"{transport}/p2p/{other_peer_id()}"
        ran = await get_to_x(tmp_path, home, root, addr, "--timeout", "30")
    line = await failed_cleanly(ran, tmp_path, home)
    assert f"peer {addr}" in line
    assert "the peer id does not match the one at that address" in line
    assert "handshake" not in line


async def test_no_provider_ends_at_the_timeout_with_one_line(tmp_path: Path) -> None:
    """The peer is there, but nothing serves the CID: --timeout bounds the wait."""
    home = tmp_path / "home"
    missing = cid_str(add_bytes(repo_at(tmp_path / "elsewhere"), b"nobody has this\n"))
    async with provider(tmp_path) as node:
        ran = await get_to_x(tmp_path, home, missing, node.addrs[0], "--timeout", "3")
    assert f"{missing} not found" in await failed_cleanly(ran, tmp_path, home)


async def test_silent_peer_is_bounded_by_the_timeout(tmp_path: Path) -> None:
    """A deliberately silent peer (bitswap never answered): only --timeout ends the wait."""
    home = tmp_path / "home"
    missing = cid_str(add_bytes(repo_at(tmp_path / "elsewhere"), b"nobody answers\n"))
    async with silent_peer() as peer:
        host: Any = peer  # a libp2p host with the test's `heard` event
        addr = f"{host.get_addrs()[0]}"
        ran = await get_to_x(tmp_path, home, missing, addr, "--timeout", "6", "--json")
        assert host.heard.is_set()  # it was asked
    line = await failed_cleanly(ran, tmp_path, home)
    assert f"{missing} not found in any provider within 6s" in line


async def test_sigint_mid_fetch_cancels_cleanly(tmp_path: Path) -> None:
    """Against a deliberately slow provider: it serves two blocks, then holds every read.
    SIGINT arrives while the command is waiting for blocks it has asked for."""
    data = os.urandom(7 * CHUNK)
    home, out = tmp_path / "home", tmp_path / "out.bin"
    me = me_of(home)  # creates the identity the command will load
    root = add_bytes(repo_at(tmp_path / "slow"), data)
    served = trio.Event()
    gated = GatedStore(tmp_path / "slow", after=2, served=served)
    stderr: list[str] = []
    async with node_at(tmp_path / "slow", blockstore=gated) as node:
        try:
            with anyio.fail_after(DEADLINE):
                proc: Process = await anyio.open_process(
                    [sys.executable, "-m", "ipfs_mcp.server.cli", "get", cid_str(root), "-o",
                     str(out), "--peer", node.addrs[0], "--json"], env=command_env(home),
                    stdout=subprocess.DEVNULL)
                async with proc, anyio.create_task_group() as tg:
                    tg.start_soon(collect_lines, proc, stderr)
                    await served.wait()  # mid-DAG: the rest is held
                    while not node.bitswap.peer_wantlist(me):
                        await node.bitswap.changed.wait()
                    proc.send_signal(signal.SIGINT)
                    code = await proc.wait()
        finally:
            gated.release.set()
    assert code == 130
    plain = [line for line in stderr if not line.startswith("{")]
    assert len(plain) == 1 and plain[0].startswith("Error: interrupted"), stderr
    assert parse_stderr(stderr)[-1]["written"] == 0
    assert list(tmp_path.glob("out.bin*")) == []  # no output, no temp file beside it
    await repo_verifies(home)


async def collect_lines(proc: Process, into: list[str]) -> None:
    assert proc.stderr is not None
    buffered = b""
    async for chunk in proc.stderr:
        buffered += chunk
        *complete, buffered = buffered.split(b"\n")
        into.extend(raw.decode() for raw in complete)
    if buffered:
        into.append(buffered.decode())


async def test_get_through_a_bootstrap_peer(tmp_path: Path) -> None:
    data = os.urandom(3 * CHUNK)
    home, out = tmp_path / "home", tmp_path / "out.bin"
    async with provider(tmp_path) as node:
        root = cid_str(add_bytes(repo_at(tmp_path / "provider"), data))
        ran = await ipfs_mcp(home, "get", root, "-o", str(out), "--bootstrap", node.addrs[0],
                             "--json", "--timeout", "60")
        assert ran.code == 0, ran.stderr
        assert node.bitswap.ledger(me_of(home)).blocks_sent == 4
    assert out.read_bytes() == data
    assert ran.summary["providers"] == [node.peer_id]


async def test_no_bootstrap_peer_answering_is_one_line_error(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with socket.socket() as sock:  # bound, never listening: a dial is refused at once
        sock.bind(("127.0.0.1", 0))
        addr = f"/ip4/127.0.0.1/tcp/{sock.getsockname()[1]}/p2p/{other_peer_id()}"
        ran = await ipfs_mcp(home, "get", "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o",
                             "-o", str(tmp_path / "x"), "--bootstrap", addr)
    assert "no bootstrap peer answered" in one_error_line(ran)


async def test_get_from_our_trustless_gateway_without_a_node(tmp_path: Path) -> None:
    """Our own gateway serves the blocks over HTTP; the command runs no P2P node."""
    from ipfs_mcp.server.gateway import BlockstoreSource, Gateway, serve_gateway

    data = os.urandom(4 * CHUNK + 3)
    served = repo_at(tmp_path / "served")
    root = cid_str(add_bytes(served, data))
    home, out = tmp_path / "home", tmp_path / "out.bin"
    with anyio.fail_after(DEADLINE):
        async with anyio.create_task_group() as tg:
            urls = await tg.start(serve_gateway, Gateway(BlockstoreSource(served.blocks)),
                                  "127.0.0.1", 0)
            ran = await ipfs_mcp(home, "get", root, "-o", str(out), "--trustless-gateway",
                                 urls[0], "--json", env={"IPFS_MCP_P2P": "0"})
            tg.cancel_scope.cancel()
    assert ran.code == 0, ran.stderr
    assert out.read_bytes() == data
    assert ran.summary["blocks_fetched"] == 6 and ran.summary["providers"] == [urls[0]]
    assert ran.progress[-1]["written"] == len(data)
    await repo_verifies(home)


async def test_get_without_network_options_stays_local(tmp_path: Path) -> None:
    """No option, no node: a CID only a peer has is not found, and nothing is dialled."""
    home = tmp_path / "home"
    async with provider(tmp_path) as node:
        root = cid_str(add_bytes(repo_at(tmp_path / "provider"), b"only over there\n"))
        ran = await ipfs_mcp(home, "get", root, "-o", str(tmp_path / "x"))
        assert node.connected_peers() == []
    assert f"{root} not found" in one_error_line(ran)


async def test_peer_address_without_a_peer_id_is_one_line_error(tmp_path: Path) -> None:
    ran = await get_to_x(tmp_path, tmp_path / "home",
                         "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o", "/ip4/127.0.0.1/tcp/4001")
    assert "names no peer: add /p2p/<peer id>" in one_error_line(ran)


@pytest.mark.interop
async def test_get_from_a_kubo_043_daemon(tmp_path: Path) -> None:
    """The same command against a real Kubo 0.43 provider on 127.0.0.1."""
    from tests.interop.kubo_daemon import KuboDaemon

    data = os.urandom(3 * CHUNK + 99)
    (tmp_path / "file.bin").write_bytes(data)
    home, out = tmp_path / "home", tmp_path / "out.bin"
    kubo = await anyio.to_thread.run_sync(lambda: KuboDaemon(tmp_path / "kubo"))
    try:
        root = await anyio.to_thread.run_sync(
            lambda: kubo.add_path(tmp_path / "file.bin", "--cid-version", "1"))
        ran = await ipfs_mcp(home, "get", root, "-o", str(out), "--peer", kubo.dial_addr,
                             "--json", "--timeout", "60")
    finally:
        await anyio.to_thread.run_sync(kubo.close)
    assert ran.code == 0, ran.stderr
    assert out.read_bytes() == data
    assert ran.summary["providers"] == [kubo.peer_id]
    assert ran.summary["blocks_fetched"] == 5  # four raw leaves and the root
    assert ran.progress[-1]["written"] == ran.progress[-1]["total"] == len(data)
    await repo_verifies(home)


async def test_hf_without_network_options_writes_from_the_local_repo(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}\n")
    home = tmp_path / "home"
    added = await ipfs_mcp(home, "add", "-rQ", str(folder))
    assert added.code == 0, added.stderr
    root = added.stdout.strip()
    ran = await ipfs_mcp(home, "get", root, "--hf", "org/local@v1", "--json")
    assert ran.code == 0, ran.stderr
    assert ran.summary["hf_revision"] == "v1" and ran.summary["blocks_fetched"] == 0
    assert (Path(ran.summary["hf_snapshot"]) / "config.json").read_text() == "{}\n"


def test_a_public_get_listens_on_a_free_port_never_the_daemons_4001(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from ipfs_mcp.server.cli import build_parser
    from ipfs_mcp.server.cli_fetch import _settings

    monkeypatch.delenv("IPFS_MCP_LISTEN", raising=False)
    cid = "bafkqaaa"
    public = _settings(build_parser().parse_args(["get", cid, "--network", "public"]))
    assert public.listen and all(addr.endswith(("/tcp/0", "/udp/0/quic-v1"))
                                 for addr in public.listen), public.listen
    assert {addr.split("/")[1] for addr in public.listen} == {"ip4", "ip6"}
    named = _settings(build_parser().parse_args(
        ["get", cid, "--network", "public", "--listen", "/ip4/0.0.0.0/tcp/4001"]))
    assert named.listen == ("/ip4/0.0.0.0/tcp/4001",)
    monkeypatch.setenv("IPFS_MCP_LISTEN", "/ip4/0.0.0.0/tcp/4002")
    from_env = _settings(build_parser().parse_args(["get", cid, "--network", "public"]))
    assert from_env.listen == ("/ip4/0.0.0.0/tcp/4002",)
