"""ipfs_mcp.p2p."""
