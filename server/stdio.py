"""MCP over stdio, where every request line gets an answer.

The SDK's stdio transport hands a line it cannot read as a JSON-RPC message to the session as
an exception, and the session only logs it at debug level: the client waits for a reply that
never comes. A lone-surrogate escape (``"\\ud800"``) is such a line: valid JSON to Python, but
not valid Unicode, so pydantic refuses it. :class:`AnsweringReader` sits between the
transport and the server and answers those lines itself, as JSON-RPC 2.0 asks: a parse
error with ``id: null`` for text that is not JSON, an error with the request's own id when
the id can still be read; a notification (no id) is logged, since it gets no reply.
"""

from __future__ import annotations

import json
import logging
from types import TracebackType
from typing import Any, Self

import mcp_types as types
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared._stream_protocols import ReadStream, WriteStream
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

log = logging.getLogger(__name__)

Item = SessionMessage | Exception


def error_reply(exc: Exception) -> SessionMessage | None:
    """The JSON-RPC error that answers a line the transport could not read (None for a
    notification or a response, which get no reply)."""
    line = _line_of(exc)
    try:
        message = json.loads(line) if line is not None else None
    except ValueError:
        return _error(None, types.PARSE_ERROR, "the line is not JSON")
    if not isinstance(message, dict):
        return _error(None, types.INVALID_REQUEST, "a request is one JSON object per line")
    request_id = message.get("id")
    if "method" not in message and ("result" in message or "error" in message):
        log.warning("dropped a malformed response from the client: %s", _reason(exc))
        return None
    if request_id is None and "method" in message:
        log.warning("dropped a malformed notification: %s", _reason(exc))
        return None
    if not isinstance(request_id, str | int) or isinstance(request_id, bool):
        request_id = None
    if line is not None and _has_lone_surrogate(message):
        return _error(request_id, types.PARSE_ERROR,
                      "the request carries a lone surrogate escape (\\ud800-\\udfff without "
                      "its pair), which is not valid Unicode; nothing was done")
    return _error(request_id, types.INVALID_REQUEST, f"invalid request: {_reason(exc)}")


def _line_of(exc: Exception) -> str | None:
    if isinstance(exc, ValidationError):
        for error in exc.errors():
            if isinstance(error.get("input"), str | bytes):
                raw = error["input"]
                return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
            if isinstance(error.get("input"), dict):
                return json.dumps(error["input"])
    return None


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        return f"{where + ': ' if where else ''}{first.get('msg', '')}"
    return f"{type(exc).__name__}: {exc}"


def _has_lone_surrogate(value: Any) -> bool:
    """True when any string in the decoded JSON cannot be encoded as UTF-8. Iterative: the
    nesting of a request is the client's to choose."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _error(request_id: str | int | None, code: int, message: str) -> SessionMessage:
    return SessionMessage(types.JSONRPCError(
        jsonrpc="2.0", id=request_id, error=types.ErrorData(code=code, message=message)))


class AnsweringReader:
    """The transport's read stream, minus the lines it could not read: each is answered on
    ``replies`` (see :func:`error_reply`) and never reaches the server."""

    def __init__(self, inner: ReadStream[Item], replies: WriteStream[SessionMessage]) -> None:
        self._inner = inner
        self._replies = replies

    @property
    def last_context(self) -> object:
        """The sender's context, as the SDK's context streams carry it."""
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> Item:
        while not await self._passes(item := await self._inner.receive()):
            pass
        return item

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Item:
        while not await self._passes(item := await self._inner.__anext__()):
            pass
        return item

    async def _passes(self, item: Item) -> bool:
        """True for a message for the server; an unreadable line is answered here."""
        if not isinstance(item, Exception):
            return True
        reply = error_reply(item)
        if reply is not None:
            await self._replies.send(reply)
        return False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc_val: BaseException | None, exc_tb: TracebackType | None) -> None:
        await self.aclose()


async def run_stdio(server: MCPServer) -> None:
    """Serve ``server`` on stdin and stdout until stdin closes, as ``run_stdio_async`` does,
    with every unreadable request line answered."""
    # The SDK offers no public way to put a reader in front of its server; this is what
    # MCPServer.run_stdio_async does with the same private member.
    lowlevel = server._lowlevel_server
    async with stdio_server() as (read_stream, write_stream):
        await lowlevel.run(AnsweringReader(read_stream, write_stream), write_stream,
                           lowlevel.create_initialization_options())
