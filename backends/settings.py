"""Backend settings, read from the environment in one place and then frozen.

Environment (the names the old ``ipfs_backend_router`` honoured, plus ours):

============================  ==============================================================
``IPFS_BACKEND``              force a backend by name (``ipfs_kit``, ``hf_cache``, ``kubo``
                              or any registered one)
``ENABLE_IPFS_KIT``           consider ipfs_kit_py at all (default ``1``)
``IPFS_KIT_DISABLE``          never consider ipfs_kit_py (default ``0``)
``ENABLE_HF_CACHE``           consider the embedded hf_cache repo (default ``1``)
``KUBO_CMD``                  the Kubo CLI to run (default ``ipfs``)
``IPFS_API``                  a Kubo RPC endpoint, URL (``http://127.0.0.1:5001``) or API
                              multiaddr (``/ip4/127.0.0.1/tcp/5001``); with
                              ``IPFS_BACKEND=kubo`` it selects the RPC client over the CLI
``IPFS_API_AUTHORIZATION``    the ``Authorization`` header value sent to that endpoint, for
                              Kubo's ``API.Authorizations`` (``Bearer <token>`` or
                              ``Basic <base64 user:pass>``); never logged
``IPFS_API_TIMEOUT``          seconds a Kubo request may take (default ``60``); reads that
                              search the network are cut off at this bound
``IPFS_CLUSTER_API``          an IPFS Cluster peer's REST API for ``IPFS_BACKEND=cluster``
                              (default ``http://127.0.0.1:9094``); reads go through
                              ``IPFS_API`` if set, else that host's IPFS proxy (port 9095)
``IPFS_CLUSTER_AUTHORIZATION`` the ``Authorization`` header value for that REST API
                              (``Basic <base64 user:pass>`` or ``Bearer <token>``); never
                              logged
``IPFS_READ_FALLBACK``        let reads that miss fall back to the next working backend
                              (default ``1``); writes never switch backend
``HF_HOME``                   HuggingFace home; the repo lives in ``$HF_HOME/ipfs``
``HF_HUB_CACHE``              the hub cache (default ``$HF_HOME/hub``)
``IPFS_ROUTER_CACHE``         reuse backend instances between calls (default ``1``)
``IPFS_MCP_MAX_WRITE``        most bytes one write to disk (``get -o``, ``output_path``,
                              ``into_hf_cache``) may take, e.g. ``20G``; default 90% of the
                              free space at the target (see ``limits.py``)
``IPFS_MCP_MAX_WRITE_FILES``  most files, folders and links one write may create (default
                              100000); the free inodes of the target bound it too
``IPFS_MCP_REPO_MAX``         bound on the embedded repo's blocks, e.g. ``50G`` (Kubo's
                              ``Datastore.StorageMax``; default none, a leecher's role
                              sets one): past the watermark unpinned blocks are evicted
``IPFS_MCP_REPO_WATERMARK``   share of that bound past which eviction starts, ``0.9`` or
                              ``90%`` (Kubo's ``StorageGCWatermark``; default 90%)
``IPFS_MCP_MEMORY_TIER``      bytes of hot blocks kept in memory (default ``64M``; ``0``:
                              none)
============================  ==============================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ipfs_mcp.backends.core.limits import DEFAULT_MAX_WRITE_ENTRIES, parse_max_write
from ipfs_mcp.backends.errors import InvalidInput

DEFAULT_MEMORY_TIER = 64 << 20
DEFAULT_REPO_WATERMARK = 0.9
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = env.get(name)
    if value is None:
        return default
    value = value.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return default


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    value = (env.get(name) or "").strip()
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number > 0:
        # Settings are read once at start-up: a typo should stop it, not become a default.
        raise InvalidInput(f"{name} must be a positive number of seconds, not {value!r}")
    return number


def _max_write_files(env: Mapping[str, str]) -> int:
    value = (env.get("IPFS_MCP_MAX_WRITE_FILES") or "").strip()
    if not value:
        return DEFAULT_MAX_WRITE_ENTRIES
    if not value.isdigit() or int(value) < 1:
        raise InvalidInput(f"IPFS_MCP_MAX_WRITE_FILES must be a positive whole number of "
                           f"files, not {value!r}")
    return int(value)


def _max_write(env: Mapping[str, str]) -> int | None:
    try:
        return parse_max_write(env.get("IPFS_MCP_MAX_WRITE"))
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


def _bytes(env: Mapping[str, str], name: str) -> int | None:
    try:
        return parse_max_write(env.get(name), name)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


def parse_watermark(value: str | None, name: str = "IPFS_MCP_REPO_WATERMARK") -> float:
    """A share in (0, 1], as ``0.9`` or ``90%`` (empty: the default).

    Raises:
        InvalidInput: not such a share.
    """
    text = (value or "").strip()
    if not text:
        return DEFAULT_REPO_WATERMARK
    try:
        share = float(text.removesuffix("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        share = -1.0
    if not 0 < share <= 1:
        raise InvalidInput(f"{name}={value!r} is not a share of the bound (e.g. 0.9 or 90%)")
    return share


def _memory_tier(env: Mapping[str, str]) -> int:
    value = (env.get("IPFS_MCP_MEMORY_TIER") or "").strip()
    if value in ("0", "0B"):
        return 0
    return _bytes(env, "IPFS_MCP_MEMORY_TIER") or DEFAULT_MEMORY_TIER


@dataclass(frozen=True)
class BackendSettings:
    hf_home: Path
    hf_hub_cache: Path
    backend: str | None = None
    enable_ipfs_kit: bool = True
    enable_hf_cache: bool = True
    kubo_cmd: str = "ipfs"
    ipfs_api: str | None = None
    # repr=False: the header is a secret and settings objects end up in logs and errors.
    ipfs_api_authorization: str | None = field(default=None, repr=False)
    ipfs_api_timeout: float = 60.0
    ipfs_cluster_api: str = "http://127.0.0.1:9094"
    ipfs_cluster_authorization: str | None = field(default=None, repr=False)
    read_fallback: bool = True
    router_cache: bool = True
    max_write: int | None = None  # None: limits.DEFAULT_WRITE_SHARE of the free space
    max_write_files: int = DEFAULT_MAX_WRITE_ENTRIES  # files, folders, links one write makes
    repo_max: int | None = None  # bytes in blocks/ (None: unbounded)
    repo_watermark: float = DEFAULT_REPO_WATERMARK
    memory_tier_bytes: int = DEFAULT_MEMORY_TIER

    @property
    def repo_path(self) -> Path:
        return self.hf_home / "ipfs"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BackendSettings:
        env = os.environ if env is None else env
        hf_home = Path(env.get("HF_HOME") or Path("~/.cache/huggingface")).expanduser()
        hub = Path(env.get("HF_HUB_CACHE") or hf_home / "hub").expanduser()
        return cls(
            hf_home=hf_home,
            hf_hub_cache=hub,
            backend=(env.get("IPFS_BACKEND") or "").strip() or None,
            enable_ipfs_kit=env_flag(env, "ENABLE_IPFS_KIT", True)
            and not env_flag(env, "IPFS_KIT_DISABLE", False),
            enable_hf_cache=env_flag(env, "ENABLE_HF_CACHE", True),
            kubo_cmd=(env.get("KUBO_CMD") or "ipfs").strip(),
            ipfs_api=(env.get("IPFS_API") or "").strip() or None,
            ipfs_api_authorization=(env.get("IPFS_API_AUTHORIZATION") or "").strip() or None,
            ipfs_api_timeout=_positive_float(env, "IPFS_API_TIMEOUT", 60.0),
            ipfs_cluster_api=(env.get("IPFS_CLUSTER_API") or "").strip()
            or "http://127.0.0.1:9094",
            ipfs_cluster_authorization=(env.get("IPFS_CLUSTER_AUTHORIZATION") or "").strip()
            or None,
            read_fallback=env_flag(env, "IPFS_READ_FALLBACK", True),
            router_cache=env_flag(env, "IPFS_ROUTER_CACHE", True),
            max_write=_max_write(env),
            max_write_files=_max_write_files(env),
            repo_max=_bytes(env, "IPFS_MCP_REPO_MAX"),
            repo_watermark=parse_watermark(env.get("IPFS_MCP_REPO_WATERMARK")),
            memory_tier_bytes=_memory_tier(env),
        )
