"""Serving the gateway with hypercorn on the running trio loop, beside the MCP transport."""

from __future__ import annotations

import trio

from .app import Gateway


def bind_text(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def serve_gateway(gateway: Gateway, host: str, port: int, *, log_level: str = "WARNING",
                        task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
                        ) -> None:
    """Serve until cancelled; ``task_status`` receives the bound URLs (port 0 resolved).

    Whether ``host`` may be beyond loopback is decided when the settings are loaded
    (server/config.py), before anything binds.
    """
    from hypercorn.config import Config
    from hypercorn.trio import serve

    config = Config()
    config.bind = [bind_text(host, port)]
    config.accesslog = None
    config.errorlog = "-"  # stderr: on stdio, stdout belongs to the MCP protocol
    config.loglevel = log_level
    # Request headers are bounded (h11's default is 16 KiB); requests carry no body we read.
    config.h11_max_incomplete_size = 16 * 1024
    await serve(gateway, config, task_status=task_status)  # type: ignore[arg-type]
