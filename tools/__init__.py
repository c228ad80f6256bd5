"""ipfs_mcp.tools: one plain async function per MCP tool, over the backend and the P2P node.

The functions take their components as arguments (a backend from the router, the node or
None, the allowed roots, limits), return the pydantic models of :mod:`.models`, and raise
the project's errors (:mod:`ipfs_mcp.backends.errors`). They know nothing of MCP: the
server (:mod:`ipfs_mcp.server.app`) wires them in and turns errors into tool results.

- :mod:`.content`  store_model, add_content, fetch_cid, ls, pin, unpin, list_pins, repo_gc
- :mod:`.network`  find_providers, connect_peer, announce, peer_stats
- :mod:`.health`   the node-health report
- :mod:`.import_options` Kubo's import profile and add flags, as the tools and the CLI take them
- :mod:`.roots`    allowed roots: where local paths may be read and written
- :mod:`.progress` blocking work in worker threads, with progress and cancellation
"""
