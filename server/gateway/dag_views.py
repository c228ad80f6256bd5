"""Blocks of the IPLD data codecs (dag-json, dag-cbor, json, cbor) as the path gateway
answers them: the block as it is, or an HTML view of it for a browser.

Which answer a request gets (:func:`plan`) follows the path-gateway spec with IPIP-0524: the
gateway converts between no codecs. A block is sent as is when the format asked for is its
own codec (``dag-json`` for a dag-json block) or that codec's plain variant (``json`` for
dag-json or json blocks, ``cbor`` for dag-cbor or cbor ones); any other codec format is
answered 406. With no format, a dag-json or dag-cbor block is shown as HTML to a client that
asks for ``text/html`` and sent as is to everyone else, typed by its codec. A path that ends
inside a block's value rather than at a link is answered 501: serving a field of a block
would need a conversion too.

The names a download gets (``Content-Disposition``) and the ETags follow Kubo: JSON inline,
CBOR as an attachment, ``{cid}.json``/``{cid}.cbor``, ``"{cid}.{short type}"``.
"""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass
from typing import Literal

from multiformats import CID

from ipfs_mcp.backends.core import cbor, dagjson
from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.server.version import installed_version

from . import pages
from .failures import NotAcceptable, NotRendered
from .request import CODEC_TYPES, Format
from .resolve import DAG_CBOR, DAG_JSON, DAG_PB, RAW, ResolvedPath

JSON = 0x0200
CBOR = 0x51
# The media type a block of each codec is sent as when no format was asked for.
_OWN_TYPE = {DAG_JSON: CODEC_TYPES["dag-json"], DAG_CBOR: CODEC_TYPES["dag-cbor"],
             JSON: CODEC_TYPES["json"], CBOR: CODEC_TYPES["cbor"]}
# Which codecs' blocks each codec format serves as they are.
_SERVES = {"dag-json": {DAG_JSON}, "dag-cbor": {DAG_CBOR}, "json": {JSON, DAG_JSON},
           "cbor": {CBOR, DAG_CBOR}}
# Kubo's cache for its generated DAG pages (conformance accepts it, or none).
HTML_CACHE = b"public, max-age=604800, stale-while-revalidate=2678400"


@dataclass(frozen=True)
class Answer:
    """``unixfs``: the UnixFS answer; ``block``: the block as it is, typed
    ``content_type``; ``html``: the DAG page."""

    kind: Literal["unixfs", "block", "html"]
    content_type: str | None = None


def plan(fmt: Format, resolved: ResolvedPath, accept: str) -> Answer:
    """How to answer a request for ``fmt`` (``unixfs``: none asked) of ``resolved``.

    Raises:
        NotAcceptable: a codec format that is not the block's (the spec converts nothing).
        NotRendered: the path ends inside a block's value, not at a link.
    """
    codec = resolved.cid.codec.code
    if resolved.remainder:
        raise NotRendered(
            f"{'/'.join(resolved.remainder)!r} is a value inside {cid_str(resolved.cid)}, "
            "not a link: reading IPLD values other than links is not implemented; ask for "
            f"/ipfs/{cid_str(resolved.cid)} instead")
    if fmt == "unixfs":
        if codec in (DAG_JSON, DAG_CBOR) and pages.wants_html(accept):
            return Answer("html")
        if codec in _OWN_TYPE:
            return Answer("block", _OWN_TYPE[codec])
        return Answer("unixfs")
    if codec in _SERVES[fmt]:
        return Answer("block", CODEC_TYPES[fmt])
    if fmt in ("json", "cbor") and codec in (DAG_PB, RAW):
        # A UnixFS file asked for as JSON or CBOR: the file as usual, typed by its name or
        # its bytes as Kubo types it (a client sending Accept: application/json for
        # everything must not get a picture labelled JSON).
        return Answer("unixfs")
    raise NotAcceptable(f"{cid_str(resolved.cid)} is {resolved.cid.codec.name}: this gateway "
                        f"does not convert it to {fmt} (ask for ?format=raw, or the format "
                        "of its own codec)")


def etag(cid: CID, content_type: str) -> str:
    """``"{cid}.{short}"``, ``short`` the type's last word (``dag-json``, ``json``, ...)."""
    short = content_type.replace(".", "/").rsplit("/", 1)[-1]
    return f'"{cid_str(cid)}.{short}"'


def download_name(cid: CID, content_type: str) -> tuple[str, bool]:
    """The default file name of a codec block and whether it is an attachment (CBOR is:
    a browser cannot show it; JSON is shown inline)."""
    is_json = content_type.endswith("json")
    return f"{cid_str(cid)}.{'json' if is_json else 'cbor'}", not is_json


def html_etag(cid: CID) -> str:
    """The page's ETag: it changes with the page's template, so with this package's version."""
    template = hashlib.sha256(installed_version().encode()).hexdigest()[:16]
    return f'"DagIndex-{template}_CID-{cid_str(cid)}"'


def _links(value: object, bound: int = 1000) -> list[CID]:
    """The links in a decoded value, in order, at most ``bound`` of them (iteratively)."""
    found: list[CID] = []
    stack = [value]
    while stack and len(found) < bound:
        item = stack.pop()
        if isinstance(item, CID):
            found.append(item)
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return found


def html_view(resolved: ResolvedPath, path_text: str) -> bytes:
    """A page showing a dag-json or dag-cbor block as indented dag-json, its links as links,
    and where to download it in each format.

    Raises:
        IntegrityError: the block does not decode, or holds what dag-json cannot show.
    """
    cid = resolved.cid
    text = cid_str(cid)
    if cid.codec.code == DAG_JSON:
        value = dagjson.decode(resolved.block, f"dag-json block {text}")
    else:
        value = cbor.decode(resolved.block, f"dag-cbor block {text}")
    shown = dagjson.encode_pretty(value)
    links = "".join(f'<li><a href="/ipfs/{cid_str(link)}/">{cid_str(link)}</a></li>'
                    for link in _links(value))
    formats = " · ".join(
        f'<a href="/ipfs/{text}?format={name}">{name}</a>'
        for name in (cid.codec.name, "raw", "car"))
    body = (f"<h1>{html.escape(path_text)}</h1>"
            f"<p>CID <code>{text}</code> · codec {html.escape(cid.codec.name)} · "
            f"{len(resolved.block)} bytes</p>"
            f"<p>Download: {formats}</p>"
            f"<pre>{html.escape(shown)}</pre>"
            + (f"<h2>Links</h2><ul>{links}</ul>" if links else ""))
    return pages.shell(f"{text} ({cid.codec.name})", body)
