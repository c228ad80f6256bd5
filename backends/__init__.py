"""ipfs_mcp.backends."""
