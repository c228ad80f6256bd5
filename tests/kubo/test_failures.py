"""Failure paths: a daemon that dies mid-operation, a wrong token, and bytes that lie.

The one fake in this suite is :class:`FakeDaemon`: a tiny local HTTP server answering a
few RPC endpoints with blocks and bytes that do not match their CIDs (and, for the token
test, refusing a wrong ``Authorization`` header as Kubo's ``API.Authorizations`` does).
The tests that use it say "fake" in their names. Everything else runs a real daemon.
"""

from __future__ import annotations

import io
import json
import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from ipfs_mcp.backends import router
from ipfs_mcp.backends.car import write_car
from ipfs_mcp.backends.cids import cid_str, parse_cid
from ipfs_mcp.backends.errors import BackendUnavailable, IntegrityError
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.importer import ImportOptions
from ipfs_mcp.backends.kubo_cli import KuboCLIBackend
from ipfs_mcp.backends.kubo_rpc import KuboRPCBackend
from ipfs_mcp.backends.repo import Repo
from ipfs_mcp.backends.settings import BackendSettings

from .conftest import EXTERNAL_API, EXTERNAL_AUTH
from .jsipfs import JsIpfsDaemon


# -- a daemon that dies ---------------------------------------------------------------------
def test_daemon_killed_mid_cat_is_unavailable_not_a_short_read(own_daemon: JsIpfsDaemon
                                                               ) -> None:
    rpc = KuboRPCBackend.connect(own_daemon.api_url, timeout=20)
    data = random.randbytes(24 << 20)
    cid = rpc.add_bytes(data, options=ImportOptions(cid_version=1))
    stream = rpc.cat_stream(cid)
    first = next(stream)
    assert data.startswith(first)
    own_daemon.kill()
    with pytest.raises(BackendUnavailable, match="daemon"):
        for _ in stream:
            pass
    with pytest.raises(BackendUnavailable, match=own_daemon.api_url):
        rpc.cat(cid)
    # The CLI finds the daemon's address in the repo and cannot reach it either.
    cli = KuboCLIBackend(own_daemon.cli_command, env=own_daemon.cli_env, timeout=30)
    with pytest.raises(BackendUnavailable):
        cli.block_get(cid)
    rpc.close()


class _KillAfter(io.RawIOBase):
    """A file being uploaded; the daemon dies once ``limit`` bytes have been read."""

    def __init__(self, daemon: JsIpfsDaemon, size: int, limit: int) -> None:
        self.daemon, self.left, self.limit = daemon, size, limit
        self.sent = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.sent >= self.limit and self.daemon.alive:
            self.daemon.kill()
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        self.sent += n
        return b"\xab" * n


def test_daemon_killed_mid_add_fails_and_the_write_lands_nowhere_else(
        own_daemon: JsIpfsDaemon, monkeypatch: pytest.MonkeyPatch) -> None:
    rpc = KuboRPCBackend.connect(own_daemon.api_url, timeout=20)
    with pytest.raises(BackendUnavailable):
        rpc.add_stream(_KillAfter(own_daemon, 64 << 20, 4 << 20))  # type: ignore[arg-type]
    assert not own_daemon.alive
    rpc.close()

    # Through the router, with kubo chosen: the write fails, hf_cache never sees it.
    monkeypatch.setenv("IPFS_BACKEND", "kubo")
    monkeypatch.setenv("IPFS_API", own_daemon.api_url)
    router.reset()
    with pytest.raises(BackendUnavailable, match="chosen|never switch"):
        router.add_bytes(b"must not land in hf_cache\n")
    settings = BackendSettings.from_env()
    local = HFCacheBackend(Repo(settings.repo_path))
    assert not local.repo.blocks.has(parse_cid("QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"))
    assert list(local.repo.blocks.iter_multihashes()) == []


# -- the one fake: a daemon whose bytes do not match their CIDs ------------------------------
class FakeDaemon:
    """A tiny HTTP server on 127.0.0.1 answering ``id``, ``block/get``, ``cat`` and
    ``dag/export`` from a real DAG, with the corruption a test asks for."""

    def __init__(self, blocks: dict[str, bytes], files: dict[str, bytes], *,
                 token: str | None = None) -> None:
        self.blocks = dict(blocks)
        self.files = dict(files)
        self.token = token
        self.corrupt_blocks: set[str] = set()
        self.cat_lies = False
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if fake.token is not None and self.headers.get("Authorization") != fake.token:
                    self._send(403, b"403 - Forbidden\n", "text/plain")
                    return
                op = url.path.removeprefix("/api/v0/")
                if op == "id":
                    self._send(200, json.dumps({"ID": "fake", "Addresses": []}).encode())
                elif op == "block/get":
                    key = cid_str(parse_cid(query["arg"]))
                    block = fake.blocks[key]
                    if key in fake.corrupt_blocks:
                        block = bytes([block[0] ^ 1]) + block[1:]
                    self._send(200, block, "application/octet-stream")
                elif op == "cat":
                    data = fake.files[cid_str(parse_cid(query["arg"]))]
                    offset = int(query.get("offset", 0))
                    end = offset + int(query["length"]) if "length" in query else None
                    piece = data[offset:end]
                    if fake.cat_lies:
                        piece = piece[:-1] + bytes([piece[-1] ^ 1])
                    self._send(200, piece, "application/octet-stream")
                elif op == "dag/export":
                    root = parse_cid(query["arg"])
                    out = io.BytesIO()
                    write_car(out, [root], iter(
                        (parse_cid(k), b if k not in fake.corrupt_blocks else b[::-1])
                        for k, b in fake.blocks.items()))
                    self._send(200, out.getvalue(), "application/vnd.ipld.car")
                else:
                    self._send(404, b"404 page not found\n", "text/plain")

            def _send(self, status: int, body: bytes,
                      content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)


