"""The HTML listing of a UnixFS folder, shaped like Kubo's so that links and breadcrumbs
are where clients (and gateway-conformance) look for them: name, size, and a short CID
(the full one in its title, and shown selectable when the row is pointed at).

Every name is HTML-escaped and URL-quoted; the page links only inside the same content
path. The work is bounded: past ``max_listing_entries`` the page says it stopped, and sizes
(one block read per entry, only blocks already here) are looked up for at most
``max_listing_sizes`` entries, the page saying so when it stops.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import quote

from multiformats import CID

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.core.unixfs import NodeType
from ipfs_mcp.backends.errors import IntegrityError, NotFound

from .pages import shell
from .resolve import RAW, file_size, unixfs_node

# The template's version: listings change when this code does, so their Etag names it.
TEMPLATE_VERSION = "ipfs-mcp-2"
TEMPLATE_HASH = hashlib.sha256(TEMPLATE_VERSION.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ListedEntry:
    name: str
    cid: CID
    size: int | None  # None when not known (a folder, or its block is not here)
    folder: bool = False


@dataclass(frozen=True)
class Listing:
    """One page's entries; ``more``: the folder has entries past them; ``sized``: how many
    entries had their size looked up (the first ones)."""

    entries: tuple[ListedEntry, ...]
    more: bool
    sized: int


def _entry(name: str, cid: CID, load: Callable[[CID], bytes]) -> ListedEntry:
    """``name``'s entry with its size as its root block declares it (a folder has none)."""
    try:
        block = load(cid)
        decoded = unixfs_node(cid, block) if cid.codec.code != RAW else None
    except (NotFound, IntegrityError):
        return ListedEntry(name, cid, None)
    if decoded is not None and decoded[1].type in (NodeType.DIRECTORY, NodeType.HAMT_SHARD):
        return ListedEntry(name, cid, None, folder=True)
    return ListedEntry(name, cid, file_size(cid, block))


def list_folder(children: Iterable[tuple[str, CID]], load: Callable[[CID], bytes],
                limit: int, sizes: int) -> Listing:
    """Up to ``limit`` of ``children``, the first ``sizes`` of them with sizes read through
    ``load``. Whether there are more is seen, not counted: counting a huge HAMT would load
    every shard for one request. Runs in a worker thread (``load`` blocks)."""
    entries: list[ListedEntry] = []
    for name, child in children:
        if len(entries) >= limit:
            return Listing(tuple(entries), True, min(sizes, len(entries)))
        entries.append(_entry(name, child, load) if len(entries) < sizes
                       else ListedEntry(name, child, None))
    return Listing(tuple(entries), False, min(sizes, len(entries)))


def etag(cid: CID) -> str:
    return f'"DirIndex-{TEMPLATE_HASH}_CID-{cid_str(cid)}"'


def human(size: int | None) -> str:
    """``size`` in bytes as people read it (binary units, as Kubo's listing)."""
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return ""


def short_cid(text: str) -> str:
    """The first and last characters of a CID, enough to tell entries apart at a glance."""
    return text if len(text) <= 14 else f"{text[:6]}\u2026{text[-6:]}"


def _row(here: str, entry: ListedEntry, away: str = "") -> str:
    link = f"{here}/{quote(entry.name, safe='')}"
    cid_text = cid_str(entry.cid)
    # The hash column opens the entry by its own CID, keeping its name for downloads. The
    # name is percent-encoded twice, exactly as Kubo's listing links it (gateway-conformance
    # checks this link); the gateway decodes such a ?filename= once more (see
    # .disposition.requested_name), so the download keeps the entry's exact name.
    by_cid = f"{away}/ipfs/{cid_text}?filename={quote(quote(entry.name, safe=''), safe='')}"
    size = "\u2014" if entry.folder else human(entry.size)
    return (f'<tr><td class="name"><a href="{link}">{html.escape(entry.name)}</a>'
            f'{"/" if entry.folder else ""}</td>'
            f'<td class="cid" title="{cid_text}"><a class="ipfs-hash" translate="no" '
            f'href="{by_cid}">{short_cid(cid_text)}</a>'
            f'<code class="full">{cid_text}</code></td>'
            f'<td class="size">{size}</td></tr>')


def render(root_text: str, segments: Iterable[str], dir_cid: CID, listing: Listing,
           gateway: str | None = None) -> bytes:
    """The listing page for ``/ipfs/{root_text}/{segments}``. Served from a subdomain
    (``gateway``: the path gateway's host), entries link below the subdomain's root, and
    the breadcrumbs and CIDs link back to ``//{gateway}/ipfs/...``."""
    segments = tuple(segments)
    away = f"//{gateway}" if gateway else ""
    base = "/ipfs/" + quote(root_text, safe="")
    crumbs = [f'<a href="{away}{base}">{html.escape(root_text)}</a>']
    below = ""
    for segment in segments:
        below += "/" + quote(segment, safe="")
        crumbs.append(f'<a href="{away}{base}{below}">{html.escape(segment)}</a>')
    here = below if gateway else base + below
    rows = []
    if segments:
        rows.append(f'<tr><td class="name"><a href="{here}/..">..</a></td><td></td>'
                    "<td></td></tr>")
    rows.extend(_row(here, entry, away) for entry in listing.entries)
    count = len(listing.entries)
    notes = []
    if listing.more:
        notes.append(f"only the first {count} entries are listed")
    if listing.sized < count:
        notes.append(f"sizes are shown for the first {listing.sized} entries")
    summary = f"{count}{'+' if listing.more else ''} entr{'y' if count == 1 else 'ies'}"
    body = (
        f'<div class="index-of">Index of</div>'
        f'<div class="crumbs">/ipfs/{"/".join(crumbs)}</div>\n'
        f'<div class="dir-cid" title="this folder\'s CID">{html.escape(cid_str(dir_cid))}</div>'
        f'<div class="summary">{summary}</div>\n'
        + "".join(f'<p class="note">{note}</p>\n' for note in notes)
        + "<table>\n<thead><tr><th>Name</th><th>CID</th><th class=\"size\">Size</th></tr></thead>\n"
        + f"<tbody>\n{chr(10).join(rows)}\n</tbody></table>")
    title = "/ipfs/" + "/".join((root_text, *segments)) + "/"
    return shell(title, body)
