"""The listings the tools answer a page at a time: a folder, every file under a root, pins.

Each function does one page's work and says where the next starts, as a signed cursor
(:mod:`.paging`). Blocking: the tools call them in a worker thread.

- A folder's page resumes at an offset; the exporter skips to it reading only the shards
  that hold the skipped entries (:meth:`Exporter.listing`).
- Every file under a root (``store_model``'s file list) is walked depth first, each folder
  in its link order; the cursor holds, for each folder open on the way down, the index of
  its next entry, so resuming re-reads one entry per level and then the page.
- Pins resume after the last one shown (newest first, then by CID), so a pin added or
  removed between pages neither repeats nor hides another.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from multiformats import CID

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.core.exporter import Entry, Exporter
from ipfs_mcp.backends.errors import InvalidInput
from ipfs_mcp.backends.repo.pins import Pin

from .paging import Cursors, int_list


@dataclass(frozen=True)
class Page:
    """One page: its entries, the listing's total when known, and the next page's cursor
    (None on the last page)."""

    entries: list[Entry]
    total: int | None
    cursor: str | None
    offset: int = 0  # where this page starts, for listings that count (folders)


def folder_page(exporter: Exporter, folder: CID, *, cursors: Cursors, limit: int,
                offset: int = 0, cursor: str | None = None) -> Page:
    """``limit`` entries of ``folder`` from ``offset``, or from where ``cursor`` says.

    Raises:
        InvalidInput: a cursor of another listing or not ours; offset and cursor both.
    """
    subject = cid_str(folder)
    if cursor is not None:
        if offset:
            raise InvalidInput("pass offset or cursor, not both")
        position = cursors.open(cursor, "folder", subject)
        offset = int_list([position.at], "a folder")[0]
    listing = exporter.listing(folder, offset=offset, limit=limit)
    entries = list(listing.entries)
    after = offset + len(entries)
    following = (cursors.issue("folder", subject, after, listing.total)
                 if listing.more else None)
    return Page(entries, listing.total, following, offset)


@dataclass
class _Open:
    """A folder open on the way down: its CID, its path under the root, the index of its
    next entry, and the entries already read past that index (this page's)."""

    cid: CID
    path: str
    next: int
    read: deque[Entry] = field(default_factory=deque)
    done: bool = False  # nothing past ``read``


def files_page(exporter: Exporter, root: CID, *, cursors: Cursors, limit: int,
               total: int | None = None, cursor: str | None = None) -> Page:
    """``limit`` entries of every file and folder under ``root`` (the root first, its path
    ''), depth first; each entry's ``name`` is its path under the root.

    Raises:
        InvalidInput: a cursor of another listing or not ours.
    """
    subject = cid_str(root)
    out: list[Entry] = []
    if cursor is None:
        top = exporter.stat(root)
        out.append(Entry(top.cid, top.kind, top.size, "", top.target))
        stack = [_Open(root, "", 0)] if top.kind == "directory" else []
    else:
        position = cursors.open(cursor, "files", subject)
        total = position.total
        stack = _reopen(exporter, root, int_list(position.at, "a file walk"))
    while stack and len(out) < limit:
        here = stack[-1]
        if not here.read:
            if here.done:
                stack.pop()
                continue
            listing = exporter.listing(here.cid, offset=here.next, limit=limit - len(out))
            here.read.extend(listing.entries)
            here.done = not listing.more
            if not here.read:
                stack.pop()
                continue
        entry = here.read.popleft()
        here.next += 1
        path = f"{here.path}/{entry.name}" if here.path else entry.name
        out.append(Entry(entry.cid, entry.kind, entry.size, path, entry.target))
        if entry.kind == "directory":
            stack.append(_Open(entry.cid, path, 0))
    while stack and stack[-1].done and not stack[-1].read:
        stack.pop()
    following = (cursors.issue("files", subject, [f.next for f in stack], total)
                 if stack else None)
    return Page(out, total, following)


def _reopen(exporter: Exporter, root: CID, at: list[int]) -> list[_Open]:
    """The folders open at a walk's position: each level's folder is the entry just before
    the index its parent resumes at (one entry read per level).

    Raises:
        InvalidInput: the position does not lead through folders of ``root``.
    """
    if not at:
        raise InvalidInput("cursor of a finished file walk; start again without a cursor")
    stack = [_Open(root, "", at[0])]
    for index in at[1:]:
        parent = stack[-1]
        listing = exporter.listing(parent.cid, offset=max(parent.next - 1, 0), limit=1)
        if parent.next < 1 or not listing.entries or listing.entries[0].kind != "directory":
            raise InvalidInput("cursor does not lead through this root's folders; start "
                               "again without a cursor")
        child = listing.entries[0]
        path = f"{parent.path}/{child.name}" if parent.path else child.name
        stack.append(_Open(child.cid, path, index))
    return stack


def _pin_order(pin: Pin) -> tuple[float, str]:
    # Newest first; among pins made in the same instant, by CID, so the order is total.
    return (-pin.created, cid_str(pin.cid))


def pins_page(pins: list[Pin], *, cursors: Cursors, limit: int, name_contains: str = "",
              cursor: str | None = None) -> tuple[list[Pin], int, str | None]:
    """``limit`` pins whose name contains ``name_contains``, newest first, after the last
    one the cursor's page showed; with the count of all such pins and the next cursor.

    Raises:
        InvalidInput: a cursor of another listing (another filter) or not ours.
    """
    chosen = sorted((p for p in pins if name_contains.lower() in p.name.lower()),
                    key=_pin_order)
    start = 0
    if cursor is not None:
        at = cursors.open(cursor, "pins", name_contains).at
        if (not isinstance(at, list) or len(at) != 2 or not isinstance(at[0], int | float)
                or not isinstance(at[1], str)):
            raise InvalidInput("cursor does not hold a position of the pins; start again "
                               "without a cursor")
        last = (float(at[0]), at[1])
        start = next((i for i, p in enumerate(chosen) if _pin_order(p) > last), len(chosen))
    shown = chosen[start:start + limit]
    more = start + limit < len(chosen)
    following = (cursors.issue("pins", name_contains, list(_pin_order(shown[-1])),
                               len(chosen)) if more and shown else None)
    return shown, len(chosen), following
