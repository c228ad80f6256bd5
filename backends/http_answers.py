"""What every HTTP client of ours does with an answer: translate httpx's failures into the
project's errors, read an error body's message, read JSON lines, and read a body only up to
a bound.

Shared by the Kubo RPC and IPFS Cluster backends, the trustless-gateway source and the
delegated-routing client, so a dead daemon, a slow one and a hostile one read the same way
wherever they are met.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx

from ipfs_mcp.backends.errors import BackendUnavailable, DaemonUnreachable, IpfsMcpError, Timeout


def http_failure(exc: httpx.HTTPError, *, service: str, what: str, timeout: float,
                 start_hint: str, broken_hint: str = "") -> IpfsMcpError:
    """``exc`` in our tree: nothing answers (``DaemonUnreachable``, with ``start_hint``),
    no answer in time (``Timeout``), or the connection broke (``BackendUnavailable``).

    ``service`` names it with its URL ("Kubo at http://...").
    """
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return DaemonUnreachable(f"nothing answers for {service} ({what}: {exc}); {start_hint}")
    if isinstance(exc, httpx.TimeoutException):
        return Timeout(f"{service} did not answer {what} within {timeout:g} s "
                       "(IPFS_API_TIMEOUT)")
    return BackendUnavailable(f"the connection to {service} broke during {what}: {exc}"
                              f"{'; ' + broken_hint if broken_hint else ''}")


def error_message(response: httpx.Response, key: str) -> str:
    """The message of an error answer: the JSON body's ``key``, else the body, else the
    status's reason."""
    try:
        body = response.read().decode("utf-8", "replace")
    except httpx.HTTPError:
        body = ""
    try:
        return str(json.loads(body).get(key) or body)
    except (ValueError, AttributeError):
        return body.strip() or response.reason_phrase


def json_lines(lines: Iterable[str], not_json: Callable[[str], IpfsMcpError]
               ) -> Iterator[Any]:
    """The JSON value of each non-empty line: an NDJSON stream, or a one-line answer.

    Raises:
        IpfsMcpError: ``not_json(line)``, for the first line that is not JSON.
    """
    for line in lines:
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise not_json(line) from exc
        yield value


def read_bounded(response: httpx.Response, limit: int) -> bytes | None:
    """The whole body of a streamed answer, or None once it passes ``limit`` bytes (the
    rest is never read: a hostile server cannot make us hold more)."""
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)
