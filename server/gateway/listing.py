"""The HTML listing of a UnixFS folder, shaped like Kubo's so that links and breadcrumbs
are where clients (and gateway-conformance) look for them.

Every name is HTML-escaped and URL-quoted; the page links only inside the same content
path. The listing is bounded: past ``max_listing_entries`` it says it stopped.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from multiformats import CID

from ipfs_mcp.backends.core.cids import cid_str

# The template's version: listings change when this code does, so their Etag names it.
TEMPLATE_VERSION = "ipfs-mcp-1"
TEMPLATE_HASH = hashlib.sha256(TEMPLATE_VERSION.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ListedEntry:
    name: str
    cid: CID
    size: int | None  # None when not known without loading the entry


def etag(cid: CID) -> str:
    return f'"DirIndex-{TEMPLATE_HASH}_CID-{cid_str(cid)}"'


def _human(size: int | None) -> str:
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return ""


def render(root_text: str, segments: Sequence[str], dir_cid: CID,
           entries: Sequence[ListedEntry], more: bool) -> bytes:
    """The listing page for ``/ipfs/{root_text}/{segments}``."""
    base = "/ipfs/" + quote(root_text, safe="")
    crumbs = [f'<a href="{base}">{html.escape(root_text)}</a>']
    href = base
    for segment in segments:
        href += "/" + quote(segment, safe="")
        crumbs.append(f'<a href="{href}">{html.escape(segment)}</a>')
    here = href
    rows = []
    if segments:
        rows.append(f'<tr><td></td><td><a href="{here}/..">..</a></td><td></td><td></td></tr>')
    for entry in entries:
        link = f"{here}/{quote(entry.name, safe='')}"
        cid_text = cid_str(entry.cid)
        # The hash column opens the entry by its own CID, keeping its name for downloads.
        by_cid = f"/ipfs/{cid_text}?filename={quote(quote(entry.name, safe=''), safe='')}"
        rows.append(
            f'<tr><td></td><td><a href="{link}">{html.escape(entry.name)}</a></td>'
            f'<td><a class="ipfs-hash" translate="no" href="{by_cid}">'
            f"{html.escape(cid_text)}</a></td><td>{_human(entry.size)}</td></tr>")
    if more:
        rows.append(f"<tr><td></td><td>only the first {len(entries)} entries are listed"
                    "</td><td></td><td></td></tr>")
    title = "/ipfs/" + "/".join((root_text, *segments))
    page = (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}/</title></head><body>\n"
        f"<div>Index of</div><div>/ipfs/{'/'.join(crumbs)}</div>\n"
        f"<div>{html.escape(cid_str(dir_cid))}</div>\n"
        f"<table>\n{chr(10).join(rows)}\n</table>\n</body></html>\n")
    return page.encode()
