"""Serving the gateway with hypercorn on the running trio loop, beside the MCP transport.

With a certificate (``--gateway-tls CERT KEY``) it speaks TLS and offers HTTP/2 by ALPN,
HTTP/1.1 beside it: Kubo's HTTP retrieval uses only ``/tls/http`` providers that answer
over HTTP/2, and browsers reach h2 only over TLS.
"""

from __future__ import annotations

from pathlib import Path

import trio

from ..config import DEFAULT_SEND_IDLE
from .asgi import App

# Request headers are bounded (h11's default is 16 KiB, h2's 64 KiB); requests carry no
# body we read.
MAX_HEADER_BYTES = 16 * 1024


def bind_text(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def serve_gateway(gateway: App, host: str, port: int, *, log_level: str = "WARNING",
                        tls: tuple[Path, Path] | None = None,
                        write_timeout: float = DEFAULT_SEND_IDLE,
                        task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
                        ) -> None:
    """Serve ``gateway`` (a :class:`~.app.Gateway`, or any ASGI app wrapping one) until
    cancelled; ``task_status`` receives the bound URLs (port 0 resolved;
    ``https://`` with ``tls``, a PEM certificate chain and its key). A response whose
    client takes nothing for ``write_timeout`` seconds is dropped.

    Whether ``host`` may be beyond loopback, and whether the TLS files load, is decided
    when the settings are loaded (server/config.py), before anything binds.
    """
    from hypercorn.config import Config

    from ..hypercorn_worker import serve_asgi

    config = Config()
    config.bind = [bind_text(host, port)]
    config.accesslog = None
    config.errorlog = "-"  # stderr: on stdio, stdout belongs to the MCP protocol
    config.loglevel = log_level
    config.h11_max_incomplete_size = MAX_HEADER_BYTES
    config.h2_max_header_list_size = MAX_HEADER_BYTES
    if tls is not None:
        config.certfile, config.keyfile = str(tls[0]), str(tls[1])
        config.alpn_protocols = ["h2", "http/1.1"]
    await serve_asgi(gateway, config, write_timeout=write_timeout, task_status=task_status)
