"""ASGI plumbing the gateway's parts share: message types, the headers every response
carries (CORS as the gateway specs ask), and small senders."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import quote

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

IMMUTABLE = b"public, max-age=29030400, immutable"
LISTING_CACHE = b"public, max-age=604800, stale-while-revalidate=2678400"
CORS_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"GET, HEAD, OPTIONS"),
    (b"access-control-allow-headers", b"Content-Type, Range, User-Agent, X-Requested-With"),
    (b"access-control-expose-headers", b"Content-Length, Content-Range, X-Chunked-Output, "
                                       b"X-Stream-Output, X-Ipfs-Path, X-Ipfs-Roots"),
)
def header_text(text: str) -> bytes:
    """A header value: UTF-8, with control characters percent-encoded so that no name in a
    DAG can end a header line."""
    return "".join(quote(c) if ord(c) < 0x20 or c == "\x7f" else c for c in text).encode()


def header_map(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        out[key] = f"{out[key]}, {text}" if key in out else text
    return out


async def plain(send: Send, status: int, body: bytes,
                 extra: list[tuple[bytes, bytes]] | tuple = ()) -> None:
    headers = [*(extra or CORS_HEADERS), (b"content-type", b"text/plain; charset=utf-8"),
               (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_page(send: Send, status: int, body: bytes, content_type: bytes,
                    headers: list[tuple[bytes, bytes]], head: bool = False) -> None:
    """A whole answer whose body is in memory (HEAD: the headers alone)."""
    headers = [*headers, (b"content-type", content_type),
               (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
