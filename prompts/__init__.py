"""ipfs_mcp.prompts."""
