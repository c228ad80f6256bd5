"""The MCP server: wires the tools, resources, prompts and completions into ``MCPServer``.

This is the only module that knows MCP. Each tool here is a few lines: get the lifespan
state from the context, call the plain function in :mod:`ipfs_mcp.tools`, and turn the
project's errors into tool error results whose text says what to do next. Nothing below
returns a traceback or a protocol error for a bad argument.

(No ``from __future__ import annotations`` here: the SDK reads the tools' signatures at
registration, and annotations that name local values, such as the inline cap, must be
evaluated where they are written.)
"""

import contextlib
import inspect
import json
import logging
from collections.abc import Callable, Iterator
from typing import Annotated, Any

from mcp.server.caching import CacheHint
from mcp.server.elicitation import (
    AcceptedElicitation,
    DeclinedElicitation,
    ElicitationResult,
)
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.server.mcpserver.resolve import Elicit, ListRoots, Resolve
from mcp.server.subscriptions import InMemorySubscriptionBus, ResourceUpdated
from mcp_types import (
    CallToolResult,
    Completion,
    ListRootsResult,
    PromptReference,
    ReadResourceResult,
    ResourceLink,
    ResourceTemplateReference,
    TextContent,
    ToolAnnotations,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, Field

from ipfs_mcp.backends.core.cids import split_path
from ipfs_mcp.backends.errors import (
    BackendUnavailable,
    InvalidCID,
    IpfsMcpError,
    NotFound,
    PinNotFound,
)
from ipfs_mcp.backends.hub import layout as hf_layout
from ipfs_mcp.tools import content, network
from ipfs_mcp.tools import names as name_tools
from ipfs_mcp.tools import pubsub as pubsub_tools
from ipfs_mcp.tools.health import health
from ipfs_mcp.tools.import_options import ImportArgs
from ipfs_mcp.tools.models import (
    AddResult,
    AnnounceResult,
    ConnectResult,
    FetchResult,
    GCResult,
    LsResult,
    PeerStatsResult,
    PinList,
    PinResult,
    ProvidersResult,
    StoreResult,
    UnpinResult,
)
from ipfs_mcp.tools.paging import DEFAULT_PAGE, Cursors
from ipfs_mcp.tools.progress import Progress
from ipfs_mcp.tools.roots import AllowedRoots, file_uri_to_path

from . import answers, tool_list
from . import prompts as prompt_texts
from . import tool_args as args
from .config import ServerSettings
from .state import NodeSlot, Runtime, ServerState, lifespan_state
from .version import installed_version

log = logging.getLogger("ipfs_mcp.server")

INSTRUCTIONS = """\
Content-addressed storage (IPFS) for models, folders and files. Content is named by its CID,
the same one Kubo gives; fetching verifies every block against it.
- store_model: add a HuggingFace model from the local cache (org/name[@revision]) or a local
  folder; returns the root CID. fetch_cid reads it back (small content inline, large content
  as an ipfs:// resource link), writes it to disk (output_path), or into the HuggingFace cache
  (into_hf_cache) so transformers loads it offline.
- Local paths must be inside the allowed roots (see the ipfs-mcp://health resource).
- Listings (ls, a folder's fetch_cid, store_model's files, list_pins) come a page at a time
  with the total; pass the answer's cursor back for the next page.
- find_providers / connect_peer / announce / peer_stats use the P2P node.
- resolve_name / publish_name: IPNS names and DNSLink domains that point at the latest CID.
Prompts: share_model, fetch_and_verify, diagnose, publish_latest."""

# A CID never changes what it names, so its content may be cached for long; a day keeps
# a client from holding an answer about a CID that was later garbage-collected forever.
CID_CACHE_TTL_MS = 24 * 3600 * 1000
_MAX_PINS_RESOURCE = 500


def actionable(exc: IpfsMcpError) -> str:
    """The error's message plus what an agent can do about it."""
    text = str(exc).rstrip(".")
    if isinstance(exc, InvalidCID):
        return (f"{text}. A CID looks like Qm... (CIDv0) or bafy... (CIDv1); to name a file "
                "inside a folder, write CID/path/to/file.")
    if isinstance(exc, PinNotFound):
        return f"{text}; list_pins shows what is pinned."
    if isinstance(exc, NotFound):
        return (f"{text}. If another node has it, call find_providers, then connect_peer to "
                "one of them and retry; or store it here first with store_model/add_content.")
    return str(exc)


@contextlib.contextmanager
def tool_errors(state: ServerState, tool: str) -> Iterator[None]:
    """Turn the project's errors into MCP tool errors (``isError`` results)."""
    try:
        yield
    except IpfsMcpError as exc:
        message = actionable(exc)
        state.note_error(tool, message)
        log.info("tool %s failed: %s", tool, message)
        raise ToolError(message) from exc
    except OSError as exc:  # disk full, permission denied: not ours, but the caller's to fix
        message = f"{exc.strerror or exc} ({exc.filename or 'no file'})"
        state.note_error(tool, message)
        raise ToolError(message) from exc
    except ToolError:
        raise
    except Exception as exc:
        # A bug of ours: the SDK would answer only "Error executing tool X", leaving the
        # agent nothing to report. It gets what failed, one line; the log keeps the traceback.
        message = (f"internal error in {tool}: {type(exc).__name__}: {exc} (a bug in "
                   "ipfs-mcp; the server's log has the traceback)")
        state.note_error(tool, message)
        log.exception("tool %s crashed", tool)
        raise ToolError(message) from exc


def _state(ctx: Context) -> ServerState:
    return ctx.request_context.lifespan_context


def _progress(ctx: Context) -> Progress:
    return Progress(ctx.report_progress)


def _roots(state: ServerState, client: ListRootsResult | None) -> AllowedRoots:
    """The roots of one call: the configured ones plus the client's, which become read and
    write roots; the state's protected folders (hub cache, repo) stay protected."""
    if client is None:
        return state.roots
    extra = [p for p in (file_uri_to_path(str(r.uri)) for r in client.roots) if p is not None]
    return state.roots.plus(extra)


# Resolvers: ask the client for its MCP roots only when a call names a local path and the
# client declared the roots capability, so other calls never pay the round trip. They are
# async so that the SDK runs them inline instead of in a worker thread.
def _wants_roots(ctx: Context, path: str | None) -> ListRoots | None:
    caps = ctx.client_capabilities
    if not path or caps is None or caps.roots is None:
        return None
    return ListRoots()


async def _roots_for_source(ctx: Context, source: str) -> ListRoots | None:
    return _wants_roots(ctx, source)


async def _roots_for_path(ctx: Context, path: str | None = None) -> ListRoots | None:
    return _wants_roots(ctx, path)


async def _roots_for_output(ctx: Context, output_path: str | None = None) -> ListRoots | None:
    return _wants_roots(ctx, output_path)


class Confirm(BaseModel):
    confirm: bool = Field(description="Go ahead")


# Destructive tools ask the user first when the client can show a question (elicitation);
# other clients rely on the tools' destructive annotation. A "no" (declined, cancelled, or
# accepted unticked) ends the call with a result saying so (:func:`_confirmed`).
Confirmation = ElicitationResult[Confirm]  # the full outcome; None when nothing was asked


async def _confirm_gc(ctx: Context) -> Elicit[Confirm] | None:
    caps = ctx.client_capabilities
    if caps is None or caps.elicitation is None:
        return None
    return Elicit("Garbage-collect the IPFS repo? Every block that no pin holds is deleted "
                  "from disk (it can be fetched again from peers that have it).", Confirm)


async def _confirm_unpin(ctx: Context, cid: str) -> Elicit[Confirm] | None:
    caps = ctx.client_capabilities
    if caps is None or caps.elicitation is None:
        return None
    return Elicit(f"Unpin {cid}? Its blocks are deleted at the next garbage collection "
                  "unless another pin holds them.", Confirm)


async def _confirm_publish(ctx: Context, value: str = "", key: str = "self"
                           ) -> Elicit[Confirm] | None:
    """Ask before publish_name replaces a newer record the network holds under ``key``
    than this node last published (the key used elsewhere), when the client can ask."""
    caps = ctx.client_capabilities
    names = _state(ctx).names.names
    if caps is None or caps.elicitation is None or names is None:
        return None
    try:
        newer = await name_tools.would_replace(names, key)
    except IpfsMcpError:
        return None  # the call itself fails with the clear error
    if newer is None:
        return None
    return Elicit(f"The network holds a newer record for key {key!r} ({newer.name}, "
                  f"sequence {newer.network_sequence}, pointing at {newer.network_value}) "
                  f"than this node published. Replace it with {value}?", Confirm)


async def _hub_plan(ctx: Context, into_hf_cache: str | None = None,
                    hf_revision: str | None = None) -> hf_layout.RevisionPlan | None:
    """fetch_cid's into_hf_cache target, resolved once per call (the SDK runs a resolver
    once): the question below shows this plan and the write uses it."""
    if into_hf_cache is None:
        return None
    with _calling(ctx, "fetch_cid") as state:
        return hf_layout.plan_revision(state.settings.backend.hf_hub_cache, into_hf_cache,
                                       hf_revision)


async def _confirm_replacing(
    ctx: Context, cid: str = "", output_path: str | None = None, overwrite: bool = False,
    replace: bool = False,
    client_roots: Annotated[ListRootsResult | None, Resolve(_roots_for_output)] = None,
    hub: Annotated[hf_layout.RevisionPlan | None, Resolve(_hub_plan)] = None,
) -> Elicit[Confirm] | None:
    """Ask before fetch_cid replaces something, when it would and the client can ask:
    ``overwrite`` over an existing path, ``replace`` of a revision that names other content."""
    caps = ctx.client_capabilities
    if caps is None or caps.elicitation is None:
        return None
    state = _state(ctx)
    if overwrite and output_path:
        target = _roots(state, client_roots).would_replace(output_path)
        if target is not None:
            return Elicit(f"Replace {target} with the content of {cid}? What is there now "
                          "is deleted.", Confirm)
    if replace and hub is not None and hub.current is not None:
        try:
            root, path = split_path(cid)
        except IpfsMcpError:
            return None  # the call itself fails with the clear error
        if path or hub.current != hf_layout.commit_for(root):
            return Elicit(f"Move {hub.label} in the HuggingFace cache from commit "
                          f"{hub.current} to the content of {cid}? Offline loads of "
                          f"{hub.label} would then get the new files.", Confirm)
    return None


def _declined(answer: Confirmation | None, what: str) -> CallToolResult | None:
    """None when nothing was asked or the user said yes; otherwise the call's answer, which
    says what the user said, so a model can tell a "no" from a failure: "the user declined
    to ``what``; nothing was changed" (or cancelled the question, or did not agree)."""
    if answer is None:
        return None
    if isinstance(answer, AcceptedElicitation):
        # A resolver that asked nothing (the client cannot be asked) resolves to no data.
        if answer.data is None or answer.data.confirm:
            return None
        said = f"the user did not agree to {what} (not confirmed)"
    elif isinstance(answer, DeclinedElicitation):
        said = f"the user declined to {what}"
    else:
        said = f"the user cancelled the question whether to {what}"
    return CallToolResult(content=[TextContent(type="text", text=f"{said}; nothing was changed")],
                          is_error=True)


# The SDK wraps every resolved value in AcceptedElicitation[Any]. pydantic caches
# parametrized generics only while something references them, so without this reference the
# class is rebuilt on every tool call (about half a millisecond each).
_ACCEPTED_ANY = AcceptedElicitation[Any]


ClientRoots = ListRootsResult | None


def _read_only(open_world: bool = False) -> ToolAnnotations:
    return ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                           open_world_hint=open_world)


