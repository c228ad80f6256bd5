"""The listings the tools answer a page at a time: a folder, every file under a root, pins.

Each function does one page's work and says where the next starts, as a signed cursor
(:mod:`.paging`). Blocking: the tools call them in a worker thread.

- A folder's page resumes at an offset; the exporter skips to it reading only the shards
  that hold the skipped entries (:meth:`Exporter.listing`).
- Every file under a root (``store_model``'s file list) is walked depth first, each folder
  in its link order; the cursor holds, for each folder open on the way down, the index of
  its next entry, so resuming re-reads one entry per level and then the page.
- The first page of an add (``store_model``'s) is walked the same way over the entries the
  add itself reported (:func:`added_page`), reading no block: on a cluster, reading the DAG
  back through one peer's Kubo would copy blocks onto a peer outside the allocation.
- Pins resume after the last one shown (newest first, then by CID), so a pin added or
  removed between pages neither repeats nor hides another.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from multiformats import CID

from ipfs_mcp.backends.core import unixfs
from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.core.dagpb import Node, encode_link, encode_node
from ipfs_mcp.backends.core.exporter import Entry, Exporter, Listing
from ipfs_mcp.backends.core.importer import AddedEntry, Importer, ImportOptions
from ipfs_mcp.backends.errors import InvalidInput
from ipfs_mcp.backends.repo.pins import Pin

from .paging import Cursors, int_list


class Lister(Protocol):
    """What a walk of a DAG's files reads: an :class:`Exporter`, or an add's own entries."""

    def stat(self, cid: CID, name: str = "") -> Entry: ...

    def listing(self, cid: CID, *, offset: int = 0, limit: int | None = None) -> Listing: ...


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


def files_page(exporter: Lister, root: CID, *, cursors: Cursors, limit: int,
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


def _reopen(exporter: Lister, root: CID, at: list[int]) -> list[_Open]:
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


# A Tsize no DAG exceeds: a folder's plain block built with it is at least its real size.
_MAX_TSIZE = (1 << 63) - 1


class AddedTree:
    """An add's entries as a :class:`Lister`: each folder's entries in the order of its
    dag-pb links (sorted by name, as the importer writes them), kinds and sizes as the add
    reported them, no block read."""

    def __init__(self, by_cid: dict[bytes, Entry], children: dict[bytes, list[Entry]]) -> None:
        self._by_cid = by_cid
        self._children = children

    @classmethod
    def build(cls, added: Sequence[AddedEntry], root: CID,
              options: ImportOptions) -> AddedTree | None:
        """The tree, or None when the entries cannot stand for the DAG without its blocks:
        they do not make one tree under ``root``, or a folder is (or may be) HAMT-sharded,
        whose entries list in hash order."""
        by_path = {e.path: e for e in added}
        top = by_path.get("")
        if len(by_path) != len(added) or top is None or bytes(top.cid) != bytes(root):
            return None
        by_cid: dict[bytes, Entry] = {}
        named: dict[str, list[tuple[str, Entry]]] = {}
        for e in added:
            size = 0 if e.kind == "directory" else e.size
            entry = Entry(e.cid, e.kind, size, "", e.target if e.kind == "symlink" else None)
            if by_cid.setdefault(bytes(e.cid), entry) != entry:
                return None  # one CID reported as two things
            if e.path:
                parent, _, name = e.path.rpartition("/")
                named.setdefault(parent, []).append((name, entry))
        children: dict[bytes, list[Entry]] = {}
        importer = Importer(None, options)
        for parent, pairs in named.items():
            folder = by_path.get(parent)
            if folder is None or folder.kind != "directory":
                return None
            pairs.sort(key=lambda pair: pair[0])  # the importer's order (add_directory)
            listed = [Entry(e.cid, e.kind, e.size, name, e.target) for name, e in pairs]
            if children.setdefault(bytes(folder.cid), listed) != listed:
                return None  # one folder CID with two sets of entries
            if _may_shard(importer, listed):
                return None
        return cls(by_cid, children)

    def stat(self, cid: CID, name: str = "") -> Entry:
        entry = self._by_cid[bytes(cid)]
        return Entry(entry.cid, entry.kind, entry.size, name, entry.target)

    def listing(self, cid: CID, *, offset: int = 0, limit: int | None = None) -> Listing:
        entry = self._by_cid[bytes(cid)]
        if entry.kind != "directory":
            return Listing((entry,), 1, more=False)
        listed = self._children.get(bytes(cid), [])
        end = len(listed) if limit is None else offset + limit
        return Listing(tuple(listed[offset:end]), len(listed), more=end < len(listed))


def _may_shard(importer: Importer, listed: list[Entry]) -> bool:
    """Whether the importer would have made this folder a HAMT, asked with its decision.
    Tsizes are not in an add's entries, so the plain block is sized with the largest: a
    folder that shards only under that bound is taken as sharded (and read from blocks)."""
    nodes = [(e.name, Node(bytes(e.cid), _MAX_TSIZE, e.size)) for e in listed]
    block = encode_node([encode_link(n.cid, name, n.tsize) for name, n in nodes],
                        unixfs.DIRECTORY_DATA)
    return importer.shards(nodes, len(block))


def added_page(added: Sequence[AddedEntry], root: CID, *, options: ImportOptions,
               cursors: Cursors, limit: int, total: int | None = None) -> Page | None:
    """The first page :func:`files_page` gives for ``root``, built from the entries the
    add of ``root`` reported (with ``options``), reading no block; its cursor resumes with
    :func:`files_page` over the DAG. None when the entries cannot give it (a sharded
    folder, or entries that are not one tree of ``root``).
    """
    tree = AddedTree.build(added, root, options)
    if tree is None:
        return None
    return files_page(tree, root, cursors=cursors, limit=limit, total=total)


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
