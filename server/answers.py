"""What a tool call answers: one short sentence for people, the data for programs.

A tool result carries its model once, as ``structuredContent``; its text is a sentence that
says what happened ("Stored 3,000 files (1.2 GB) as bafy…; page 1 of 30"), never the same
JSON again. Each result model has its sentence here, so the tools stay a few lines.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from mcp_types import CallToolResult, ContentBlock, TextContent
from pydantic import BaseModel

from ipfs_mcp.tools import models, names
from ipfs_mcp.tools.paging import DEFAULT_PAGE

_UNITS = ("bytes", "KB", "MB", "GB", "TB", "PB")


def human_size(size: int | None) -> str:
    """``1.2 GB``: decimal units, as a person reads a size; ``?`` when unknown."""
    if size is None:
        return "?"
    value, unit = float(size), 0
    while value >= 1000 and unit < len(_UNITS) - 1:
        value, unit = value / 1000, unit + 1
    if unit == 0:
        return "1 byte" if size == 1 else f"{size:,} bytes"
    return f"{value:.1f} {_UNITS[unit]}"


def short_cid(cid: str) -> str:
    """A CID as a sentence names it: its first characters, enough to tell it apart."""
    return cid if len(cid) <= 16 else f"{cid[:12]}…{cid[-4:]}"


def _listed(count: int, total: int | None, cursor: str | None, noun: str,
            nouns: str) -> str:
    """``3,000 entries; showing 100, pass cursor for more`` (the total when known)."""
    if cursor is None:
        return _plural(total if total is not None else count, noun, nouns)
    if total is None:
        return f"showing {_plural(count, noun, nouns)}, more follow (pass cursor)"
    return f"{_plural(total, noun, nouns)}; showing {count:,}, pass cursor for more"


def _plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count:,} {one if count == 1 else (many or one + 's')}"


def _store(r: models.StoreResult) -> str:
    pages = f"; page 1 of {math.ceil(r.total / DEFAULT_PAGE)}" if (
        r.cursor and r.total) else ""
    held = "pinned" if r.pinned else "not pinned"
    shared = "announced" if r.announced else "not announced"
    return (f"Stored {_plural(r.file_count, 'file')} ({human_size(r.total_size)}) as "
            f"{r.root_cid} on {r.backend}, {held}, {shared}{pages}.")


def _fetch(r: models.FetchResult) -> str:
    name = short_cid(r.resolved_cid)
    if r.delivery == "listing":
        return f"Folder {name}: {_listed(len(r.entries or []), r.total, r.cursor, 'entry', 'entries')}."
    if r.delivery == "file":
        return f"Wrote {name} ({human_size(r.size)}) to {r.output_path}."
    if r.delivery == "hf_cache":
        return (f"Wrote {_plural(r.files_written or 0, 'file')} of {name} into the "
                f"HuggingFace cache as {r.hf_repo_id}@{r.hf_revision}.")
    if r.delivery == "resource_link":
        return (f"{name} is {human_size(r.size)}, too large to inline: read it from the "
                "resource link, in pages (offset/length), or pass output_path.")
    if r.kind == "symlink":
        return f"{name} is a symlink to {r.text!r}."
    part = "all" if r.eof and r.offset == 0 else f"bytes {r.offset:,}+{r.length:,}"
    how = "text" if r.delivery == "text" else "base64"
    return f"{name} ({human_size(r.size)}): {part} as {how}."


def _ls(r: models.LsResult) -> str:
    name = short_cid(r.resolved_cid)
    if r.kind != "directory":
        return f"{name} is a {r.kind}, not a folder."
    return f"Folder {name}: {_listed(len(r.entries), r.total, r.cursor, 'entry', 'entries')}."


def _pins(r: models.PinList) -> str:
    said = _listed(len(r.pins), r.total, r.cursor, "pin", "pins")
    return f"{said[:1].upper()}{said[1:]}."


def _add(r: models.AddResult) -> str:
    what = (_plural(r.file_count, "file") if r.kind == "directory"
            else f"a {r.kind}")
    held = "pinned" if r.pinned else "not pinned"
    return f"Added {what} ({human_size(r.size)}) as {r.cid}, {held}."


def _pin(r: models.PinResult) -> str:
    how = "recursively" if r.recursive else "directly (root block only)"
    size = f" ({human_size(r.size)})" if r.size is not None else ""
    return f"Pinned {r.cid}{size} {how}."


def _unpin(r: models.UnpinResult) -> str:
    return f"Unpinned {r.cid} ({', '.join(r.removed)}); its blocks stay until repo_gc."


def _gc(r: models.GCResult) -> str:
    missing = (f"; {_plural(len(r.missing_pinned), 'pinned root')} missing blocks"
               if r.missing_pinned else "")
    return (f"Removed {_plural(r.removed_blocks, 'block')} ({human_size(r.freed_bytes)}), "
            f"kept {r.kept_blocks:,}{missing}.")


def _providers(r: models.ProvidersResult) -> str:
    if not r.providers:
        return f"No provider found for {short_cid(r.cid)}."
    return f"{_plural(r.count, 'provider')} for {short_cid(r.cid)}."


def _connect(r: models.ConnectResult) -> str:
    state = "Connected to" if r.connected else "Could not connect to"
    return f"{state} {short_cid(r.peer_id)}."


def _announce(r: models.AnnounceResult) -> str:
    if not r.announced:
        return f"{short_cid(r.cid)} was not announced ({r.scope})."
    return f"Announced {short_cid(r.cid)}: {_plural(r.records, 'record')} to {r.scope}."


def _stats(r: models.PeerStatsResult) -> str:
    if r.network is None:
        return f"Backend {r.backend}; P2P node: {r.network_status}."
    return (f"Backend {r.backend}; node {short_cid(r.network.peer_id)} with "
            f"{_plural(r.network.connected_peers, 'connected peer')}.")


def _resolved(r: names.ResolveNameResult) -> str:
    return f"{r.name} is {r.path}."


def _published(r: names.PublishNameResult) -> str:
    replaced = (f", replacing the network's newer sequence {r.replaced_sequence}"
                if r.replaced_sequence is not None else "")
    return f"Published {r.value} as {r.name} (sequence {r.sequence}){replaced}."


SENTENCES: dict[type[BaseModel], Callable[[Any], str]] = {
    models.StoreResult: _store, models.FetchResult: _fetch, models.LsResult: _ls,
    models.PinList: _pins, models.AddResult: _add, models.PinResult: _pin,
    models.UnpinResult: _unpin, models.GCResult: _gc, models.ProvidersResult: _providers,
    models.ConnectResult: _connect, models.AnnounceResult: _announce,
    models.PeerStatsResult: _stats, names.ResolveNameResult: _resolved,
    names.PublishNameResult: _published,
}


def sentence(result: BaseModel) -> str:
    """The one-line summary of ``result``."""
    return SENTENCES[type(result)](result)


def answer(result: BaseModel, extra: Sequence[ContentBlock] = (), *,
           drop_nulls: bool = False) -> CallToolResult:
    """``result`` as a tool answer: its sentence as text (then ``extra`` blocks, such as a
    resource link) and its data, once, as structured content. ``drop_nulls`` leaves out
    the optional fields that are null (a fetch's many delivery-specific ones); a required
    field that may be null (an unknown total) stays, so the answer matches its model."""
    unset = {name for name, info in type(result).model_fields.items()
             if drop_nulls and not info.is_required() and getattr(result, name) is None}
    data = result.model_dump(mode="json", exclude=unset)
    return CallToolResult(content=[TextContent(type="text", text=sentence(result)), *extra],
                          structured_content=data)
