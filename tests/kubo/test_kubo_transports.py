"""What differs between the Kubo backend's two transports, against a real Kubo 0.43 daemon:
how each is found and configured (the CLI's binary, the RPC API's address forms and client)
and how each fails when it is missing. Everything they share runs over both in
test_kubo_backend.py.
"""

from __future__ import annotations

import io
import shlex
import socket
from pathlib import Path

import pytest
from interop.kubo_daemon import KuboDaemon

from ipfs_mcp.backends import router
from ipfs_mcp.backends.core.importer import ImportOptions
from ipfs_mcp.backends.errors import (
    BackendUnavailable,
    InvalidInput,
)
from ipfs_mcp.backends.remote.kubo.backend import KuboBackend
from ipfs_mcp.backends.remote.kubo.cli_transport import CLITransport
from ipfs_mcp.backends.remote.kubo.http_transport import HTTPTransport, api_url_from

from .helpers import ours


def test_cli_refuses_what_kubo_add_cannot_do(cli: KuboBackend, tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(InvalidInput, match="symlinks"):
        cli.add_path(tmp_path / "d", options=ImportOptions(follow_symlinks=True))
    with pytest.raises(InvalidInput, match="node configuration"):
        cli.add_path(tmp_path / "d", options=ImportOptions(shard_threshold=10))


def test_missing_binary_is_unavailable_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailable, match="not found on PATH.*KUBO_CMD"):
        KuboBackend.over_cli("definitely-not-an-ipfs-binary")
    # removed after connect
    gone = KuboBackend(CLITransport([str(tmp_path / "was-here" / "ipfs")]))
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
    chosen = router.get_backend()
    assert isinstance(chosen, KuboBackend) and isinstance(chosen.transport, CLITransport)
    cid = router.add_bytes(b"through the router and the CLI\n")
    assert cid == ours(b"through the router and the CLI\n")
    assert router.cat(cid) == b"through the router and the CLI\n"
    assert router.last_read() == router.ReadReport("cat", "kubo", {})


def test_api_address_forms(kubo: KuboDaemon) -> None:
    assert api_url_from(None) == "http://127.0.0.1:5001"
    assert api_url_from("/ip4/127.0.0.1/tcp/5001") == "http://127.0.0.1:5001"
    assert api_url_from("/ip4/127.0.0.1/tcp/5001/http") == "http://127.0.0.1:5001"
    assert api_url_from("/ip6/::1/tcp/5001") == "http://[::1]:5001"
    assert api_url_from("/dns4/localhost/tcp/5001/https") == "https://localhost:5001"
    assert api_url_from("http://127.0.0.1:5001/api/v0/") == "http://127.0.0.1:5001"
    for bad in ("/ip4/127.0.0.1/udp/5001", "ftp://x", "/unix/tmp/sock", "localhost:5001"):
        with pytest.raises(InvalidInput):
            api_url_from(bad)
    backend = KuboBackend.over_http(kubo.api_multiaddr)  # the repo's own api file form
    assert backend.id()["ID"] == kubo.peer_id
    backend.close()


def _free_port() -> int:
    # Bind, read the port, close: nothing listens there afterwards.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_no_daemon_is_unavailable_with_the_url_and_a_hint() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(BackendUnavailable) as info:
        KuboBackend.over_http(url, timeout=3)
    assert url in str(info.value) and "ipfs daemon" in str(info.value)


def test_an_injected_client_is_used_and_left_open(kubo: KuboDaemon) -> None:
    import httpx

    with httpx.Client(timeout=30) as client:
        backend = KuboBackend.over_http(kubo.api_url, client=client)
        assert isinstance(backend.transport, HTTPTransport)
        assert backend.transport.client is client
        assert backend.cat(backend.add_bytes(b"via my client\n")) == b"via my client\n"
        backend.close()  # the caller's client: not ours to close
        assert not client.is_closed