def _writes(*, destructive: bool = False, idempotent: bool = True,
            open_world: bool = False) -> ToolAnnotations:
    return ToolAnnotations(read_only_hint=False, destructive_hint=destructive,
                           idempotent_hint=idempotent, open_world_hint=open_world)


def build_server(settings: ServerSettings | None = None, *, gateway_url: str | None = None,
                 slot: NodeSlot | None = None) -> MCPServer[ServerState]:
    """A ready-to-run server; nothing starts until a transport enters its lifespan.

    ``gateway_url`` is this process's running gateway (``--gateway``): large content is then
    offered as a download from it beside the ``ipfs://`` resource link. ``slot`` is where
    the lifespan publishes our node, when something else (the gateway) also needs it."""
    settings = settings or ServerSettings.load()
    runtime = Runtime()
    bus = InMemorySubscriptionBus()  # resource updates (pubsub://) go out through it

    @contextlib.asynccontextmanager
    async def lifespan(_: MCPServer[ServerState]):
        async with lifespan_state(settings, runtime, slot=slot,
                                  gateway_url=gateway_url) as state:
            yield state

    mcp: MCPServer[ServerState] = MCPServer(
        "ipfs-mcp", title="IPFS content storage", version=installed_version(),
        description="Real, Kubo-compatible content-addressed storage for agents",
        instructions=INSTRUCTIONS, lifespan=lifespan, log_level=settings.log_level,  # type: ignore[arg-type]
        cache_hints={"resources/read": CacheHint(ttl_ms=0, scope="private")},
        subscriptions=bus,
    )
    mcp.middleware.append(_cid_cache_hints)
    mcp.middleware.append(_compact_tool_list)
    mcp.middleware.append(_refuse_unknown_arguments(mcp))
    _register_tools(mcp, settings, Cursors())
    _register_resources(mcp, runtime)
    if settings.start_p2p and settings.backend.backend not in ("kubo", "cluster"):
        _register_pubsub(mcp, runtime, bus)  # only where our own node can run
    _register_prompts(mcp)
    _register_completions(mcp, runtime)
    return mcp


