"""Two servers, each with its own repo and a real libp2p node on 127.0.0.1: one stores a
model, the other finds it, fetches it byte for byte, and writes it into its HuggingFace
cache, where huggingface_hub loads it offline."""

from __future__ import annotations

import argparse
import base64
import os
import sys
from pathlib import Path

import anyio
import pytest
import trio
from libp2p.abc import IHost, INetStream
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.custom_types import TProtocol
from libp2p.host.exceptions import StreamFailure
from libp2p.peer.id import ID
from mcp import Client
from multiaddr import Multiaddr
from multiformats import CID, multihash, varint

from ipfs_mcp.p2p import NodeConfig
from ipfs_mcp.p2p._net import ConnectionEvents, frame
from ipfs_mcp.p2p.bitswap.message import PROTOCOL_120, Message, encode_message
from ipfs_mcp.p2p.host import build_host
from ipfs_mcp.p2p.routing import KAD_PROTOCOL
from ipfs_mcp.server.app import build_server
from ipfs_mcp.server.config import ServerSettings
from ipfs_mcp.tools import models

pytestmark = pytest.mark.anyio

TIMEOUT = 60
SERVE = [sys.executable, "-m", "ipfs_mcp.server.cli", "serve"]


def block_cid_of(data: bytes) -> CID:
    return CID("base32", 1, "raw", multihash.digest(data, "sha2-256"))


def ok(result: object) -> dict:
    """The structured result of a successful call; a tool error fails with its message."""
    assert not result.is_error, result.content  # type: ignore[attr-defined]
    return result.structured_content  # type: ignore[attr-defined]


def node_settings(home: Path, root: Path) -> ServerSettings:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_CACHE", "IPFS_MCP_P2P")}
    env["HF_HOME"] = str(home)
    return ServerSettings.load(env, allow_roots=[str(root)], role="worker")


