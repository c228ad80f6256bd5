"""Reading a gateway request: the content path, the response format and its parameters.

Everything here is pure parsing, so every malformed input becomes :class:`BadRequest` (HTTP
400) before a block is read. Precedence follows the trustless-gateway spec (IPIP-0523):
``?format=`` beats ``Accept``, and ``car-version``/``car-order``/``car-dups`` in the URL beat
the CAR content-type parameters of ``Accept``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl, unquote

from multiformats import CID

from ipfs_mcp.backends.core.cids import parse_cid
from ipfs_mcp.backends.errors import InvalidInput

from .disposition import requested_name

RAW_TYPE = "application/vnd.ipld.raw"
CAR_TYPE = "application/vnd.ipld.car"
TAR_TYPE = "application/x-tar"
# The codec formats (path-gateway spec): ?format= name -> the media type it answers with.
CODEC_TYPES = {"dag-json": "application/vnd.ipld.dag-json",
               "dag-cbor": "application/vnd.ipld.dag-cbor",
               "json": "application/json", "cbor": "application/cbor"}
# Every format a client may name, by ?format= and by Accept.
_FORMAT_TYPES = {"raw": RAW_TYPE, "car": CAR_TYPE, "tar": TAR_TYPE, **CODEC_TYPES}
_TYPE_FORMATS = {media: name for name, media in _FORMAT_TYPES.items()}

# Bounds on what one request may ask: no real client sends more (a content path is bounded
# by PATH_MAX-like depths, a Range header by a handful of ranges).
MAX_PATH_SEGMENTS = 256
MAX_SEGMENT_BYTES = 1024
MAX_RANGES = 16
MAX_QUERY_BYTES = 4096

# "unixfs" is no format asked: the content as it is (a file, a folder, a codec's block).
Format = Literal["raw", "car", "tar", "dag-json", "dag-cbor", "json", "cbor", "unixfs"]
Scope = Literal["block", "entity", "all"]


class BadRequest(InvalidInput):
    """The request is malformed (HTTP 400)."""


@dataclass(frozen=True)
class ContentPath:
    """``/ipfs/{root}/{segments...}``; segments are percent-decoded and never ``.``/``..``."""

    root: CID
    root_text: str
    segments: tuple[str, ...]
    trailing_slash: bool

    @property
    def text(self) -> str:
        return "/ipfs/" + "/".join((self.root_text, *self.segments))


@dataclass(frozen=True)
class EntityBytes:
    """``entity-bytes=from:to``: inclusive offsets; negative counts from the end; ``to`` None
    is ``*`` (end of file)."""

    start: int
    end: int | None

    def resolve(self, size: int) -> tuple[int, int] | None:
        """The inclusive byte range within a ``size``-byte entity, or None when empty."""
        start = self.start if self.start >= 0 else max(0, size + self.start)
        end = size - 1 if self.end is None else (self.end if self.end >= 0 else size + self.end)
        end = min(end, size - 1)
        if size == 0 or start > end:
            return None
        return start, end


@dataclass(frozen=True)
class CarOptions:
    scope: Scope = "all"
    entity_bytes: EntityBytes | None = None
    order: Literal["dfs", "unk"] = "dfs"
    dups: bool = False

    @property
    def content_type(self) -> str:
        # We always walk depth-first, so the order is always known and stated as dfs.
        return f"{CAR_TYPE}; version=1; order=dfs; dups={'y' if self.dups else 'n'}"

    @property
    def etag_suffix(self) -> str:
        span = ""
        if self.entity_bytes is not None:
            end = "*" if self.entity_bytes.end is None else str(self.entity_bytes.end)
            span = f".{self.entity_bytes.start}:{end}"
        return f"car.{self.scope}{span}.dfs.{'y' if self.dups else 'n'}"


@dataclass(frozen=True)
class GatewayRequest:
    path: ContentPath
    format: Format
    car: CarOptions | None
    filename: str | None
    download: bool
    query: dict[str, str]


# The text shown for what is not a CID says what one looks like, rather than quoting the
# decoder (its alphabet, its padding rules), which helps no one who mistyped a CID.
_SHOWN_INPUT = 80


def not_a_cid(text: str) -> str:
    shown = text if len(text) <= _SHOWN_INPUT else text[:_SHOWN_INPUT] + "…"
    return (f"{shown!r} is not a CID. A CID looks like "
            "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi (CIDv1, starts with "
            "b) or QmXoypizjW3WknFiJnKLwHCnL72vedxjQkDDP1mXWo6uco (CIDv0, starts with Qm).")


def parse_content_path(raw_path: bytes) -> ContentPath:
    """Raises: BadRequest: not ``/ipfs/{cid}[/path]``, a bad CID, or an unsafe segment."""
    try:
        text = raw_path.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the request path is not UTF-8") from None
    if not text.startswith("/ipfs/"):
        raise BadRequest("paths start with /ipfs/{cid}")
    parts = text[len("/ipfs/"):].split("/")
    root_text = unquote(parts[0])
    try:
        root = parse_cid(root_text)
    except InvalidInput as exc:
        raise BadRequest(not_a_cid(root_text)) from exc
    trailing = len(parts) > 1 and parts[-1] == ""
    segments: list[str] = []
    for part in parts[1:]:
        if not part:
            continue  # "a//b" and a trailing slash name no entry
        try:
            segment = unquote(part, errors="strict")
        except UnicodeDecodeError:
            raise BadRequest(f"path segment {part!r} is not UTF-8") from None
        # No segment may step out of the DAG named by the root CID, or smuggle a separator.
        if segment in (".", "..") or "/" in segment or "\x00" in segment:
            raise BadRequest(f"path segment {segment!r} is not allowed")
        if len(segment.encode()) > MAX_SEGMENT_BYTES:
            raise BadRequest(f"a path segment is longer than {MAX_SEGMENT_BYTES} bytes")
        segments.append(segment)
    if len(segments) > MAX_PATH_SEGMENTS:
        raise BadRequest(f"the path has more than {MAX_PATH_SEGMENTS} segments")
    return ContentPath(root, root_text, tuple(segments), trailing)


_MEDIA = re.compile(r"\s*([^;,\s]+)\s*((?:;[^,]*)?)")


def _accepted(accept: str) -> list[tuple[str, dict[str, str]]]:
    """``Accept``'s media types in the order given, with their parameters (lower-cased)."""
    out: list[tuple[str, dict[str, str]]] = []
    for item in accept.split(","):
        match = _MEDIA.match(item)
        if not match:
            continue
        params: dict[str, str] = {}
        for param in match.group(2).split(";"):
            name, sep, value = param.partition("=")
            if sep:
                params[name.strip().lower()] = value.strip().strip('"').lower()
        out.append((match.group(1).lower(), params))
    return out