async def _cid_cache_hints(ctx: Any, call_next: Any) -> Any:
    """``ipfs://CID`` reads name immutable content: let clients cache them, and share the
    cache (the answer is the same for everyone). Other reads (health, pins) stay fresh."""
    result = await call_next(ctx)
    if (ctx.method != "resources/read" or ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS
            or not str((ctx.params or {}).get("uri", "")).startswith("ipfs://")):
        return result
    if isinstance(result, dict):
        return {**result, "ttlMs": CID_CACHE_TTL_MS, "cacheScope": "public"}
    if isinstance(result, ReadResourceResult):
        return result.model_copy(update={"ttl_ms": CID_CACHE_TTL_MS, "cache_scope": "public"})
    return result


async def _compact_tool_list(ctx: Any, call_next: Any) -> Any:
    """``tools/list`` with compact schemas (:mod:`.tool_list`): a client sends the list to
    the model on every turn."""
    result = await call_next(ctx)
    if ctx.method != "tools/list":
        return result
    if isinstance(result, BaseModel):
        result = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(result, dict) and isinstance(result.get("tools"), list):
        return {**result, "tools": [tool_list.compact_tool(t) for t in result["tools"]]}
    return result


def _refuse_unknown_arguments(mcp: MCPServer[ServerState]) -> Any:
    """A middleware: a tool call naming an argument its tool does not take is refused,
    saying which. The SDK would drop it silently, so an import knob passed flat (as the
    tools took them before the ``import`` object) would give another CID without a word."""
    known: dict[str, set[str]] = {}

    async def refuse(ctx: Any, call_next: Any) -> Any:
        params = ctx.params if isinstance(ctx.params, dict) else {}
        given = params.get("arguments")
        if ctx.method != "tools/call" or not isinstance(given, dict) or not given:
            return await call_next(ctx)
        if not known:
            known.update({t.name: set(t.input_schema.get("properties", {}))
                          for t in await mcp.list_tools()})
        takes = known.get(str(params.get("name")))
        unknown = sorted(set(given) - takes) if takes is not None else []
        if takes is None or not unknown:
            return await call_next(ctx)  # an unknown tool: the SDK's own error
        text = f"{params.get('name')} takes no argument {', '.join(unknown)}"
        knobs = [n for n in unknown if n in ImportArgs.model_fields]
        if knobs and "import" in takes:
            text += (f"; import options go in the import object, e.g. "
                     f"{{\"import\": {{\"{knobs[0]}\": ...}}}}")
        elif any(n.startswith("replication_") for n in unknown):
            text += "; replication factors need the cluster backend (IPFS_BACKEND=cluster)"
        else:
            text += f"; it takes {', '.join(sorted(takes))}"
        return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)

    return refuse


