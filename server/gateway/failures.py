"""What a failed request tells its client: a status, a title and one sentence.

Errors from below the gateway (the repo, a backend, the network) carry texts written for
the operator, which may name local paths or quote a library; an anonymous HTTP client must
see neither. So only the gateway's own errors (a malformed request, a name that is not in
a folder, content it does not render, its store budget spent) are shown as raised; every other error is answered by
its kind with a fixed sentence, and its own text goes to the log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ipfs_mcp.backends.errors import (
    BackendUnavailable,
    BlockNotFound,
    IntegrityError,
    InvalidInput,
    IpfsMcpError,
    NetworkError,
    NotFound,
    StorageBudgetSpent,
    Timeout,
    TooLarge,
)

from .request import BadRequest
from .resolve import PathNotFound

log = logging.getLogger("ipfs_mcp.gateway")


class NotRendered(InvalidInput):
    """Content this gateway does not render as a page (HTTP 501); it may still be asked for
    as a block or a CAR."""


class NotAcceptable(InvalidInput):
    """A format this content cannot be answered in (HTTP 406): the gateway converts
    between no codecs."""


@dataclass(frozen=True)
class Failure:
    status: int
    title: str
    message: str


def _not_found(exc: NotFound, only_if_cached: bool, recursive: bool) -> Failure:
    status = 412 if only_if_cached else 404
    title = "Not here" if only_if_cached else "Not found"
    if isinstance(exc, PathNotFound):
        return Failure(status, title, str(exc))
    what = exc.cid if isinstance(exc, BlockNotFound) else "this content"
    if recursive and not only_if_cached:
        return Failure(status, title, f"{what} was not found on this node or its peers.")
    return Failure(status, title, f"{what} was not found on this node "
                                  "(this gateway serves only content stored here).")


def failure(exc: IpfsMcpError, *, only_if_cached: bool, recursive: bool) -> Failure | None:
    """The answer for ``exc``, or None for an error this gateway does not answer for (it
    propagates: the server answers 500 without its text)."""
    if isinstance(exc, NotFound):
        return _not_found(exc, only_if_cached, recursive)
    if isinstance(exc, BadRequest):
        return Failure(400, "Bad request", str(exc))
    log.info("gateway: request failed: %s", exc)
    if isinstance(exc, TooLarge):  # also a DAG over the walk bounds
        return Failure(400, "Too large", "This content is larger or deeper than this gateway "
                                         "serves in one request.")
    if isinstance(exc, StorageBudgetSpent):
        # Recursive only: this gateway stores no more. Raised only by .store_budget, whose
        # text names the bound that was reached and nothing of the machine.
        return Failure(507, "No room", str(exc))
    if isinstance(exc, IntegrityError):  # a block here that is corrupt: a server fault
        return Failure(500, "Corrupt content", "A block of this content is damaged on this "
                                               "node.")
    if isinstance(exc, NotRendered):
        return Failure(501, "Not rendered", str(exc))
    if isinstance(exc, NotAcceptable):
        return Failure(406, "Not acceptable", str(exc))
    if isinstance(exc, InvalidInput):
        return Failure(501, "Not rendered", "This gateway cannot show this content "
                                            "(ask for ?format=raw or ?format=car).")
    if isinstance(exc, Timeout):
        return Failure(504, "Timed out", "The storage behind this gateway did not answer "
                                         "in time; try again.")
    if isinstance(exc, (BackendUnavailable, NetworkError)):
        # The backend's daemon is down, or the server's Router is not up yet or has stopped.
        # Which of these it is, the operator reads in the log; the client needs only to know
        # that asking again later may work.
        return Failure(503, "Unavailable", "The storage behind this gateway is not available: "
                                           "it has stopped, is still starting, or cannot be "
                                           "reached. Try again later.")
    return None
