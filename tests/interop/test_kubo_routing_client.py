"""A real Kubo 0.43 as the client of our ``/routing/v1`` server: ``ipfs-mcp serve --gateway``
(a real server process with its P2P node) is Kubo's only router (``Routing.Type=delegated``),
and Kubo has no DHT or swarm connection to us. ``ipfs routing findprovs`` names us for content we hold,
``ipfs routing findpeer`` gives our addresses, and Kubo then fetches the file from the
libp2p address our record carries, over bitswap (its HTTP retrieval is off here: Kubo 0.43
would otherwise also take our plain ``/http`` address, being on loopback)."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.core.importer import Importer
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.server.config import ServerSettings

from ._process import DaemonProcess
from .kubo_daemon import KuboDaemon

pytestmark = pytest.mark.interop
CLI = [sys.executable, "-m", "ipfs_mcp.server.cli"]
START_TIMEOUT = 60.0
_GATEWAY = re.compile(r"serving gateway at (http://127\.0\.0\.1:(\d+))/ipfs/")
_NODE = re.compile(r"P2P node (12D3\w+) on ")


def test_kubo_finds_us_through_our_routing_v1(
        tmp_path: Path, kubo043_factory: Callable[..., KuboDaemon]) -> None:
    home = tmp_path / "hf"
    settings = ServerSettings.load({"HF_HOME": str(home)})
    data = os.urandom(400_000)
    cid = cid_str(Importer(sink=Repo(settings.backend.repo_path).blocks).add_bytes(data).cid_obj)
    # INFO logs name the node once it runs; the gateway is up before it.
    server = DaemonProcess([*CLI, "serve", "--http", "127.0.0.1:0", "--gateway", "127.0.0.1:0",
                            "--log-level", "INFO"], name="ipfs-mcp serve", cwd=tmp_path,
                           log_path=tmp_path / "serve.log", ready_marker="P2P node 12D3",
                           env={"HF_HOME": str(home)})
    try:
        server.wait_ready(START_TIMEOUT)
        log = server.log_tail(20000)
        gateway, node = _GATEWAY.search(log), _NODE.search(log)
        assert gateway and node, log
        our_id = node.group(1)
        # "delegated": our server is Kubo's only router (no DHT at all). With "auto" and an
        # empty DHT, Kubo 0.43's findpeer gives up on the DHT's error before asking us.
        # HTTP retrieval off: the bytes must come over bitswap, from the libp2p address.
        kubo = kubo043_factory(config={"Routing.Type": "delegated", "Provide.Enabled": False,
                                       "Routing.DelegatedRouters": [gateway.group(1)],
                                       "HTTPRetrieval.Enabled": False})
        assert our_id not in kubo.peer_ids()
        assert kubo.find_providers(cid, seconds=20) == [our_id]
        peer = kubo.cli("routing", "findpeer", "--", our_id, timeout=30).decode().split()
        assert f"/ip4/127.0.0.1/tcp/{gateway.group(2)}/http" in peer
        assert any(re.fullmatch(r"/ip4/127\.0\.0\.1/tcp/\d+", a) for a in peer), peer
        assert kubo.cli("cat", "--", cid, timeout=60) == data
        assert our_id in kubo.peer_ids()  # it dialled the address our record gave
    finally:
        server.close()