@pytest.fixture
def real_dag(tmp_path: Path) -> tuple[str, bytes, dict[str, bytes]]:
    """A 5000-byte file in 1 KiB raw leaves: its root, its bytes and its blocks."""
    local = HFCacheBackend(Repo(tmp_path / "repo"))
    data = random.randbytes(5000)
    root = local.add_bytes(data, options=ImportOptions(cid_version=1, chunk_size=1024))
    blocks = {cid_str(c): b for c, b in _walk(local, root)}
    return root, data, blocks


def _walk(local: HFCacheBackend, root: str) -> Iterator[tuple[object, bytes]]:
    from ipfs_mcp.backends.dag import walk

    return walk(parse_cid(root), local.repo.blocks.get)


@pytest.fixture
def fake(real_dag: tuple[str, bytes, dict[str, bytes]]) -> Iterator[FakeDaemon]:
    root, data, blocks = real_dag
    server = FakeDaemon(blocks, {root: data})
    try:
        yield server
    finally:
        server.close()


def test_fake_daemon_block_that_does_not_match_its_cid_is_an_integrity_error(
        fake: FakeDaemon, real_dag: tuple[str, bytes, dict[str, bytes]]) -> None:
    root, data, blocks = real_dag
    rpc = KuboRPCBackend.connect(fake.url, timeout=5)
    assert rpc.cat(root) == data  # honest answers pass
    leaf = next(k for k in blocks if k != root)
    fake.corrupt_blocks.add(leaf)
    with pytest.raises(IntegrityError, match=leaf):
        rpc.block_get(leaf)
    fake.corrupt_blocks = {root}
    with pytest.raises(IntegrityError):
        rpc.cat(root)
    with pytest.raises(IntegrityError):
        rpc.dag_export(root)
    rpc.close()


def test_fake_daemon_cat_bytes_that_do_not_match_the_cid_are_an_integrity_error(
        fake: FakeDaemon, real_dag: tuple[str, bytes, dict[str, bytes]]) -> None:
    root, data, _ = real_dag
    rpc = KuboRPCBackend.connect(fake.url, timeout=5)
    fake.cat_lies = True
    with pytest.raises(IntegrityError, match="do not"):
        rpc.cat(root)
    with pytest.raises(IntegrityError):  # a range that cuts leaves is checked too
        rpc.cat(root, offset=100, length=2000)
    rpc.close()


def test_fake_daemon_wrong_token_is_unavailable_with_a_hint(
        real_dag: tuple[str, bytes, dict[str, bytes]]) -> None:
    root, data, blocks = real_dag
    server = FakeDaemon(blocks, {root: data}, token="Bearer right-token")
    try:
        with pytest.raises(BackendUnavailable, match="IPFS_API_AUTHORIZATION") as info:
            KuboRPCBackend.connect(server.url, authorization="Bearer wrong-token", timeout=5)
        assert "wrong-token" not in str(info.value)  # secrets stay out of messages
        with pytest.raises(BackendUnavailable, match="403"):
            KuboRPCBackend.connect(server.url, timeout=5)
        rpc = KuboRPCBackend.connect(server.url, authorization="Bearer right-token", timeout=5)
        assert rpc.cat(root) == data
        assert "right-token" not in repr(rpc)
        rpc.close()
    finally:
        server.close()


@pytest.mark.skipif(not (EXTERNAL_API and EXTERNAL_AUTH),
                    reason="needs a real Kubo with API.Authorizations (IPFS_API and "
                           "IPFS_API_AUTHORIZATION); js-ipfs 0.66 has no API authorization")
def test_wrong_token_against_real_kubo() -> None:
    assert EXTERNAL_API is not None
    with pytest.raises(BackendUnavailable, match="IPFS_API_AUTHORIZATION"):
        KuboRPCBackend.connect(EXTERNAL_API, authorization="Bearer certainly-wrong", timeout=5)
    KuboRPCBackend.connect(EXTERNAL_API, authorization=EXTERNAL_AUTH, timeout=5).close()
