"""Kubo commands over its HTTP RPC API (``POST /api/v0/<cmd>?arg=...``), with httpx.

Selected by ``IPFS_API`` (a URL such as ``http://127.0.0.1:5001`` or an API multiaddr such
as ``/ip4/127.0.0.1/tcp/5001``). An ``Authorization`` header (``IPFS_API_AUTHORIZATION``)
is sent on every request, for Kubo's ``API.Authorizations``. Bodies stream as multipart
uploads (files are read in 1 MiB pieces as they are sent).

Bounded and honest failure:

* every request has a timeout (``IPFS_API_TIMEOUT``); commands that may search the network
  also pass Kubo's own ``timeout`` option, so the daemon gives up at the same bound;
* a connection that cannot be opened is retried once (nothing was sent, so it is safe);
  requests are never replayed after the daemon may have acted on them;
* no daemon is :class:`DaemonUnreachable` with the URL tried and a hint; a 401/403 says
  to check the token; a missing block is :class:`BlockNotFound`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx

from ipfs_mcp.backends.errors import (
    BackendUnavailable,
    BlockNotFound,
    InvalidInput,
    IpfsMcpError,
    NotFound,
    PinNotFound,
    Timeout,
)
from ipfs_mcp.backends.http_answers import error_message, http_failure, json_lines
from ipfs_mcp.backends.remote.kubo.transport import Body, Options, Search, option_text
from ipfs_mcp.backends.remote.kubo.upload import (
    PIECE,
    LocalTree,
    Part,
    multipart,
    multipart_boundary,
)

__all__ = ["HTTPTransport", "api_url_from", "DEFAULT_API"]

DEFAULT_API = "http://127.0.0.1:5001"
_PROBE_TIMEOUT = 5.0
_MARGIN = 5.0  # our bound outlives the daemon's own search by this much
_NOT_FOUND_HINTS = ("not found", "could not find", "no link named", "no such file",
                    "does not exist")
# Kubo's own --timeout ran out: the daemon did not find it in time, which is not "absent".
_TIMEOUT_HINTS = ("context deadline exceeded", "request timed out", "timed out")


def api_url_from(value: str | None) -> str:
    """``IPFS_API`` as a base URL: a URL is kept, an API multiaddr is translated.

    ``/ip4/127.0.0.1/tcp/5001`` -> ``http://127.0.0.1:5001``; ``/ip6/::1/tcp/5001``,
    ``/dns4/host/tcp/5001`` and a trailing ``/http`` or ``/https`` are understood too.

    Raises:
        InvalidInput: neither a http(s) URL nor a TCP multiaddr.
    """
    text = (value or DEFAULT_API).strip().rstrip("/")
    if text.startswith("/"):
        parts = text.strip("/").split("/")
        if len(parts) < 4 or parts[0] not in ("ip4", "ip6", "dns", "dns4", "dns6") \
                or parts[2] != "tcp" or not parts[3].isdigit():
            raise InvalidInput(f"IPFS_API multiaddr {value!r} is not /ip4|ip6|dns/HOST/tcp/PORT")
        rest = parts[4:]
        if rest not in ([], ["http"], ["https"]):
            raise InvalidInput(f"IPFS_API multiaddr {value!r}: only /http or /https may follow "
                               "the port")
        scheme = rest[0] if rest else "http"
        host = f"[{parts[1]}]" if parts[0] == "ip6" else parts[1]
        return f"{scheme}://{host}:{parts[3]}"
    try:
        split = urlsplit(text)
    except ValueError as exc:  # "http://[zz": urlsplit's own complaint, said as ours
        raise InvalidInput(f"IPFS_API {value!r} is not a URL: {exc}") from None
    if split.scheme not in ("http", "https") or not split.netloc:
        raise InvalidInput(f"IPFS_API {value!r} is not an http(s) URL or an API multiaddr")
    return text.removesuffix("/api/v0")


def _duration(seconds: float) -> str:
    return f"{seconds:.3f}s"


class HTTPTransport:
    """Kubo's RPC API as a :class:`~.transport.KuboTransport` (see the module docstring).

    Args:
        api: base URL or API multiaddr of the daemon.
        client: the ``httpx.Client`` to use (tests and embedders pass their own); by
            default one is made with the timeout and a single connect retry.
        authorization: the ``Authorization`` header value, if the API requires one.
        timeout: seconds any one request may take.
    """

    def __init__(self, api: str | None = None, *, client: httpx.Client | None = None,
                 authorization: str | None = None, timeout: float = 60.0) -> None:
        self.url = api_url_from(api)
        self.timeout = timeout
        self.node = f"Kubo at {self.url}"
        self.label = f"kubo at {self.url}"
        self.summary = f"RPC API at {self.url}"
        self.probe_timeout = min(timeout, _PROBE_TIMEOUT)
        self._headers = {"Authorization": authorization} if authorization else {}
        self._owns_client = client is None
        # Searches pass `timeout` to the daemon as well; our own bound is a little longer so
        # that the daemon's "not found" arrives before we would have to cut the request.
        self.client = client or httpx.Client(
            timeout=httpx.Timeout(timeout + _MARGIN, connect=min(timeout, 10.0)),
            transport=httpx.HTTPTransport(retries=1))

    def __repr__(self) -> str:
        return f"HTTPTransport({self.url!r})"  # never the Authorization header

    def not_kubo(self, exc: Exception) -> str:
        return f"{self.url} does not behave like a Kubo RPC API: {exc}"

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    # -- the protocol -------------------------------------------------------------------
    def records(self, cmd: str, *args: str, options: Options | None = None,
                body: Body | None = None, subject: str | None = None,
                search: Search = False, wait: float | None = None) -> list[dict[str, Any]]:
        content, boundary = _encode(body)
        with self._request(cmd, args, options, search, subject=subject, content=content,
                           boundary=boundary, wait=wait) as response:
            out = []
            for value in json_lines(response.iter_lines(), lambda line: IpfsMcpError(
                    f"Kubo at {self.url}: {cmd} sent a line that is not JSON: "
                    f"{line[:200]!r}")):
                if isinstance(value, dict) and value.get("Type") == "error" \
                        and "Message" in value:
                    # An error after a 200: Kubo's streaming commands report failures in-band.
                    raise IpfsMcpError(f"Kubo at {self.url}: {cmd} failed: {value['Message']}")
                out.append(value)
            return out

    def stream(self, cmd: str, *args: str, options: Options | None = None,
               subject: str | None = None, search: Search = False) -> Iterator[bytes]:
        # Errors while reading the body surface inside _request, which maps them.
        with self._request(cmd, args, options, search, subject=subject) as response:
            yield from response.iter_bytes(PIECE)

    # -- requests -----------------------------------------------------------------------
    @contextmanager
    def _request(self, cmd: str, args: tuple[str, ...], options: Options | None,
                 search: Search, *, subject: str | None,
                 content: Iterator[bytes] | None = None, boundary: str | None = None,
                 wait: float | None = None) -> Iterator[httpx.Response]:
        """POST to ``/api/v0/<cmd>`` and yield the streaming response (200 only)."""
        headers = dict(self._headers)
        if boundary is not None:
            headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        query: dict[str, str | list[str]] = {
            k: option_text(v) for k, v in (options or {}).items() if v is not None}
        if args:
            query["arg"] = list(args)
        limit: float | None = wait
        if search is True:
            query["timeout"] = _duration(self.timeout)  # Kubo's own, a global option
        elif search is not False:
            query["timeout"] = _duration(search)
            limit = search + _MARGIN
        request_timeout = httpx.USE_CLIENT_DEFAULT if limit is None else limit
        try:
            with self.client.stream("POST", f"{self.url}/api/v0/{cmd}", params=query,
                                    content=content, headers=headers,
                                    timeout=request_timeout) as response:
                if response.status_code != 200:
                    raise self._error(cmd, response, subject)
                yield response
        except httpx.HTTPError as exc:  # connect, timeout and protocol errors
            raise self._unavailable(cmd, exc) from exc

    def _unavailable(self, what: str, exc: httpx.HTTPError) -> IpfsMcpError:
        return http_failure(exc, service=f"the Kubo RPC API at {self.url}", what=what,
                            timeout=self.timeout + _MARGIN,
                            start_hint="start the daemon (`ipfs daemon`) or point IPFS_API "
                                       "at its API address",
                            broken_hint="is the daemon still running?")

    def _error(self, what: str, response: httpx.Response, subject: str | None) -> IpfsMcpError:
        """Kubo's error answer (``{"Message": ..., "Code": ..., "Type": "error"}``) mapped."""
        status = response.status_code
        message = error_message(response, "Message")
        if status in (401, 403):
            return BackendUnavailable(
                f"Kubo at {self.url} refused {what} ({status} {message.strip()}); check "
                "IPFS_API_AUTHORIZATION against the daemon's API.Authorizations")
        if status in (404, 405):
            return BackendUnavailable(f"Kubo at {self.url} has no {what} endpoint ({status}); "
                                      "the daemon is too old or not Kubo")
        lowered = message.lower()
        if "not pinned" in lowered:
            return PinNotFound(f"{subject} is not pinned on Kubo at {self.url}")
        if any(hint in lowered for hint in _TIMEOUT_HINTS):
            return Timeout(f"Kubo at {self.url} did not finish {what}"
                           f"{' of ' + subject if subject else ''} within {self.timeout:g} s "
                           f"(IPFS_API_TIMEOUT): {message.strip()}")
        if subject is not None and any(hint in lowered for hint in _NOT_FOUND_HINTS):
            if "no link named" in lowered or "no such file" in lowered:
                return NotFound(f"{subject}: {message}")
            return BlockNotFound(subject, f"Kubo at {self.url} ({message})")
        return IpfsMcpError(f"Kubo at {self.url}: {what} failed ({status}): {message}")


def _encode(body: Body | None) -> tuple[Iterator[bytes] | None, str | None]:
    """A body as a multipart upload, made as it is sent, and its boundary."""
    if body is None:
        return None, None
    if isinstance(body, LocalTree):
        parts: Iterator[Part] = body.parts()
    else:
        data = [body.data] if isinstance(body.data, bytes) else body.data
        parts = iter([Part(body.name, "file", data)])
    boundary = multipart_boundary()
    return multipart(parts, boundary), boundary