def _flag(value: str, name: str) -> bool:
    if value not in ("y", "n"):
        raise BadRequest(f"{name}={value!r}: use y or n")
    return value == "y"


def _entity_bytes(value: str) -> EntityBytes:
    match = re.fullmatch(r"(-?\d{1,19}):(-?\d{1,19}|\*)", value)
    if not match:
        raise BadRequest(f"entity-bytes={value!r}: expected from:to (integers, or * for to)")
    start = int(match.group(1))
    end = None if match.group(2) == "*" else int(match.group(2))
    if end is not None and start >= 0 and end >= 0 and end < start:
        raise BadRequest(f"entity-bytes={value!r}: to is before from")
    return EntityBytes(start, end)


def _car_options(query: dict[str, str], accept_params: dict[str, str]) -> CarOptions:
    version = query.get("car-version", accept_params.get("version", "1"))
    if version != "1":
        raise BadRequest(f"CAR version {version!r} is not supported (only version=1)")
    order = query.get("car-order", accept_params.get("order", "dfs")) or "dfs"
    if order not in ("dfs", "unk"):
        raise BadRequest(f"CAR order {order!r}: use dfs or unk")
    dups_text = query.get("car-dups", accept_params.get("dups", "n")) or "n"
    dups = _flag(dups_text, "car-dups")
    scope_text = query.get("dag-scope", "all")
    if scope_text not in ("block", "entity", "all"):
        raise BadRequest(f"dag-scope={scope_text!r}: use block, entity or all")
    entity = None
    if "entity-bytes" in query:
        entity = _entity_bytes(query["entity-bytes"])
        scope_text = "entity"  # entity-bytes implies dag-scope=entity
    return CarOptions(scope_text, entity, "dfs", dups)  # type: ignore[arg-type]


def parse_request(raw_path: bytes, query_string: bytes, accept: str) -> GatewayRequest:
    """Raises: BadRequest: anything malformed (unknown format, bad CID or parameter)."""
    if len(query_string) > MAX_QUERY_BYTES:
        raise BadRequest(f"the query string is longer than {MAX_QUERY_BYTES} bytes")
    path = parse_content_path(raw_path)
    try:
        pairs = parse_qsl(query_string.decode("ascii"), keep_blank_values=True,
                          strict_parsing=False, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the query string is not valid") from None
    query = {name: value for name, value in pairs}
    fmt: Format = "unixfs"
    accept_params: dict[str, str] = {}
    requested = query.get("format")
    for media, params in _accepted(accept):
        if media in _TYPE_FORMATS:
            fmt, accept_params = _TYPE_FORMATS[media], params  # type: ignore[assignment]
            break
    if requested is not None:
        if requested not in _FORMAT_TYPES:
            raise BadRequest(f"format={requested!r} is not served here (use "
                             f"{', '.join(_FORMAT_TYPES)})")
        fmt = requested  # type: ignore[assignment]
        # An Accept CAR header still carries its parameters under ?format=car.
        accept_params = next((p for m, p in _accepted(accept) if m == CAR_TYPE), {})
    car = _car_options(query, accept_params) if fmt == "car" else None
    filename = requested_name(query["filename"]) if query.get("filename") else None
    if filename is not None and any(c in filename for c in "\r\n\x00"):
        raise BadRequest("filename must not contain control characters")
    download = query.get("download", "").lower() == "true"
    return GatewayRequest(path, fmt, car, filename, download, query)


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive


def parse_range(header: str, size: int) -> list[ByteRange] | None:
    """A ``Range: bytes=...`` header against a ``size``-byte file.

    Returns None when the header is absent or not a bytes range (serve the whole file), an
    empty list when no range is satisfiable (416), else the satisfiable ranges.

    Raises:
        BadRequest: more than MAX_RANGES ranges.
    """
    header = header.strip()
    if not header.lower().startswith("bytes="):
        return None
    specs = [s.strip() for s in header[len("bytes="):].split(",") if s.strip()]
    if len(specs) > MAX_RANGES:
        raise BadRequest(f"more than {MAX_RANGES} ranges in one request")
    ranges: list[ByteRange] = []
    for spec in specs:
        match = re.fullmatch(r"(\d{0,19})-(\d{0,19})", spec)
        if not match or (not match.group(1) and not match.group(2)):
            return None  # a malformed Range is ignored, as RFC 9110 allows
        first, last = match.group(1), match.group(2)
        if not first:  # suffix: the last N bytes
            length = int(last)
            if length == 0:
                continue
            ranges.append(ByteRange(max(0, size - length), size - 1))
            continue
        start = int(first)
        end = size - 1 if not last else min(int(last), size - 1)
        if last and int(last) < start:
            return None
        if start >= size:
            continue
        ranges.append(ByteRange(start, end))
    return ranges
