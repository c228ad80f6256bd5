"""Pages of long listings, and the cursors that continue them.

Every listing a tool answers (a folder, a stored model's files, the pins) is cut into pages
of :data:`DEFAULT_PAGE` entries, so an answer fits a model's context however large the
folder. A page that is not the last carries a cursor: an opaque string naming the listing
(what kind, of what) and where the next page starts.

A cursor comes back from the caller, so it is untrusted input. It is signed (HMAC-SHA256
under a key that lives as long as the server), so a cursor that was altered, made up, or
issued for another listing is refused with a clear error before any work is done, and the
position it holds is one this server wrote: resuming costs what that page costs, never a
walk chosen by the caller. A restarted server has a new key; its old cursors are refused
the same way and the listing starts again without one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any

from ipfs_mcp.backends.errors import InvalidInput

DEFAULT_PAGE = 100  # entries per page unless the caller asks for fewer
MAX_CURSOR_CHARS = 2048  # longer is never one of ours: refused before it is decoded
_TAG_BYTES = 16


@dataclass(frozen=True)
class Position:
    """Where a listing resumes (``at``: the listing's own marker) and how long it is
    (``total``, when known), as the cursor carried them."""

    at: Any
    total: int | None


class Cursors:
    """Issues and opens signed cursors; one per server, its key made at start."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)

    def issue(self, listing: str, subject: str, at: Any, total: int | None) -> str:
        """A cursor that resumes ``listing`` of ``subject`` at ``at`` (JSON data)."""
        payload = json.dumps({"l": listing, "s": subject, "a": at, "t": total},
                             separators=(",", ":"), sort_keys=True).encode()
        return f"{_b64(payload)}.{_b64(self._tag(payload))}"

    def open(self, cursor: str, listing: str, subject: str) -> Position:
        """The position ``cursor`` holds, if this server issued it for this listing.

        Raises:
            InvalidInput: not a cursor of this server (altered, made up, too long, or
                from before a restart), or one issued for another listing.
        """
        payload = self._verified(cursor)
        if payload.get("l") != listing or payload.get("s") != subject:
            raise InvalidInput(
                f"this cursor continues another listing ({payload.get('l')} of "
                f"{payload.get('s')!r}), not {listing} of {subject!r}: pass the cursor back "
                "with the same arguments it came with")
        total = payload.get("t")
        return Position(payload.get("a"), total if isinstance(total, int) else None)

    def listing_of(self, cursor: str) -> str:
        """Which kind of listing ``cursor`` continues, if this server issued it.

        Raises:
            InvalidInput: not a cursor of this server.
        """
        return str(self._verified(cursor).get("l"))

    def _verified(self, cursor: str) -> dict[str, Any]:
        refused = InvalidInput(
            "cursor is not one this server issued (altered, or from before a restart); "
            "start the listing again without a cursor")
        if len(cursor) > MAX_CURSOR_CHARS or cursor.count(".") != 1:
            raise refused
        body, tag = cursor.split(".")
        try:
            payload, given = _unb64(body), _unb64(tag)
        except (binascii.Error, ValueError):
            raise refused from None
        # Only the spelling issue() writes: base64's spare bits let other texts decode to
        # the same bytes, and a cursor is one string, not a family of them.
        if _b64(payload) != body or _b64(given) != tag:
            raise refused
        if not hmac.compare_digest(given, self._tag(payload)):
            raise refused
        data = json.loads(payload)  # signed by us: well-formed JSON of issue()
        if not isinstance(data, dict):
            raise refused
        return data

    def _tag(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_TAG_BYTES]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def int_list(value: Any, what: str) -> list[int]:
    """``value`` as a list of non-negative ints (a cursor's position), or a clear error.

    Raises:
        InvalidInput: anything else (a signed cursor never holds it: defence in depth).
    """
    if (not isinstance(value, list)
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                       for v in value)):
        raise InvalidInput(f"cursor does not hold a position of {what}; start again "
                           "without a cursor")
    return list(value)