# -- tools ------------------------------------------------------------------------------------
@contextlib.contextmanager
def _calling(ctx: Context, tool: str) -> Iterator[ServerState]:
    """The lifespan state of one tool call, with the project's errors made tool errors."""
    state = _state(ctx)
    with tool_errors(state, tool):
        yield state


def _tool(mcp: MCPServer[ServerState], *, name: str | None = None, title: str,
          annotations: ToolAnnotations) -> Any:
    """``mcp.tool``, its description the function's docstring without the indentation a
    docstring has in source (a model reads it, as text)."""

    def register(fn: Any) -> Any:
        return mcp.tool(name=name, title=title, annotations=annotations,
                        description=inspect.cleandoc(fn.__doc__ or ""))(fn)

    return register


def _register_tools(mcp: MCPServer[ServerState], settings: ServerSettings,
                    cursors: Cursors) -> None:
    """One registration per tool: each reads its state from the context, calls the plain
    function in :mod:`ipfs_mcp.tools`, and answers a sentence plus the data
    (:mod:`.answers`). Only the two arguments whose text names a limit of this server are
    built here; the replication factors are published only on the cluster backend."""
    inline_max = settings.inline_max
    add_max = settings.add_max
    InlineLength = args.inline_length(inline_max)  # noqa: N806 (a type, named as one)
    InlineBytes = args.inline_bytes(add_max)  # noqa: N806
    cluster = settings.backend.backend == "cluster"
    replication = args.hidden_unless(cluster, "replication_min", "replication_max")
    _register_pin_tools(mcp, cursors, replication)
    _register_name_tools(mcp)

    @_tool(mcp, title="Store a model or folder", annotations=_writes(open_world=True))
    @replication
    @args.wire_names(import_args="import")
    async def store_model(
        ctx: Context, source: args.Source, pin: args.KeepPinned = True,
        announce: args.Announce = True, nocopy: args.StoreNocopy = None,
        import_args: args.ImportObject = None, replication_min: args.ReplicationMin = None,
        replication_max: args.ReplicationMax = None,
        client_roots: Annotated[ClientRoots, Resolve(_roots_for_source)] = None,
    ) -> Annotated[CallToolResult, StoreResult]:
        """Store a model from the local HF cache, or a file or folder, to share it; pins
        and announces it by default.

        Returns the root CID (as Kubo gives it), the size and a first page of files (ls
        with the cursor lists more). Cancelling leaves nothing pinned."""
        with _calling(ctx, "store_model") as state:
            result = await content.store_model(
                state.router, source, roots=_roots(state, client_roots),
                hub_cache=state.settings.backend.hf_hub_cache, pin=pin, nocopy=nocopy,
                import_args=import_args, progress=_progress(ctx),
                replication_min=replication_min, replication_max=replication_max,
                cursors=cursors)
            if announce:
                result.announced, result.announce_note = await network.announce_quietly(
                    state.network, result.root_cid, role=state.settings.role,
                    why=state.network_why)
            return answers.answer(result)

    @_tool(mcp, title="Fetch a CID", annotations=_writes(destructive=True, open_world=True))
    async def fetch_cid(
        ctx: Context, cid: args.Cid, output_path: args.OutputPath = None,
        into_hf_cache: args.IntoHfCache = None, hf_revision: args.HfRevision = None,
        offset: args.Offset = 0, length: InlineLength = None,
        overwrite: args.Overwrite = False, replace: args.Replace = False,
        cursor: args.Cursor = None,
        client_roots: Annotated[ClientRoots, Resolve(_roots_for_output)] = None,
        confirm: Annotated[Confirmation, Resolve(_confirm_replacing)] = None,
        hub: Annotated[hf_layout.RevisionPlan | None, Resolve(_hub_plan)] = None,
    ) -> Annotated[CallToolResult, FetchResult]:
        """Get content by CID, verified; a local miss asks peers.

        Small content comes inline (text or base64), larger as a resource link: page it
        with offset/length, or write it with output_path or into_hf_cache. A folder comes
        as a page of entries.

        overwrite=true replaces output_path, replace=true moves a cached revision;
        otherwise an existing target is refused. The user may be asked."""
        if no := _declined(confirm, f"replace {output_path}" if overwrite and output_path
                           else f"move {into_hf_cache} in the HuggingFace cache"):
            return no
        with _calling(ctx, "fetch_cid") as state:
            result = await content.fetch_cid(
                state.router, cid, roots=_roots(state, client_roots),
                hub_cache=state.settings.backend.hf_hub_cache, output_path=output_path,
                into_hf_cache=hub, offset=offset,
                length=length, max_inline=inline_max, progress=_progress(ctx),
                overwrite=overwrite, replace=replace, max_write=state.settings.backend.max_write,
                max_write_files=state.settings.backend.max_write_files, reads=state.router,
                cursor=cursor, cursors=cursors)
        if result.delivery == "resource_link" and state.gateway_url is not None:
            result.gateway_url = f"{state.gateway_url}/ipfs/{result.resolved_cid}"
            result.hint += f"; or download it over HTTP from {result.gateway_url}"
        return _fetch_result(result)

    @_tool(mcp, title="Find providers", annotations=_read_only(open_world=True))
    async def find_providers(ctx: Context, cid: args.RootCid, count: args.ProviderCount = 5
                             ) -> Annotated[CallToolResult, ProvidersResult]:
        """Peers that provide a CID, best first: use it when content is not here. Needs
        the P2P node."""
        with _calling(ctx, "find_providers") as state:
            return answers.answer(await network.find_providers(
                state.network, cid, count=count, why=state.network_why))

    @_tool(mcp, title="Peer and cache stats", annotations=_read_only())
    async def peer_stats(ctx: Context) -> Annotated[CallToolResult, PeerStatsResult]:
        """This node's identity, addresses, peers and traffic, DHT and bitswap figures,
        cache counters and backend."""
        with _calling(ctx, "peer_stats") as state:
            return answers.answer(await network.peer_stats(state.network, state.router,
                                                           why=state.network_why))

    @_tool(mcp, title="Add text, bytes or a path", annotations=_writes())
    @replication
    @args.wire_names(import_args="import")
    async def add_content(
        ctx: Context, text: args.Text = None, data_base64: InlineBytes = None,
        path: args.LocalPath = None, name: args.PinName = "", pin: args.KeepPinned = True,
        nocopy: args.AddNocopy = False, import_args: args.ImportObject = None,
        replication_min: args.ReplicationMin = None,
        replication_max: args.ReplicationMax = None,
        client_roots: Annotated[ClientRoots, Resolve(_roots_for_path)] = None,
    ) -> Annotated[CallToolResult, AddResult]:
        """Add small content given inline (text or base64), or a file or folder by path;
        pass exactly one of text, data_base64 and path. Returns its CID."""
        with _calling(ctx, "add_content") as state:
            return answers.answer(await content.add_content(
                state.router, roots=_roots(state, client_roots), text=text,
                data_base64=data_base64, path=path, name=name, pin=pin, max_inline=add_max,
                nocopy=nocopy, import_args=import_args, progress=_progress(ctx),
                replication_min=replication_min, replication_max=replication_max))

    @_tool(mcp, name="ls", title="List a folder CID", annotations=_read_only(open_world=True))
    async def ls_(ctx: Context, cid: args.Cid, limit: args.LsLimit = DEFAULT_PAGE,
                  offset: args.LsOffset = 0, cursor: args.Cursor = None
                  ) -> Annotated[CallToolResult, LsResult]:
        """A folder's entries (name, CID, kind, size), a page at a time with the total;
        pass cursor for the next page (store_model's cursor continues its file list)."""
        with _calling(ctx, "ls") as state:
            return answers.answer(await content.ls(state.router, cid, limit=limit,
                                                   offset=offset, cursor=cursor,
                                                   cursors=cursors))

    @_tool(mcp, title="Connect to a peer", annotations=_writes(open_world=True))
    async def connect_peer(ctx: Context, multiaddr: args.Multiaddr
                           ) -> Annotated[CallToolResult, ConnectResult]:
        """Dial a peer (noise-encrypted) so content can be fetched from it."""
        with _calling(ctx, "connect_peer") as state:
            return answers.answer(await network.connect_peer(state.network, multiaddr,
                                                             why=state.network_why))

    @_tool(mcp, title="Announce a CID", annotations=_writes(open_world=True))
    async def announce(ctx: Context, cid: args.RootCid
                       ) -> Annotated[CallToolResult, AnnounceResult]:
        """Tell the network (or the configured peers) that this node provides a CID."""
        with _calling(ctx, "announce") as state:
            return answers.answer(await network.announce(
                state.network, cid, role=state.settings.role, why=state.network_why))



