"""Failure paths: a daemon that dies mid-operation, a wrong token, and bytes that lie.

The one fake in this suite is :class:`FakeDaemon`: a tiny local HTTP server answering a
few RPC endpoints with blocks and bytes that do not match their CIDs (a lying daemon; no
real Kubo can be made to lie). The tests that use it say "fake" in their names.
Everything else runs a real Kubo 0.43 daemon, including the token tests
(``API.Authorizations`` with ``AllowedPaths``).
"""

from __future__ import annotations

import base64
import io
import json
import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from interop.kubo_daemon import KuboDaemon

from ipfs_mcp.backends import router
from ipfs_mcp.backends.core.car import write_car
from ipfs_mcp.backends.core.cids import cid_str, parse_cid
from ipfs_mcp.backends.core.importer import ImportOptions
from ipfs_mcp.backends.errors import BackendUnavailable, IntegrityError
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.remote.kubo.backend import KuboBackend
from ipfs_mcp.backends.remote.kubo.cli_transport import CLITransport
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.backends.settings import BackendSettings

from .conftest import BASIC_USER, READER_TOKEN


# -- a daemon that dies (real Kubo, killed) ---------------------------------------------------------------------
def test_daemon_killed_mid_cat_is_unavailable_not_a_short_read(own_daemon: KuboDaemon
                                                               ) -> None:
    rpc = KuboBackend.over_http(own_daemon.api_url, timeout=20)
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
    # Kubo's CLI sees the repo unlocked (no daemon) and opens it itself: the same bytes,
    # verified, with no daemon at all.
    cli = KuboBackend(CLITransport(own_daemon.cli_command, env=own_daemon.cli_env,
                                   timeout=60))
    assert cli.cat(cid, offset=5 << 20, length=1 << 20) == data[5 << 20:6 << 20]
    rpc.close()


class _KillAfter(io.RawIOBase):
    """A file being uploaded; the daemon dies once ``limit`` bytes have been read."""

    def __init__(self, daemon: KuboDaemon, size: int, limit: int) -> None:
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
        own_daemon: KuboDaemon, monkeypatch: pytest.MonkeyPatch) -> None:
    rpc = KuboBackend.over_http(own_daemon.api_url, timeout=20)
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

    def __init__(self, blocks: dict[str, bytes], files: dict[str, bytes]) -> None:
        self.blocks = dict(blocks)
        self.files = dict(files)
        self.corrupt_blocks: set[str] = set()
        self.cat_lies = False
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
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
    from ipfs_mcp.backends.core.dag import walk

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
    rpc = KuboBackend.over_http(fake.url, timeout=5)
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
    rpc = KuboBackend.over_http(fake.url, timeout=5)
    fake.cat_lies = True
    with pytest.raises(IntegrityError, match="do not"):
        rpc.cat(root)
    with pytest.raises(IntegrityError):  # a range that cuts leaves is checked too
        rpc.cat(root, offset=100, length=2000)
    rpc.close()


# -- a real daemon with API.Authorizations ---------------------------------------------------
def test_wrong_token_and_a_path_outside_allowed_paths_against_real_kubo(
        auth_daemon: KuboDaemon) -> None:
    url = auth_daemon.api_url
    data = random.randbytes(5000)
    cid = auth_daemon.add_bytes(data)  # the harness's admin token may add
    with pytest.raises(BackendUnavailable, match="IPFS_API_AUTHORIZATION") as info:
        KuboBackend.over_http(url, authorization="Bearer certainly-wrong", timeout=5)
    assert "certainly-wrong" not in str(info.value)  # secrets stay out of messages
    with pytest.raises(BackendUnavailable, match="40[13]"):
        KuboBackend.over_http(url, timeout=5)  # no token at all
    reader = KuboBackend.over_http(url, authorization=READER_TOKEN, timeout=5)
    assert reader.cat(cid) == data  # id, cat and block/get are allowed paths
    assert "kubo-suite-reader" not in repr(reader)
    with pytest.raises(BackendUnavailable, match="IPFS_API_AUTHORIZATION"):
        reader.add_bytes(b"add is outside this token's AllowedPaths")
    with pytest.raises(BackendUnavailable, match="IPFS_API_AUTHORIZATION"):
        reader.pin(cid)
    reader.close()
    user, password = BASIC_USER
    basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    KuboBackend.over_http(url, authorization=basic, timeout=5).close()
