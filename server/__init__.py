"""ipfs_mcp.server: the MCP server (``MCPServer`` from the official SDK) and ``ipfs-mcp``.

- :mod:`.app`     builds the server: tools, resources, prompts, completions
- :mod:`.state`   the lifespan: settings, backend, router selection, P2P node
- :mod:`.config`  settings from the environment and the command line, frozen
- :mod:`.http`    streamable HTTP on hypercorn: bearer token, DNS-rebinding guard, body limit
- :mod:`.hypercorn_worker`  hypercorn on the trio loop, for HTTP and the gateway: one
  connection's error never stops the listener, a client that stops reading is dropped
- :mod:`.serve`   ``ipfs-mcp serve`` (stdio or HTTP)
- :mod:`.cli`     the ``ipfs-mcp`` command line
"""