def _register_name_tools(mcp: MCPServer[ServerState]) -> None:
    """Names that move: publish_name and resolve_name (IPNS keys, DNSLink domains)."""

    @_tool(mcp, title="Publish a name",
           annotations=_writes(destructive=True, idempotent=False, open_world=True))
    async def publish_name(
        ctx: Context,
        value: Annotated[str, Field(description="CID or /ipfs/<cid>/<path>")],
        key: str = "self",
        lifetime_seconds: Annotated[float, Field(ge=60)] = 48 * 3600,
        ttl_seconds: Annotated[float, Field(ge=0)] = 300,
        confirm: Annotated[Confirmation, Resolve(_confirm_publish)] = None,
    ) -> Annotated[CallToolResult, name_tools.PublishNameResult]:
        """Point a key's IPNS name at a CID (e.g. a model's latest version)."""
        refused = _declined(confirm, f"replace the newer record under key {key!r}")
        if refused is not None:
            return refused
        with _calling(ctx, "publish_name") as state:
            names = state.names.name_system()
            done = await name_tools.publish(names, value, key=key,
                                            lifetime_seconds=lifetime_seconds,
                                            ttl_seconds=ttl_seconds)
            return answers.answer(name_tools.published_result(key, done))

    @_tool(mcp, title="Resolve a name", annotations=_read_only(open_world=True))
    async def resolve_name(
        ctx: Context,
        name: Annotated[str, Field(description="/ipns/<k51… or domain>[/path]")],
        recursive: bool = True,
    ) -> Annotated[CallToolResult, name_tools.ResolveNameResult]:
        """The /ipfs/ path an IPNS name or DNSLink domain points at now."""
        with _calling(ctx, "resolve_name") as state:
            return answers.answer(await name_tools.resolve_name(state.names, name,
                                                                recursive=recursive))


