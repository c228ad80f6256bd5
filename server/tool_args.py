"""The MCP tools' arguments, each declared once as ``Annotated[type, Field(...)]``.

The SDK reads a tool's signature into the input schema it publishes and validates every call
against it, so a type here is at once the argument's check and what an agent is told about
it. Tools that share an argument share its type. The two whose text names a server limit
are built per server (:func:`inline_length`, :func:`inline_bytes`).

:data:`ImportObject` is the import options of :mod:`ipfs_mcp.tools.import_options` as one
object argument, ``import`` on the wire (:func:`wire_names` hands it to the function), and
:func:`hidden_unless` keeps options of one backend out of the others' schemas.

(No ``from __future__ import annotations``: these annotations are read as objects.)
"""

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from pydantic import Field

from ipfs_mcp.tools.import_options import ImportArgs
from ipfs_mcp.tools.paging import DEFAULT_PAGE

Cid = Annotated[str, Field(description="Qm... or bafy..., or CID/path/inside")]
RootCid = Annotated[str, Field(description="The CID (no sub-path)")]
Source = Annotated[str, Field(description=(
    "org/name[@revision] of a model in the local HF cache, or a file or folder inside the "
    "allowed roots"))]
KeepPinned = Annotated[bool, Field(description="Keep it from garbage collection")]
Announce = Annotated[bool, Field(description="Tell peers this node provides it")]
StoreNocopy = Annotated[bool | None, Field(description=(
    "Refer to the files instead of copying them (Kubo's --nocopy). Default: true for models "
    "in the HF cache"))]
AddNocopy = Annotated[bool, Field(description=(
    "With path: refer to the files instead of copying them (Kubo's --nocopy)"))]
Text = Annotated[str | None, Field(description="UTF-8 text to add")]
LocalPath = Annotated[str | None, Field(description="A file or folder inside the allowed roots")]
PinName = Annotated[str, Field(description="A label kept with the pin")]

# Only the cluster backend keeps a pin on several machines; elsewhere a factor is refused.
ReplicationMin = Annotated[int | None, Field(ge=-1, description=(
    "Fewest cluster peers to hold it (-1: all)"))]
ReplicationMax = Annotated[int | None, Field(ge=-1, description=(
    "Most cluster peers to hold it (-1: all)"))]
Recursive = Annotated[bool, Field(description=(
    "Pin the whole DAG (fetching missing blocks), not just the root block"))]

OutputPath = Annotated[str | None, Field(description=(
    "Write it here (inside the allowed roots) instead of returning it"))]
IntoHfCache = Annotated[str | None, Field(description=(
    "org/name: write the folder into the local HF cache, for offline loads"))]
HfRevision = Annotated[str | None, Field(description=(
    "Branch or tag for into_hf_cache (default main; or org/name@rev); not a commit id"))]
Offset = Annotated[int, Field(ge=0, description="First byte to return inline")]
Overwrite = Annotated[bool, Field(description=(
    "Replace an existing file or folder at output_path"))]
Replace = Annotated[bool, Field(description=(
    "Let into_hf_cache move a cached revision that names other content"))]

PinLimit = Annotated[int, Field(ge=1, le=1000, description="Most entries to return")]
NameContains = Annotated[str, Field(description="Only pins whose name contains this")]
LsLimit = Annotated[int, Field(ge=1, le=1000, description=f"Page size (default {DEFAULT_PAGE})")]
LsOffset = Annotated[int, Field(ge=0, description="Entries to skip")]
Cursor = Annotated[str | None, Field(max_length=2048, description=(
    "The previous page's cursor: the next page"))]

# The import knobs travel as one object, named as Kubo's option set ("import"): a profile
# and the overrides, so a tool that imports lists one argument, not eight.
ImportObject = Annotated[ImportArgs | None, Field(alias="import", description=(
    "How files are cut into blocks, which decides the CID: a Kubo import profile plus "
    "overrides. Omit for Kubo's defaults (CIDv0)"))]
ProviderCount = Annotated[int, Field(ge=1, le=50, description="Most providers")]
Multiaddr = Annotated[str, Field(description=(
    "The peer's address ending in its id, e.g. /ip4/10.0.0.5/tcp/4001/p2p/12D3Koo..."))]


def inline_length(cap: int) -> Any:
    """``length`` of an inline read, its text naming the server's inline cap."""
    return Annotated[int | None, Field(ge=0, description=(
        f"Bytes to return inline (at most {cap})"))]


def inline_bytes(cap: int) -> Any:
    """``data_base64`` of an inline add, its text naming the server's cap on it."""
    return Annotated[str | None, Field(description=(
        f"Bytes to add, base64-encoded (at most {cap} bytes decoded)"))]


R = TypeVar("R")


def wire_names(**aliases: str) -> Callable[[Callable[..., Awaitable[R]]],
                                           Callable[..., Awaitable[R]]]:
    """A decorator for arguments whose wire name is no Python name (``import``): the SDK
    calls the tool with the alias (``import=...``); the function gets its parameter.
    ``aliases`` maps the parameter to its wire name."""

    def decorate(fn: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
        @functools.wraps(fn)
        async def tool(**kwargs: Any) -> R:
            for name, wire in aliases.items():
                if wire in kwargs:
                    kwargs[name] = kwargs.pop(wire)
            return await fn(**kwargs)

        tool.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]
        return tool

    return decorate


def hidden_unless(shown: bool, *names: str) -> Callable[[Callable[..., Awaitable[R]]],
                                                        Callable[..., Awaitable[R]]]:
    """A decorator: unless ``shown``, the arguments ``names`` are not published (the tool
    lists fewer inputs) and every call gets their defaults. For options one backend has
    (the cluster's replication), which elsewhere would only be refused."""

    def decorate(fn: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
        if shown:
            return fn
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        async def tool(**kwargs: Any) -> R:
            return await fn(**kwargs)

        params = [p for p in sig.parameters.values() if p.name not in names]
        tool.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        tool.__annotations__ = {k: v for k, v in fn.__annotations__.items() if k not in names}
        return tool

    return decorate
