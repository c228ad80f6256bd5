"""Where the JS interop tools live, and how to run them.

The npm project is ``tests/interop/js`` (committed with its ``package-lock.json``). Its
``node_modules`` is not committed; install it with::

    npm ci --prefix tests/interop/js

Tests that need it call :func:`js_skip_reason` (or use the ``js_tools`` fixture) and skip,
saying why, when Node or ``node_modules`` is missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["JS_DIR", "NODE_MODULES", "import_args", "node_binary", "js_skip_reason", "run_js",
           "unixfs_import", "unixfs_import_batch"]

JS_DIR = Path(__file__).resolve().with_name("js")
NODE_MODULES = JS_DIR / "node_modules"
MIN_NODE_MAJOR = 20
# Packages the scripts import; their absence means a broken or partial install.
_REQUIRED = ("helia", "@helia/unixfs", "@helia/libp2p", "@helia/bitswap", "@libp2p/tcp",
             "@chainsafe/libp2p-noise", "@chainsafe/libp2p-yamux", "@libp2p/identify",
             "@libp2p/kad-dht", "blockstore-fs", "ipfs-unixfs-importer", "ipfs-car",
             "@helia/trustless-gateway-client", "@helia/delegated-routing-client",
             "@helia/delegated-routing-v1-http-api-client", "@helia/fallback-router")


def node_binary() -> str | None:
    return shutil.which("node")


def _node_major(node: str) -> int | None:
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=20,
                             check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    try:
        return int(out.lstrip("v").split(".")[0])
    except ValueError:
        return None


_cached_reason: list[str | None] = []


def js_skip_reason() -> str | None:
    """Why the JS tools cannot run here (a sentence for ``pytest.skip``), or None."""
    if _cached_reason:
        return _cached_reason[0]
    reason: str | None = None
    node = node_binary()
    if node is None:
        reason = "Node.js is not installed (need node >= 20 on PATH)"
    else:
        major = _node_major(node)
        if major is None or major < MIN_NODE_MAJOR:
            reason = f"Node.js {major} is too old (need >= {MIN_NODE_MAJOR})"
        elif not NODE_MODULES.is_dir():
            reason = (f"JS interop tools not installed: {NODE_MODULES} is missing; "
                      "run `npm ci --prefix tests/interop/js`")
        else:
            missing = [p for p in _REQUIRED if not (NODE_MODULES / p / "package.json").is_file()]
            if missing:
                reason = (f"JS interop tools incomplete (missing {', '.join(missing)}); "
                          "run `npm ci --prefix tests/interop/js`")
    _cached_reason.append(reason)
    return reason


def run_js(script: str, *args: str, stdin: str | None = None, timeout: float = 120.0) -> str:
    """Run ``node tests/interop/js/SCRIPT ARGS`` and return its stdout.

    Raises:
        RuntimeError: the tools are missing, or the script failed (stderr included).
        subprocess.TimeoutExpired: it ran longer than ``timeout`` (the process is killed).
    """
    reason = js_skip_reason()
    if reason is not None:
        raise RuntimeError(reason)
    node = node_binary()
    assert node is not None
    proc = subprocess.run([node, str(JS_DIR / script), *args], input=stdin,
                          capture_output=True, text=True, timeout=timeout, cwd=str(JS_DIR))
    if proc.returncode != 0:
        raise RuntimeError(f"node {script} exited with {proc.returncode}:\n{proc.stderr[-4000:]}")
    return proc.stdout


def import_args(*, cid_version: int = 0, raw_leaves: bool | None = None,
                chunk_size: int | None = None, max_links: int | None = None, wrap: bool = False,
                hidden: bool = False, shard_threshold: int | None = None) -> dict[str, Any]:
    """Import options (Python names, Kubo semantics) as the JS scripts take them
    (``js/importopts.mjs``); an option left None is left to the script's default."""
    args: dict[str, Any] = {"cidVersion": cid_version, "wrap": wrap, "hidden": hidden}
    if raw_leaves is not None:
        args["rawLeaves"] = raw_leaves
    if chunk_size is not None:
        args["chunkSize"] = chunk_size
    if max_links is not None:
        args["maxChildren"] = max_links
    if shard_threshold is not None:
        args["shardThreshold"] = shard_threshold
    return args


def _job(path: Path | str, *, js_shard_compare: bool = False, entries: bool = False,
         **options: Any) -> dict[str, Any]:
    return {"path": str(path), "entries": entries, "jsShardCompare": js_shard_compare,
            **import_args(**options)}


def unixfs_import_batch(jobs: list[dict[str, Any]], *, timeout: float = 300.0
                        ) -> list[dict[str, Any]]:
    """Import many paths with ``ipfs-unixfs-importer`` in one Node process.

    Each job takes the keyword arguments of :func:`unixfs_import` (Python names:
    ``path, cid_version, raw_leaves, chunk_size, max_links, wrap, hidden,
    shard_threshold, js_shard_compare, entries``). Returns one dict per job:
    ``{"root": cid}`` plus ``"entries": {relpath: cid}`` when asked, or ``{"error": ...}``.
    """
    spec = {"jobs": [_job(**job) for job in jobs]}
    out = run_js("unixfs_import.mjs", "--batch", stdin=json.dumps(spec), timeout=timeout)
    return list(json.loads(out)["results"])


def unixfs_import(path: Path | str, **options: Any) -> dict[str, Any]:
    """The root CID (and entries) ``ipfs-unixfs-importer`` gives ``path``.

    Options (Kubo semantics, see ``js/importopts.mjs``): ``cid_version=0``,
    ``raw_leaves=None`` (= cid_version == 1), ``chunk_size=262144``, ``max_links=174``,
    ``wrap=False``, ``hidden=False``, ``shard_threshold=262144``,
    ``js_shard_compare=False``, ``entries=False``.

    Raises:
        RuntimeError: the import failed.
    """
    result = unixfs_import_batch([{"path": path, **options}])[0]
    if "error" in result:
        raise RuntimeError(f"ipfs-unixfs-importer failed on {path}: {result['error']}")
    return result