def _register_pin_tools(mcp: MCPServer[ServerState], cursors: Cursors,
                        replication: Callable[[Any], Any]) -> None:
    """The tools that keep content or let it go: pin, unpin, list_pins, repo_gc."""

    @_tool(mcp, title="Pin a CID", annotations=_writes(open_world=True))
    @replication
    async def pin(ctx: Context, cid: args.Cid, recursive: args.Recursive = True,
                  name: args.PinName = "", replication_min: args.ReplicationMin = None,
                  replication_max: args.ReplicationMax = None
                  ) -> Annotated[CallToolResult, PinResult]:
        """Keep content from garbage collection; a recursive pin fetches missing blocks
        first."""
        with _calling(ctx, "pin") as state:
            return answers.answer(await content.pin(
                state.router, cid, recursive=recursive, name=name, progress=_progress(ctx),
                replication_min=replication_min, replication_max=replication_max))

    @_tool(mcp, title="Unpin a CID", annotations=_writes(destructive=True))
    async def unpin(ctx: Context, cid: args.Cid,
                    confirm: Annotated[Confirmation, Resolve(_confirm_unpin)] = None
                    ) -> Annotated[CallToolResult, UnpinResult]:
        """Remove a pin; its blocks go at the next repo_gc unless another pin holds them.
        The user may be asked."""
        if no := _declined(confirm, f"unpin {cid}"):
            return no
        with _calling(ctx, "unpin") as state:
            return answers.answer(await content.unpin(state.router, cid))

    @_tool(mcp, title="List pins", annotations=_read_only())
    async def list_pins(ctx: Context, limit: args.PinLimit = DEFAULT_PAGE,
                        name_contains: args.NameContains = "",
                        cursor: args.Cursor = None) -> Annotated[CallToolResult, PinList]:
        """Pinned content, newest first, a page at a time with the total."""
        with _calling(ctx, "list_pins") as state:
            return answers.answer(await content.list_pins(
                state.router, limit=limit, name_contains=name_contains, cursor=cursor,
                cursors=cursors))

    @_tool(mcp, title="Garbage-collect the repo", annotations=_writes(destructive=True))
    async def repo_gc(ctx: Context, confirm: Annotated[Confirmation, Resolve(_confirm_gc)]
                      = None) -> Annotated[CallToolResult, GCResult]:
        """Delete every block no pin reaches; reports what was freed. The user may be
        asked."""
        if no := _declined(confirm, "garbage-collect the repo"):
            return no
        with _calling(ctx, "repo_gc") as state:
            return answers.answer(await content.repo_gc(state.router))


def _fetch_result(result: FetchResult) -> CallToolResult:
    """The answer, plus a resource link when the bytes are too big to inline."""
    links: list[ResourceLink] = []
    if result.delivery == "resource_link":
        links.append(ResourceLink(type="resource_link", uri=result.resource_uri,
                                  name=result.cid, size=result.size,
                                  description=f"{result.size} bytes, CID {result.resolved_cid}"))
    return answers.answer(result, links, drop_nulls=True)


