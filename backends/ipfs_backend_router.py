"""The seed API under the name the replaced router's guide imports (``ipfs_backend_router``).

Every function here *is* the one in :mod:`ipfs_mcp.backends.router`, over its one default
Router; nothing is implemented twice. The guide's ``from ipfs_accelerate_py import
ipfs_backend_router`` becomes::

    from ipfs_mcp.backends import ipfs_backend_router

    cid = ipfs_backend_router.add_bytes(b"Hello, IPFS!", pin=True)
    assert ipfs_backend_router.cat(cid) == b"Hello, IPFS!"

Functions the guide lists: ``add_bytes``, ``cat``, ``pin``, ``unpin``, ``block_put``,
``block_get``, ``add_path``, ``get_to_path``, ``get_backend``, ``set_default_ipfs_backend``,
``register_ipfs_backend``, and (its troubleshooting step) ``_get_default_backend_cached
.cache_clear()``. ``IPFSBackend`` is the protocol a backend implements, in whole or in part.
"""

from __future__ import annotations

from ipfs_mcp.backends.backend import Backend
from ipfs_mcp.backends.router import (
    RouterDeps,
    add_bytes,
    add_path,
    block_get,
    block_put,
    cat,
    clear_caches,
    dag_export,
    get_backend,
    get_to_path,
    ls,
    pin,
    register_ipfs_backend,
    set_default_ipfs_backend,
    unpin,
)

IPFSBackend = Backend


class _DefaultBackend:
    """The guide's ``_get_default_backend_cached``: called, the backend in use; its
    ``cache_clear()`` forgets the built backends, so the next call selects again from the
    environment (registrations and the default choice stay)."""

    def __call__(self) -> Backend:
        return get_backend()

    @staticmethod
    def cache_clear() -> None:
        clear_caches()


_get_default_backend_cached = _DefaultBackend()

__all__ = [
    "IPFSBackend", "RouterDeps", "add_bytes", "add_path", "block_get", "block_put", "cat",
    "dag_export", "get_backend", "get_to_path", "ls", "pin", "register_ipfs_backend",
    "set_default_ipfs_backend", "unpin",
]
