"""ipfs_mcp.tools."""
