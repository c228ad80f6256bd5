"""Shared fixtures: every test gets its own HF_HOME, so no test touches a real cache."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from interop.startup import START_TIMES

from ipfs_mcp.backends import router

# -- running on several workers (pytest-xdist: ``-n auto`` in pyproject) -------------------
# Tests are independent (port 0, tmp_path, their own HF_HOME), but a test file's tests go to
# one worker together: a module-scoped fixture (a Kubo 0.43 daemon, a 3-peer cluster, the
# conformance suite's build) is then made once, not once per worker. (xdist's own
# ``--dist loadgroup`` cannot do this here: it marks groups in the test ids, which pytest 9.2
# no longer lets a plugin change.) The files that make network namespaces (each a lab of
# daemons and routers) or 3-peer clusters (six daemons each), the heaviest loads the suite
# puts on the machine, also run one after another, each kind on one worker: two at once
# slow each other past their tests' bounds.
_ONE_AT_A_TIME = {
    "network-namespaces": ("tests/nat/", "tests/p2p/test_mdns.py"),
    "clusters": ("tests/interop/test_cluster_", "tests/interop/test_kubo043_harness.py"),
}


def _work_unit(nodeid: str) -> str:
    """The group of tests ``nodeid`` is sent to a worker with: its file, or a named group."""
    path = nodeid.split("::", 1)[0]
    for group, paths in _ONE_AT_A_TIME.items():
        if path.startswith(paths):
            return group
    return path


@pytest.hookimpl(optionalhook=True)  # an xdist hook: unknown where xdist is not installed
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    if config.getoption("dist") != "load":  # another --dist asked for by name: xdist's own
        return None
    from xdist.scheduler import LoadScopeScheduling  # type: ignore[import-untyped]

    class ByFile(LoadScopeScheduling):  # the biggest groups first (xdist's default order)
        def _split_scope(self, nodeid: str) -> str:
            return _work_unit(nodeid)

    return ByFile(config, log)


# -- the Go daemons' start-up times (tests/interop/startup.py), at the end of the run -------
def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: its times go to the controller
        workeroutput["go_start_times"] = list(START_TIMES)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    START_TIMES.extend(getattr(node, "workeroutput", {}).get("go_start_times", ()))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if START_TIMES:
        terminalreporter.write_sep("-", "Go daemon start-up times")
        for line in START_TIMES:
            terminalreporter.write_line(line)


@pytest.fixture
def anyio_backend() -> str:
    # The server, the tools and py-libp2p share one trio loop (py-libp2p runs on trio
    # only); anyio's pytest plugin runs each async test on it.
    return "trio"


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """An empty folder for a test's files (often the one allowed root)."""
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


@pytest.fixture(autouse=True)
def isolated_hf_home(tmp_path_factory: pytest.TempPathFactory,
                     monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("hf_home")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    for name in ("IPFS_BACKEND", "IPFS_API", "KUBO_CMD", "ENABLE_HF_CACHE", "ENABLE_IPFS_KIT",
                 "IPFS_KIT_DISABLE", "IPFS_ROUTER_CACHE", "IPFS_API_AUTHORIZATION",
                 "IPFS_API_TIMEOUT", "IPFS_READ_FALLBACK", "IPFS_CLUSTER_API",
                 "IPFS_CLUSTER_AUTHORIZATION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    router.reset()
    yield home
    router.reset()


def _seed_api_round_trip(tmp_path: Path) -> None:
    """Every seed router function once, on whatever backend is selected, with Kubo's CIDs."""
    import io

    from ipfs_mcp.backends.core.car import read_car
    from ipfs_mcp.backends.core.cids import cid_str

    cid = router.add_bytes(b"hello world\n")
    assert cid == "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
    assert router.cat(cid) == b"hello world\n"
    block = router.block_put(b"raw block")
    assert router.block_get(block) == b"raw block"
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_bytes(b"aaa\n")
    (tmp_path / "d" / "b.txt").write_bytes(b"bbb\n")
    root = router.add_path(tmp_path / "d")
    assert root == "Qmbf84Ab1zsAStesz6Q7CTHJWKhZyMd9KtYPqrxEvFuBsF"
    assert [e.name for e in router.ls(root)] == ["a.txt", "b.txt"]
    router.get_to_path(root, output_path=tmp_path / "out")
    assert (tmp_path / "out" / "b.txt").read_bytes() == b"bbb\n"
    roots, blocks = read_car(io.BytesIO(router.dag_export(root)))
    assert [cid_str(r) for r in roots] == [root] and len(list(blocks)) == 3
    router.unpin(root)
    router.pin(root)


@pytest.fixture
def seed_api_round_trip():
    """The seed-API check, shared by the embedded and the Kubo router tests."""
    return _seed_api_round_trip


Answer = Callable[[str], tuple[int, dict[str, str], bytes]]


@pytest.fixture
def http_server_of_own() -> Iterator[Callable[[Answer], str]]:
    """Tiny HTTP servers of the test's own on 127.0.0.1 (a gateway or router that the test
    makes honest or deliberately lying): ``start(answer)`` returns the base URL, where
    ``answer(path_with_query)`` gives ``(status, headers, body)`` for each GET."""
    servers: list[ThreadingHTTPServer] = []

    def start(answer: Answer) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                status, headers, body = answer(self.path)
                self.send_response(status)
                for key, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


# -- a disk that fills up ------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted for this test (needs root, as in CI)."""
    mount = tmp_path / "small"
    mount.mkdir()
    try:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                              capture_output=True, timeout=30)
    except (FileNotFoundError, PermissionError) as exc:
        pytest.skip(f"cannot mount a tmpfs here ({exc}); needs root with mount(8)")
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()} (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True, timeout=30, check=True)


def fill_disk(folder: Path) -> Path:
    """Another writer takes every free byte of the file system (until ENOSPC)."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as out:
        for _ in range(10_000):  # bounded: 4 MiB in 4 KiB steps is ~1000
            try:
                out.write(b"\xff" * 4096)
            except OSError:
                break
    return filler
