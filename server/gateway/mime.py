"""Content-Type for deserialized UnixFS files, as a path gateway picks it.

Like Kubo: the file name's extension first (the ``?filename=`` given, else the last path
segment), then a sniff of the first bytes. Python's ``mimetypes`` knows the extensions; the
sniff is written here because the standard library has none: a short table of magic numbers
in the spirit of WHATWG MIME sniffing (what Go's ``http.DetectContentType`` does), then
"text if it decodes as UTF-8 without control bytes". Text types get ``charset=utf-8``,
as Go's ``mime.TypeByExtension`` gives them.
"""

from __future__ import annotations

import json
import mimetypes

SNIFF_BYTES = 512

_EXTRA = {
    ".md": "text/markdown", ".mjs": "text/javascript", ".wasm": "application/wasm",
    ".webp": "image/webp", ".avif": "image/avif", ".car": "application/vnd.ipld.car",
    ".safetensors": "application/octet-stream", ".gguf": "application/octet-stream",
}

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"PK\x03\x04", "application/zip"),
    (b"\x1f\x8b\x08", "application/gzip"),
    (b"\x00asm", "application/wasm"),
    (b"BM", "image/bmp"),
    (b"OggS", "application/ogg"),
    (b"ID3", "audio/mpeg"),
    (b"\x1aE\xdf\xa3", "video/webm"),
)
_HTML_MARKERS = (b"<!doctype html", b"<html", b"<head", b"<script", b"<iframe", b"<h1",
                 b"<div", b"<font", b"<table", b"<a ", b"<style", b"<title", b"<b ", b"<body",
                 b"<br", b"<p ", b"<p>", b"<!--")
_TEXTUAL = ("application/javascript", "application/json", "application/xml",
            "image/svg+xml", "text/javascript")


def _with_charset(media: str) -> str:
    if media.startswith("text/") or media in _TEXTUAL:
        return f"{media}; charset=utf-8"
    return media


def by_name(name: str) -> str | None:
    """The type a file name's extension says, or None."""
    dot = name.rfind(".")
    if dot <= 0 and not name.startswith("."):
        return None
    ext = name[dot:].lower()
    media = _EXTRA.get(ext) or mimetypes.types_map.get(ext)
    return _with_charset(media) if media else None


def sniff(head: bytes) -> str:
    """The type the first bytes suggest (``application/octet-stream`` when unsure)."""
    head = head[:SNIFF_BYTES]
    for magic, media in _MAGIC:
        if head.startswith(magic):
            return media
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        return "video/mp4"
    stripped = head.lstrip(b"\t\n\x0c\r ").lower()
    if stripped.startswith(b"<?xml"):
        return "text/xml; charset=utf-8"
    if stripped.startswith(b"<svg"):
        return "image/svg+xml"
    if any(stripped.startswith(marker) for marker in _HTML_MARKERS):
        return "text/html; charset=utf-8"
    if not head:
        return "text/plain; charset=utf-8"
    if stripped[:1] in (b"{", b"[") and len(head) < SNIFF_BYTES and _is_json(head):
        return "application/json"  # as Kubo types a whole small JSON document
    # A multi-byte character cut at the sniff boundary is still text.
    valid = _utf8_prefix(head) if len(head) >= SNIFF_BYTES else _utf8_prefix(head, cuts=1)
    text = head.decode("utf-8", errors="ignore") if valid else None
    if text is not None and not any(ord(c) < 0x20 and c not in "\t\n\r\x0c\x1b" for c in text):
        return "text/plain; charset=utf-8"
    return "application/octet-stream"


def _is_json(head: bytes) -> bool:
    try:
        json.loads(head)
    except (ValueError, RecursionError):
        return False
    return True


def _utf8_prefix(head: bytes, cuts: int = 4) -> bool:
    """Whether ``head`` is valid UTF-8, apart from up to ``cuts - 1`` bytes of a character
    cut off at its end."""
    for cut in range(cuts):
        try:
            head[:len(head) - cut].decode("utf-8")
            return True
        except UnicodeDecodeError:
            continue
    return False


def content_type(name: str | None, head: bytes) -> str:
    """The Content-Type for a file called ``name`` (may be None) starting with ``head``."""
    return (by_name(name) if name else None) or sniff(head)