async def test_store_on_one_fetch_on_the_other(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "share" / "tiny-model"
    model.mkdir(parents=True)
    (model / "config.json").write_text('{"model_type": "bert", "hidden_size": 8}\n')
    weights = os.urandom(1_500_000)  # several chunks, a two-level DAG
    (model / "model.safetensors").write_bytes(weights)
    a_settings = node_settings(tmp_path / "home-a", tmp_path / "share")
    b_settings = node_settings(tmp_path / "home-b", tmp_path / "b-out")
    (tmp_path / "b-out").mkdir()

    with anyio.fail_after(TIMEOUT):
        async with Client(build_server(a_settings), mode="auto") as a, \
                Client(build_server(b_settings), mode="legacy") as b:
            stored = models.StoreResult.model_validate(
                ok(await a.call_tool("store_model", {"source": str(model)})))
            assert stored.announced and stored.file_count == 2
            a_stats = models.PeerStatsResult.model_validate(
                ok(await a.call_tool("peer_stats", {})))
            assert a_stats.network is not None and a_stats.network_status == "running"
            a_addr = a_stats.network.listen_addrs[0]

            connected = await b.call_tool("connect_peer", {"multiaddr": a_addr})
            assert not connected.is_error, connected.content
            assert connected.structured_content["peer_id"] == a_stats.network.peer_id

            # A announces again now that it knows a DHT peer; B then finds A through the DHT.
            again = models.AnnounceResult.model_validate(
                ok(await a.call_tool("announce", {"cid": stored.root_cid})))
            assert again.announced and "1 DHT peer" in again.scope
            found = models.ProvidersResult.model_validate(
                ok(await b.call_tool("find_providers", {"cid": stored.root_cid})))
            assert a_stats.network.peer_id in [p.peer_id for p in found.providers]

            config = models.FetchResult.model_validate(ok(await b.call_tool(
                "fetch_cid", {"cid": f"{stored.root_cid}/config.json"})))
            assert config.text == (model / "config.json").read_text()
            page = models.FetchResult.model_validate(ok(await b.call_tool("fetch_cid", {
                "cid": f"{stored.root_cid}/model.safetensors", "offset": 1_000_000,
                "length": 4096})))
            assert base64.b64decode(page.base64 or "") == weights[1_000_000:1_004_096]

            out = tmp_path / "b-out" / "copy"
            written = await b.call_tool("fetch_cid", {"cid": stored.root_cid,
                                                      "output_path": str(out)})
            assert not written.is_error, written.content
            assert (out / "model.safetensors").read_bytes() == weights

            into = models.FetchResult.model_validate(ok(await b.call_tool("fetch_cid", {
                "cid": stored.root_cid, "into_hf_cache": "acme/tiny-model"})))
            assert into.delivery == "hf_cache" and into.files_written == 2

            b_stats = models.PeerStatsResult.model_validate(
                ok(await b.call_tool("peer_stats", {})))
            assert b_stats.cache is not None and b_stats.cache.misses > 0
            assert b_stats.network is not None and b_stats.network.connected_peers == 1
            received = b_stats.network.ledger_blocks_received
            assert received is not None and received > 0

    from huggingface_hub import hf_hub_download

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    got = hf_hub_download("acme/tiny-model", "model.safetensors",
                          cache_dir=b_settings.backend.hf_hub_cache, local_files_only=True)
    assert Path(got).read_bytes() == weights


# -- logs -----------------------------------------------------------------------------------

class _Connected(ConnectionEvents):
    """Sets ``event`` when any peer connects to the host it is registered with."""

    def __init__(self) -> None:
        super().__init__(self._connected)
        self.event = trio.Event()
        self.peer: ID | None = None

    def _connected(self, peer: ID) -> None:
        self.peer = peer
        self.event.set()


class _Stderr:
    """The child's stderr, read as it comes; ``wait_for`` returns once a text appears."""

    def __init__(self) -> None:
        self.text = ""
        self._changed = trio.Event()
        self.ended = trio.Event()

    async def pump(self, stream: object) -> None:
        try:
            async for chunk in stream:  # type: ignore[attr-defined]
                self.text += chunk.decode(errors="replace")
                self._changed.set()
                self._changed = trio.Event()
        finally:
            self.ended.set()

    async def wait_for(self, needle: str) -> None:
        while needle not in self.text:
            await self._changed.wait()


async def _open_when_served(host: IHost, peer: ID, protocol: str) -> INetStream:
    """A stream to ``peer`` for ``protocol``, once ``peer`` serves it.

    The server dials its bootstrap peer while its host starts, a moment before its bitswap
    engine registers; until then the protocol is refused. Bounded in count (and by the
    caller's deadline), with a growing pause between tries.
    """
    for attempt in range(40):
        try:
            return await host.new_stream(peer, [TProtocol(protocol)])
        except StreamFailure:
            await trio.sleep(0.01 * (attempt + 1))
    raise AssertionError(f"{peer} never served {protocol}")


@pytest.mark.parametrize("level", ["WARNING", "DEBUG"])
async def test_library_noise_stays_off_stderr_while_our_warnings_show(
        work: Path, tmp_path: Path, level: str) -> None:
    """A deliberately rude peer, which the server dials as its bootstrap peer, resets a
    DHT stream halfway through a message (py-libp2p warns "Failed to read DHT message")
    and then sends a block nobody asked for (our bitswap warns "misbehaved"). At the
    default level only ours reaches stderr; at DEBUG both do, the library's as DEBUG."""
    rude = build_host(create_new_key_pair(), NodeConfig())
    watcher = _Connected()
    rude.get_network().register_notifee(watcher)
    stderr = _Stderr()
    env = {**os.environ, "IPFS_MCP_ALLOW_ROOTS": str(work)}
    env.pop("IPFS_MCP_LOG_LEVEL", None)
    env.pop("LIBP2P_DEBUG", None)
    with anyio.fail_after(TIMEOUT):
        async with rude.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]), trio.open_nursery() as tasks:
            bootstrap = str(rude.get_addrs()[0])
            args = [*SERVE, "--listen", "/ip4/127.0.0.1/tcp/0", "--bootstrap", bootstrap]
            if level == "DEBUG":
                args += ["--log-level", "DEBUG"]
            async with await anyio.open_process(args, env=env) as proc:
                assert proc.stderr is not None and proc.stdin is not None
                tasks.start_soon(stderr.pump, proc.stderr)
                await watcher.event.wait()  # the server dialled us
                server = watcher.peer
                assert server is not None
                dht = await rude.new_stream(server, [TProtocol(KAD_PROTOCOL)])
                await dht.write(varint.encode(100) + b"half a message")
                await dht.reset()
                junk = b"a block the server never asked for"
                bitswap = await _open_when_served(rude, server, PROTOCOL_120)
                await bitswap.write(frame(encode_message(
                    Message(blocks=[(block_cid_of(junk), junk)]), PROTOCOL_120)))
                await stderr.wait_for("misbehaved")  # our own warning shows
                if level == "DEBUG":
                    await stderr.wait_for("Failed to read DHT message")
                await proc.stdin.aclose()  # the server exits at the end of its input
                await proc.wait()
                await stderr.ended.wait()  # all it wrote, up to its last line
            with trio.CancelScope(shield=True):
                await rude.close()
    ours = [line for line in stderr.text.splitlines() if "misbehaved" in line]
    assert ours and all(" WARNING ipfs_mcp.p2p.bitswap" in line for line in ours)
    noise = [line for line in stderr.text.splitlines() if "DHT message" in line]
    if level == "DEBUG":
        assert noise and all(" DEBUG libp2p." in line for line in noise)
    else:
        # The same provocation as the DEBUG run, which shows the noise it causes.
        assert noise == []
        assert " libp2p." not in stderr.text


def test_mdns_is_off_unless_asked_for() -> None:
    from ipfs_mcp.server.serve import add_arguments, settings_from_args

    assert ServerSettings.load({}).mdns is False
    assert ServerSettings.load({"IPFS_MCP_MDNS": "1"}).mdns is True
    assert ServerSettings.load({"IPFS_MCP_MDNS": "1"}, mdns=False).mdns is False
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert settings_from_args(parser.parse_args(["--mdns"])).mdns is True
    assert settings_from_args(parser.parse_args([])).mdns is False