# -- resources --------------------------------------------------------------------------------
def _resource_error(exc: IpfsMcpError) -> ResourceError:
    return ResourceError(actionable(exc))


def _register_resources(mcp: MCPServer[ServerState], runtime: Runtime) -> None:
    @mcp.resource("ipfs-mcp://pins", name="cached-cids", title="Cached CIDs",
                  description=f"Pinned roots with name, size and pin type (newest "
                              f"{_MAX_PINS_RESOURCE})", mime_type="application/json")
    async def cached_cids() -> str:
        state = runtime.get()
        try:
            pins = await content.list_pins(state.router, limit=_MAX_PINS_RESOURCE)
        except IpfsMcpError as exc:
            raise _resource_error(exc) from exc
        return pins.model_dump_json()

    @mcp.resource("ipfs-mcp://health", name="node-health", title="Node health",
                  description="Backend in use and why, repo size and free disk, peers, DHT "
                              "state, uptime, allowed roots, our gateway, the trustless "
                              "gateways and delegated routers with their reputation, "
                              "recent errors",
                  mime_type="application/json")
    async def node_health() -> str:
        state = runtime.get()
        report = await health(state.router, state.network, node_status=state.node_status,
                              uptime_s=state.uptime, roots=state.roots,
                              recent_errors=list(state.errors), sources=state.sources,
                              gateways=state.gateways, served=state.served_gateway,
                              routers=state.routing, discovered=state.discovered,
                              p2p_network=state.settings.network)
        return report.model_dump_json()

    @mcp.resource("ipfs://{cid}", name="ipfs-content", title="IPFS content by CID",
                  description="The content when it is small UTF-8 text, otherwise JSON "
                              "metadata (kind, size, folder entries). Immutable: cacheable.")
    async def ipfs_content(cid: str, ctx: Context) -> str:
        return await _read_cid(_state(ctx), cid)

    @mcp.resource("ipfs://{cid}/{+path}", name="ipfs-path", title="A path inside a CID",
                  description="A file or folder inside a folder CID; as ipfs://{cid}")
    async def ipfs_path(cid: str, path: str, ctx: Context) -> str:
        return await _read_cid(_state(ctx), f"{cid}/{path}")

    @mcp.resource("ipns://{name}", name="ipns-content", title="Content by IPNS or DNSLink name",
                  description="What the name points at now, read as ipfs://{cid}")
    async def ipns_content(name: str, ctx: Context) -> str:
        return await _read_name(_state(ctx), name)

    @mcp.resource("ipns://{name}/{+path}", name="ipns-path", title="A path under a name",
                  description="A file or folder under a name; as ipns://{name}")
    async def ipns_path(name: str, path: str, ctx: Context) -> str:
        return await _read_name(_state(ctx), f"{name}/{path}")


async def _read_name(state: ServerState, name: str) -> str:
    try:
        found = await state.names.resolve_path(f"/ipns/{name}")
    except IpfsMcpError as exc:
        raise _resource_error(exc) from exc
    return await _read_cid(state, found.path.removeprefix("/ipfs/"))


async def _read_cid(state: ServerState, target: str) -> str:
    try:
        result = await content.fetch_cid(state.router, target, roots=state.roots,
                                         hub_cache=state.settings.backend.hf_hub_cache,
                                         max_inline=state.settings.inline_max)
    except IpfsMcpError as exc:
        raise _resource_error(exc) from exc
    if result.delivery == "text" and result.eof and result.kind == "file":
        return result.text or ""
    meta = result.model_dump(mode="json", exclude_none=True,
                             exclude={"text", "base64", "offset", "length", "eof"})
    if result.delivery in ("base64", "resource_link"):
        kind = "binary" if result.delivery == "base64" else "large"
        meta["hint"] = (f"{kind} content: read it with the fetch_cid tool, in pages with "
                        "offset/length or to disk with output_path")
    return json.dumps(meta)


# -- prompts ----------------------------------------------------------------------------------
def _register_prompts(mcp: MCPServer[ServerState]) -> None:
    @mcp.prompt(title="Share a model")
    def share_model(source: Annotated[str, Field(description=(
            "A cached HuggingFace model (org/name[@revision]) or a local folder"))]) -> str:
        """Store a model, pin and announce it, and hand out its CID with load instructions."""
        return prompt_texts.render("share_model", source=source)

    @mcp.prompt(title="Fetch and verify a CID")
    def fetch_and_verify(
        cid: Annotated[str, Field(description="The CID to fetch")],
        output_path: Annotated[str, Field(description="Where to write it (optional)")] = "",
    ) -> str:
        """Fetch a CID (locally or from peers), check what arrived, and pin it."""
        return prompt_texts.render("fetch_and_verify", cid=cid,
                                   output_path=output_path or "(not given: read it inline "
                                   "or ask the user for a folder inside the allowed roots)")

    @mcp.prompt(title="Diagnose connectivity or a missing CID")
    def diagnose(
        cid: Annotated[str, Field(description="A CID that cannot be fetched (optional)")] = "",
        peer: Annotated[str, Field(description="A peer multiaddr that should have it "
                                               "(optional)")] = "",
    ) -> str:
        """Work out why a CID cannot be fetched or peers cannot be reached."""
        return prompt_texts.render("diagnose", cid=cid or "(none given)",
                                   peer=peer or "(none given)")

    @mcp.prompt(title="Publish the latest version of a model")
    def publish_latest(
        source: Annotated[str, Field(description="A cached HuggingFace model or a folder")],
        key: Annotated[str, Field(description="The key whose name points at it")] = "self",
    ) -> str:
        """Store a model and point an IPNS name at it, so "the latest" is one name."""
        return prompt_texts.render("publish_latest", source=source, key=key)


