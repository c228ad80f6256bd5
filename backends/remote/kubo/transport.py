"""How a Kubo command reaches the node: the seam between :class:`~.backend.KuboBackend`
and the two ways to speak to Kubo.

Kubo's commands have one name on both: ``ipfs block get --timeout=5s -- CID`` on the CLI
is ``POST /api/v0/block/get?arg=CID&timeout=5s`` over its RPC. A transport takes such a
command (slash-separated name, positional arguments, options, an optional body) and gives
back either the JSON records the node answers with, or the raw bytes it streams. Failures
are translated at the transport into the project's error tree, so the backend above never
sees a process exit code or an HTTP status.

Implementations: :class:`~.cli_transport.CLITransport` (the ``ipfs`` binary, one process
per command) and :class:`~.http_transport.HTTPTransport` (Kubo's RPC API, with httpx).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ipfs_mcp.backends.remote.kubo.upload import LocalTree

__all__ = ["KuboTransport", "FileBody", "Body", "Options", "Search", "option_text"]

Options = Mapping[str, str | int | bool | None]
# How long the node itself may search (Kubo's global ``timeout`` option): False for not at
# all (the command does not search), True for the transport's own bound, or seconds.
Search = bool | float


@dataclass(frozen=True)
class FileBody:
    """One file's bytes: the CLI's stdin, or one multipart part over HTTP (``name`` is
    that part's file name)."""

    data: bytes | Iterator[bytes]
    name: str = "data"


# A tree is read by the CLI itself (by its path) and sent part by part over HTTP.
Body = FileBody | LocalTree


def option_text(value: str | int | bool) -> str:
    """An option's value as Kubo reads it on both transports (``true``/``false`` for
    booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class KuboTransport(Protocol):
    """One way to run Kubo commands (see the module docstring).

    Attributes:
        timeout: seconds one command may take (``IPFS_API_TIMEOUT``).
        node: how messages name the node ("Kubo at http://...", "the Kubo node").
        label: how the network tools name it ("kubo at http://...", "kubo CLI ipfs").
        summary: how the health report names the way in ("RPC API at ...", "CLI ipfs").
        probe_timeout: how long the first ``id`` may take (a CLI on Node loads slowly).
    """

    timeout: float
    node: str
    label: str
    summary: str
    probe_timeout: float

    def records(self, cmd: str, *args: str, options: Options | None = None,
                body: Body | None = None, subject: str | None = None,
                search: Search = False, wait: float | None = None) -> list[dict[str, Any]]:
        """The JSON records the node answers ``cmd`` with (one per line when it streams).

        ``subject`` is the CID the command is about (it names not-found errors); ``wait``
        bounds this one call instead of :attr:`timeout`.

        Raises:
            BackendUnavailable / DaemonUnreachable: the node cannot be reached, or refused.
            Timeout: no answer in time, or the node's own search ran out.
            BlockNotFound / NotFound / PinNotFound: what the node says is missing.
            IpfsMcpError: any other failure, with the node's message.
        """
        ...

    def stream(self, cmd: str, *args: str, options: Options | None = None,
               subject: str | None = None, search: Search = False) -> Iterator[bytes]:
        """The raw bytes the node answers ``cmd`` with, as they arrive (untrusted).

        Raises:
            The errors of :meth:`records`, while the stream is read.
        """
        ...

    def not_kubo(self, exc: Exception) -> str:
        """Why a node that answered ``id`` with ``exc`` is not usable (for the probe)."""
        ...

    def close(self) -> None:
        """Release what the transport holds (an HTTP pool it made)."""
        ...
