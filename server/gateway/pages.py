"""The pages a browser sees: the shell every HTML page shares (small inline CSS, nothing
fetched from elsewhere, so a page renders offline), the landing page at ``/``, and error
pages, each also as plain text for clients that do not ask for HTML.

No page names anything of the machine it runs on (no paths, no library messages): the
texts come from :mod:`.failures` or from this module.
"""

from __future__ import annotations

import html

from ipfs_mcp.server.version import installed_version

from .asgi import CORS_HEADERS, Send, send_page

# Kept small and inline: the gateway serves pages offline and fetches nothing for them.
STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2330;
background:#f6f7f9}
header{background:#0b3a53;color:#fff;padding:.6em 1.2em}
header .brand{font-weight:600;white-space:nowrap}
main{max-width:72em;margin:1em auto;padding:0 1.2em}
.index-of{font-size:.85em;color:#5a6478;white-space:nowrap}
.crumbs{font-size:1.15em;font-weight:600;overflow-wrap:anywhere;margin:.1em 0 .4em}
.crumbs a,td a{color:#0b5e8a;text-decoration:none}
.crumbs a:hover,td a:hover{text-decoration:underline}
.dir-cid{font:.8em ui-monospace,monospace;color:#5a6478;overflow-wrap:anywhere}
.summary{font-size:.85em;color:#5a6478;margin:.3em 0 .8em}
table{width:100%;border-collapse:collapse;background:#fff;border:1px solid #dde1e8}
td,th{padding:.35em .7em;border-top:1px solid #eceff3;vertical-align:top}
th{text-align:left;font-size:.8em;font-weight:600;color:#5a6478;background:#f0f2f5}
th.size{text-align:right}
td.name{overflow-wrap:anywhere;width:60%}
td.cid{font:.85em ui-monospace,monospace;white-space:nowrap}
td.cid .full{display:none;font-size:.9em;color:#5a6478;user-select:all}
tr:hover td.cid .full,tr:focus-within td.cid .full{display:block}
td.size{text-align:right;white-space:nowrap;color:#3b4354}
.note{font-size:.85em;color:#7a4b00;margin:.6em 0}
code,pre{font-family:ui-monospace,monospace;background:#eceff3;padding:.05em .3em;
border-radius:3px;overflow-wrap:anywhere}
h1{font-size:1.3em;margin:.4em 0}
footer{font-size:.8em;color:#7b8496;text-align:center;margin:2em 0 1em}
"""


def wants_html(accept: str) -> bool:
    """Whether the client asked for HTML (browsers do; curl and most libraries do not)."""
    return "text/html" in accept.lower()


def shell(title: str, body: str) -> bytes:
    """A whole HTML page around ``body`` (already escaped); ``title`` is escaped here."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>\n"
        "<header><span class=\"brand\">ipfs-mcp gateway</span></header>\n"
        f"<main>\n{body}\n</main>\n"
        f"<footer>ipfs-mcp {html.escape(installed_version())}</footer>\n</body></html>\n").encode()


def landing(recursive: bool, routing: bool, accept: str) -> tuple[bytes, bytes]:
    """The page at ``/``: what this node is and how to ask it for content.
    Returns the body and its content type."""
    reach = ("fetches content it does not have from its peers and gateways" if recursive
             else "serves only content already stored on this node")
    lines = [
        f"ipfs-mcp gateway {installed_version()}",
        f"This read-only IPFS gateway {reach}.",
        "Fetch content at /ipfs/<cid> or /ipfs/<cid>/<path>.",
        "Add ?format=raw for a verifiable block, ?format=car for a CAR stream, "
        "?filename=<name> to name a download.",
    ]
    if routing:
        lines.append("Delegated routing: /routing/v1/providers/<cid>.")
    if not wants_html(accept):
        return "\n".join(lines).encode() + b"\n", b"text/plain; charset=utf-8"
    items = "".join(f"<p>{html.escape(line)}</p>" for line in lines[1:])
    example = ("<p>Example: <code>/ipfs/bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
               "</code></p>")
    return shell("ipfs-mcp gateway", f"<h1>{html.escape(lines[0])}</h1>{items}{example}"), \
        b"text/html; charset=utf-8"


def error_body(status: int, title: str, message: str, accept: str) -> tuple[bytes, bytes]:
    """An error answer: an HTML page for browsers, one line of text for everyone else."""
    if not wants_html(accept):
        return f"{message}\n".encode(), b"text/plain; charset=utf-8"
    body = (f"<h1>{status} {html.escape(title)}</h1><p>{html.escape(message)}</p>"
            "<p><a href=\"/\">About this gateway</a></p>")
    return shell(f"{status} {title}", body), b"text/html; charset=utf-8"


async def send_error(send: Send, status: int, title: str, message: str, accept: str,
                     extra: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...] = (),
                     head: bool = False) -> None:
    """Send an error answer (see :func:`error_body`) with ``extra`` headers (CORS if none)."""
    body, content_type = error_body(status, title, message, accept)
    await send_page(send, status, body, content_type, list(extra or CORS_HEADERS), head)
