"""``Content-Disposition``: the name a browser saves a response under (RFC 6266).

A name made only of token characters goes out as ``filename="name"``. Any other name goes
out twice: exactly, as ``filename*=UTF-8''<percent-encoded>`` (RFC 8187), which every
current browser prefers, and as an ASCII ``filename="..."`` fallback for older clients, with
every character that could be misread (non-ASCII, quotes, backslashes, percent signs, which
some clients decode) replaced by ``_``, as Kubo does.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

# RFC 8187 attr-char without "%": a name of only these needs no encoded form.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9!#$&+\-.^_`|~]+")
_FALLBACK_UNSAFE = re.compile(r'[^\x20-\x7e]|["\\%]')
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


def requested_name(value: str) -> str:
    """The name a ``?filename=`` value asks for.

    Kubo's folder listings (and gateway-conformance, which checks them) link an entry by CID
    with its name percent-encoded twice, so after the query string is decoded the value is
    still percent-encoded (``my%20file%20%281%29.txt``); saved as is, the browser would keep
    the escapes in the name. A value that is a valid percent-encoding of UTF-8 is therefore
    decoded once more. The cost: a name whose own text looks like an escape (``100%41``)
    is read as one.
    """
    if not _ESCAPE.search(value):
        return value
    try:
        decoded = unquote(value, errors="strict")
    except UnicodeDecodeError:
        return value
    # Never let the second decoding bring a separator or a control character in.
    if any(c in decoded for c in "/\\\r\n\x00"):
        return value
    return decoded


def content_disposition(kind: str, name: str) -> bytes:
    """The header value for ``kind`` (``inline`` or ``attachment``) and ``name``."""
    if _PLAIN_NAME.fullmatch(name):
        return f'{kind}; filename="{name}"'.encode("ascii")
    fallback = _FALLBACK_UNSAFE.sub("_", name)
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}".encode(
        "ascii")
