"""ipfs_mcp.server."""