# -- completions ------------------------------------------------------------------------------
_CID_ARGUMENTS = {"cid"}
_MAX_COMPLETIONS = 100


def _register_completions(mcp: MCPServer[ServerState], runtime: Runtime) -> None:
    @mcp.completion()
    async def complete(ref: Any, argument: Any, context: Any) -> Completion | None:
        if not isinstance(ref, PromptReference | ResourceTemplateReference):
            return None
        state = runtime.state
        if state is None:
            return None
        prefix = argument.value or ""
        if argument.name in _CID_ARGUMENTS:
            try:
                pins = await content.list_pins(state.router, limit=10_000)
            except BackendUnavailable:
                return None
            values = [p.cid for p in pins.pins if p.cid.startswith(prefix)]
        elif argument.name == "source":
            values = [m for m in _cached_models(state) if m.startswith(prefix)]
        else:
            return None
        return Completion(values=values[:_MAX_COMPLETIONS], total=len(values),
                          has_more=len(values) > _MAX_COMPLETIONS)


def _cached_models(state: ServerState) -> list[str]:
    """org/name of every model in the local hub cache (``models--org--name`` folders)."""
    hub = state.settings.backend.hf_hub_cache
    try:
        names = sorted(p.name for p in hub.iterdir() if p.name.startswith("models--"))
    except OSError:
        return []
    return [n[len("models--"):].replace("--", "/", 1) for n in names]


# -- pubsub ---------------------------------------------------------------------------------
async def _topics(state: ServerState) -> tuple[pubsub_tools.Topics | None, str]:
    """Our node's gossipsub, started on first use (Kubo keeps its own behind its flag)."""
    node = await state.slot.wait()  # a call right after start waits for the node
    if node is None:
        return None, f"the P2P node is {state.slot.status}"
    return await node.start_pubsub(), ""


def _register_pubsub(mcp: MCPServer[ServerState], runtime: Runtime,
                     bus: InMemorySubscriptionBus) -> None:
    """Publish and unsubscribe (a tool), subscribe (reading ``pubsub://{topic}``, then
    updated per message); one listener per node turns each message into a resource update."""
    heard: set[int] = set()

    async def updated(msg: Any) -> None:
        await bus.publish(ResourceUpdated(uri=pubsub_tools.topic_uri(msg.topic)))

    def said(result: BaseModel, text: str) -> CallToolResult:
        return CallToolResult(content=[TextContent(type="text", text=text)],
                              structured_content=result.model_dump(mode="json"))

    @_tool(mcp, title="PubSub publish", annotations=_writes(idempotent=False,
                                                             open_world=True))
    async def pubsub_publish(ctx: Context, topic: pubsub_tools.TopicArg,
                             text: pubsub_tools.MessageText = None,
                             data_base64: pubsub_tools.MessageBase64 = None,
                             leave: pubsub_tools.LeaveArg = False) -> CallToolResult:
        """Send text or base64 (max 1 MiB) on a topic; read pubsub://{topic} to
        subscribe."""
        with _calling(ctx, "pubsub_publish") as state:
            topics, why = await _topics(state)
            if leave:
                done = await pubsub_tools.unsubscribe(topics, topic, why=why)
                return said(done, f"Unsubscribed from {topic!r}")
            sent = await pubsub_tools.publish(topics, topic, text=text,
                                              data_base64=data_base64, why=why)
            return said(sent, f"Sent {sent.size:,} bytes on {topic!r} "
                              f"({sent.peers} subscribed peers known)")

    @mcp.resource("pubsub://{topic}", name="pubsub-topic", title="A PubSub topic's messages",
                  description="A topic's last messages (the first read subscribes; "
                              "percent-encode the topic); updated as messages arrive",
                  mime_type="application/json")
    async def pubsub_topic(topic: str) -> str:
        name = pubsub_tools.topic_of(topic)
        try:
            topics, why = await _topics(runtime.get())
            node = pubsub_tools.require(topics, why)
            await pubsub_tools.subscribe(node, name)  # the first read subscribes
            if id(node) not in heard:
                heard.add(id(node))
                node.add_listener(updated)
            return pubsub_tools.read(node, name).model_dump_json()
        except IpfsMcpError as exc:
            raise _resource_error(exc) from exc
