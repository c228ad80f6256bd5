"""The MCP tools' arguments, each declared once as ``Annotated[type, Field(...)]``.

The SDK reads a tool's signature into the input schema it publishes and validates every call
against it, so a type here is at once the argument's check and what an agent is told about
it. Tools that share an argument share its type. The two whose text names a server limit
are built per server (:func:`inline_length`, :func:`inline_bytes`).

:func:`spread` lays a pydantic model's fields out as separate tool arguments (the import
options of :mod:`ipfs_mcp.tools.import_options`, which agents pass flat, beside ``source``),
and gathers them back into the model for the tool function.

(No ``from __future__ import annotations``: these annotations are read as objects.)
"""

import functools
import inspect
import typing
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, Field

Cid = Annotated[str, Field(description=(
    "A CID (Qm... or bafy...), optionally with a path inside it: CID/dir/file.txt. "
    "ipfs://CID and /ipfs/CID work too."))]
RootCid = Annotated[str, Field(description="The CID (no sub-path)")]
Source = Annotated[str, Field(description=(
    "A HuggingFace repo id from the local HF cache, with an optional revision (org/name or "
    "org/name@main), or a local file or folder inside the allowed roots (absolute, or "
    "relative to the first root)"))]
KeepPinned = Annotated[bool, Field(description="Keep it from garbage collection")]
Announce = Annotated[bool, Field(description="Tell peers this node provides it")]
StoreNocopy = Annotated[bool | None, Field(description=(
    "Keep the files' leaves as references into them instead of copying (Kubo's --nocopy; "
    "implies raw leaves). Default: true for models in the HF cache, false for other paths"))]
AddNocopy = Annotated[bool, Field(description=(
    "With path: keep the leaves as references into the files instead of copying (Kubo's "
    "--nocopy; implies raw leaves)"))]
Text = Annotated[str | None, Field(description="UTF-8 text to add")]
LocalPath = Annotated[str | None, Field(description="A file or folder inside the allowed roots")]
PinName = Annotated[str, Field(description="A label kept with the pin")]

# Only the cluster backend keeps a pin on several machines; elsewhere a factor is refused.
ReplicationMin = Annotated[int | None, Field(ge=-1, description=(
    "Cluster backend only: the fewest cluster peers that must hold the pin (-1: all)"))]
ReplicationMax = Annotated[int | None, Field(ge=-1, description=(
    "Cluster backend only: the most cluster peers that may hold the pin (-1: all)"))]
Recursive = Annotated[bool, Field(description=(
    "Pin the whole DAG (fetching missing blocks), not just the root block"))]

OutputPath = Annotated[str | None, Field(description=(
    "Write the file or folder here (inside the allowed roots) instead of returning it"))]
IntoHfCache = Annotated[str | None, Field(description=(
    "A HuggingFace repo id (org/name): write the folder into the local HF cache so "
    "huggingface_hub/transformers load it offline"))]
HfRevision = Annotated[str | None, Field(description=(
    "Branch or tag name for into_hf_cache (default main); or write org/name@rev. Not a "
    "commit id. When both are given they must be the same"))]
Offset = Annotated[int, Field(ge=0, description="First byte to return inline")]
Overwrite = Annotated[bool, Field(description=(
    "Replace an existing file or non-empty folder at output_path (refused otherwise)"))]
Replace = Annotated[bool, Field(description=(
    "Let into_hf_cache move hf_revision of a cached repo that already names other content "
    "(refused otherwise)"))]

PinLimit = Annotated[int, Field(ge=1, le=1000, description="Most entries to return")]
NameContains = Annotated[str, Field(description="Only pins whose name contains this")]
LsLimit = Annotated[int, Field(ge=1, le=10000)]
LsOffset = Annotated[int, Field(ge=0, description="Entries to skip (a page's next_offset)")]
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


def spread(model: type[BaseModel], into: str) -> Callable[[Callable[..., Awaitable[R]]],
                                                          Callable[..., Awaitable[R]]]:
    """A decorator: the tool's parameter ``into`` (a ``model``) becomes one tool argument
    per field of ``model``, in its place, with the field's type, constraints, text and
    default; each call gathers them back into one ``model`` for the function.

    So a model shared by several tools and the CLI is declared once, while agents keep
    passing its fields flat, as they always have.
    """
    fields = typing.get_type_hints(model, include_extras=True)

    def decorate(fn: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
        hints = typing.get_type_hints(fn, include_extras=True)
        sig = inspect.signature(fn)
        gathered = sig.parameters[into]
        params: list[inspect.Parameter] = []
        for param in sig.parameters.values():
            if param is gathered:
                params += [inspect.Parameter(name, gathered.kind, default=info.default,
                                             annotation=fields[name])
                           for name, info in model.model_fields.items()]
            else:
                params.append(param.replace(annotation=hints.get(param.name, param.annotation)))

        @functools.wraps(fn)
        async def tool(**kwargs: Any) -> R:
            given = {name: kwargs.pop(name) for name in model.model_fields if name in kwargs}
            return await fn(**kwargs, **{into: model(**given)})

        # The SDK reads the signature (for the schema) and the type hints (to find the
        # context and the resolved parameters); both must show the spread arguments.
        tool.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        tool.__annotations__ = {p.name: p.annotation for p in params
                                if p.annotation is not inspect.Parameter.empty}
        tool.__annotations__["return"] = sig.return_annotation
        return tool

    return decorate
