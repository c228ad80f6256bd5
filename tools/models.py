"""The results of the tools, as pydantic models.

The MCP server publishes each model as the tool's ``outputSchema`` and returns an instance
as ``structuredContent``, so agents get typed fields instead of prose to parse. Sizes are
bytes, times are Unix seconds, CIDs are strings in Kubo's spelling (base58btc for v0,
base32 for v1). Lists that could grow without bound carry ``truncated``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

EntryKind = Literal["file", "directory", "symlink"]


class FileEntry(BaseModel):
    path: str = Field(description="Path inside the added content ('' for the root itself)")
    cid: str
    size: int = Field(description="File bytes (0 for folders and symlinks)")
    kind: EntryKind


class StoreResult(BaseModel):
    source: str = Field(description="What was stored, as given")
    root_cid: str = Field(description="The CID Kubo would give for the same content and options")
    total_size: int = Field(description="Sum of the file sizes")
    file_count: int
    files: list[FileEntry] = Field(description="Added files and folders (bounded, see truncated)")
    truncated: bool = Field(False, description="True when files lists only the first entries")
    total: int | None = Field(None, description="Entries in the whole file list")
    cursor: str | None = Field(None, description="Pass to ls (cid=root_cid) for the next page")
    pinned: bool
    announced: bool
    announce_note: str = Field("", description="Why the content was not announced, if it was not")
    backend: str = Field(description="The storage backend that holds the content")
    resource_uri: str = Field(description="ipfs:// URI of the root, readable as an MCP resource")
    nocopy: bool = Field(False, description=(
        "True: the files' leaves are kept as references into the files (nothing copied; "
        "reads re-check them); false: the bytes were copied into the repo"))


class FetchResult(BaseModel):
    cid: str = Field(description="The CID (with sub-path) that was asked for")
    resolved_cid: str = Field(description="The CID the sub-path resolved to")
    kind: EntryKind
    size: int = Field(description="Total file size (0 for folders)")
    delivery: Literal["text", "base64", "resource_link", "file", "hf_cache", "listing"] = Field(
        description="How the content was delivered: inline text or base64, a resource link "
                    "for content too large to inline, written to disk, written into the "
                    "HuggingFace cache, or a folder listing")
    offset: int = 0
    length: int = Field(0, description="Bytes returned inline (text/base64), else 0")
    eof: bool = Field(True, description="Whether the inline bytes reach the end of the file")
    text: str | None = None
    base64: str | None = None
    entries: list[LsEntry] | None = Field(None, description="Folder entries (delivery=listing)")
    total: int | None = Field(None, description="Entries in the folder, when known")
    cursor: str | None = Field(None, description="Pass back as cursor for the next page")
    output_path: str | None = None
    hf_repo_id: str | None = None
    hf_revision: str | None = None
    hf_commit: str | None = None
    hf_snapshot: str | None = None
    files_written: int | None = None
    nocopy: bool | None = Field(None, description=(
        "into_hf_cache: True when every file was written once, as it arrived, its leaves "
        "kept as references (no copy in the IPFS repo); False when some were copied"))
    copied: list[str] | None = Field(None, description=(
        "into_hf_cache: the files copied instead, each with why (e.g. dag-pb leaves)"))
    resumed_leaves: int | None = Field(None, description=(
        "into_hf_cache: leaves an earlier, interrupted fetch had written already"))
    replaced: str | None = Field(None, description=(
        "What the write replaced: the existing path (overwrite=true), or the commit the "
        "revision pointed to before (replace=true)"))
    resource_uri: str
    verified: bool = Field(True, description="Every block was checked against its hash")
    answered_by: str | None = Field(None, description=(
        "The backend that answered (another one when the selected backend failed the read)"))
    fetched_from: str | None = Field(None, description=(
        "The retrieval source(s) that fetched what was not here (p2p, trustless-gateway, "
        "delegated-routing); None: every block was here"))
    gateway_url: str | None = Field(None, description=(
        "Where a client can download the bytes over HTTP (this node's gateway), so they "
        "need not pass through the model's context"))
    hint: str = ""


class LsEntry(BaseModel):
    name: str
    cid: str
    kind: EntryKind
    size: int


class LsResult(BaseModel):
    cid: str
    resolved_cid: str
    kind: EntryKind
    entries: list[LsEntry]
    total: int | None = Field(description=(
        "Number of entries in the folder; None when a sharded folder's listing stopped at "
        "the page (only the page's work is done)"))
    truncated: bool = False
    next_offset: int | None = Field(None, description=(
        "Pass as offset to list the entries after this page; None at the end"))
    cursor: str | None = Field(None, description="Pass back as cursor for the next page")


class AddResult(BaseModel):
    cid: str
    kind: EntryKind
    size: int
    pinned: bool
    name: str = ""
    file_count: int = 1
    backend: str
    resource_uri: str
    nocopy: bool = Field(False, description="True: kept as references into the files, "
                                            "not copied")


class PinResult(BaseModel):
    cid: str
    pinned: bool
    recursive: bool
    size: int | None = Field(None, description="Bytes of the blocks the pin holds")


class UnpinResult(BaseModel):
    cid: str
    removed: list[Literal["recursive", "direct"]]
    note: str = "Blocks stay on disk until repo_gc runs."


class PinInfo(BaseModel):
    cid: str
    type: Literal["recursive", "direct"]
    name: str = ""
    size: int | None = None
    created: float = 0.0


class PinList(BaseModel):
    pins: list[PinInfo]
    total: int
    truncated: bool = False
    cursor: str | None = Field(None, description="Pass back as cursor for the next page")


class GCResult(BaseModel):
    removed_blocks: int
    freed_bytes: int
    kept_blocks: int
    missing_pinned: list[str] = Field(
        default_factory=list, description="Pinned roots whose blocks are absent (a warning)")


class Provider(BaseModel):
    peer_id: str
    addrs: list[str]
    score: float | None = Field(None, description="Reputation in [0, 1]; 0.3 for a stranger")
    latency_ms: float | None = Field(None, description="Mean block latency seen from this "
                                                       "peer, when it has served us")
    connected: bool = False
    last_seen: float | None = Field(None, description="Not tracked yet: always null")
    is_self: bool = False


class ProvidersResult(BaseModel):
    cid: str
    providers: list[Provider]
    count: int


class PeerInfo(BaseModel):
    peer_id: str
    addrs: list[str] = Field(default_factory=list)
    agent: str | None = None
    connected: bool = False
    bitswap_protocol: str | None = None
    latency_ms: float | None = None
    blocks_sent: int | None = None
    blocks_received: int | None = None
    bytes_sent: int | None = None
    bytes_received: int | None = None
    bad_blocks: int | None = None
    score: float | None = None
    successes: int | None = Field(None, description="As a provider to us: blocks delivered")
    failures: int | None = None
    success_rate: float | None = None


class NetworkStats(BaseModel):
    """What the node reports of itself; a field it does not report is null."""

    node: str = Field(description="Which node answered: our P2P node, or the Kubo daemon "
                                  "that is the backend")
    peer_id: str
    listen_addrs: list[str]
    role: str | None = None
    dht_mode: str | None = None
    connected_peers: int
    peers: list[PeerInfo]
    routing_table_size: int | None = None
    reachability: str | None = Field(None, description="AutoNAT: public, private or unknown "
                                     "(whether peers could dial this node back)")
    bandwidth_in: int | None = Field(None, description="Bytes received since start")
    bandwidth_out: int | None = Field(None, description="Bytes sent since start")
    ledger_blocks_sent: int | None = None
    ledger_blocks_received: int | None = None
    network_fetches: int | None = Field(None, description="Retrievals that needed the "
                                                          "network")
    network_fetches_ok: int | None = None
    network_fetches_failed: int | None = None
    providers_found: int | None = None
    failed_discoveries: int | None = None
    success_rate: float | None = None
    average_retrieval_ms: float | None = None
    bytes_retrieved: int | None = Field(None, description="Block bytes from the network")
    bandwidth_rate_in: float | None = Field(None, description="Bytes/s, recent")
    bandwidth_rate_out: float | None = None
    relay_reservations: int | None = Field(None, description="Relay slots held for peers "
                                           "behind NAT (null: this node does not relay)")
    relay_circuits: int | None = Field(None, description="Connections relayed now")


class CacheCounters(BaseModel):
    hits: int
    misses: int
    fetched: int = Field(description="Blocks fetched from peers after a local miss")


class PeerStatsResult(BaseModel):
    backend: str
    cache: CacheCounters | None = None
    tiers: RepoTiers | None = None
    network: NetworkStats | None = None
    network_status: str = Field(description="'running', or why the node is not running")


class ConnectResult(BaseModel):
    peer_id: str
    addrs: list[str]
    connected: bool


class AnnounceResult(BaseModel):
    cid: str
    announced: bool
    records: int = Field(description="Provider records published (the root, or every block)")
    scope: str = Field(description="Where the provider record went")


class BackendChoice(BaseModel):
    backend: str
    reason: str
    skipped: dict[str, str]


class RepoIntegrity(BaseModel):
    status: Literal["ok", "damaged", "unverified"] = Field(
        description="damaged: blocks are set aside as corrupt, or the last verify failed")
    quarantined: int = Field(description="Blocks set aside as corrupt, counted now")
    last_verify_at: float | None = Field(None, description="When `repo verify` last finished")
    last_verify_ok: bool | None = None
    missing_blocks: int | None = Field(None, description="Blocks pins lacked at the last verify")
    summary: str


class RepoTiers(BaseModel):
    """The embedded repo's tiers: its bounded disk and the memory tier of hot blocks."""

    disk_bytes: int | None = Field(None, description="Bytes of blocks on disk (bounded repo)")
    disk_max: int | None = Field(None, description="--repo-max; None: unbounded")
    watermark: float | None = Field(None, description="Share of the bound where eviction starts")
    memory_bytes: int | None = Field(None, description="Bytes of hot blocks held in memory")
    memory_max: int | None = None
    memory_hits: int | None = None
    memory_misses: int | None = None
    memory_hit_rate: float | None = None
    evicted_blocks: int = 0
    evicted_bytes: int = 0
    refused: int = Field(0, description="Fetches and adds refused: they could not fit")


class RepoInfo(BaseModel):
    path: str
    blocks: int
    size: int
    pins: int
    free_disk: int
    integrity: RepoIntegrity | None = None
    tiers: RepoTiers | None = None


class BackendStatus(BaseModel):
    name: str
    ok: bool
    detail: str = Field(description="What the probe saw, or why the backend cannot be used")


class GatewayStatus(BaseModel):
    """A trustless gateway this node fetches from, as its reputation stands."""

    url: str
    score: float = Field(description="Reputation, 0..1; 0.3 before any exchange")
    successes: int
    failures: int
    bad_blocks: int = Field(description="Blocks it sent that did not match their CID")
    dropped: bool = Field(description="Never asked again: it sent wrong bytes")
    found_via: Literal["configured", "delegated-routing"] = Field(
        "configured", description="Given with --trustless-gateway, or named by a "
                                  "delegated router as a provider")


class RouterStatus(BaseModel):
    """A delegated router (``/routing/v1``) this node asks, as its reputation stands."""

    url: str
    score: float = Field(description="Reputation, 0..1; 0.3 before any exchange")
    successes: int = Field(description="Answers received (empty ones included)")
    failures: int
    consecutive_failures: int
    last_error: str | None = None


class ServedGateway(BaseModel):
    """This node's own HTTP gateway (``--gateway``)."""

    enabled: bool
    url: str | None = Field(None, description="Where it is served (port resolved)")
    recursive: bool = Field(False, description="Fetches what is not here (--gateway-"
                                               "recursive); else only local blocks")


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    backend: BackendChoice
    backends: list[BackendStatus] = Field(
        default_factory=list, description="Every known backend, probed now")
    repo: RepoInfo | None = None
    network_status: str
    p2p_network: str | None = Field(None, description="The network the P2P node joins: "
                                                      "local (this machine) or public")
    peers: int | None = Field(None, description="Connected peers")
    routing_table_size: int | None = None
    dht_mode: str | None = None
    reprovided: int | None = Field(None, description="CIDs announced from the pins since "
                                                     "the node started (role's policy)")
    relay_reservations: int | None = Field(None, description="Relay slots held for peers "
                                           "behind NAT (null: this node does not relay)")
    relay_circuits: int | None = Field(None, description="Connections relayed now")
    uptime_s: float
    cache: CacheCounters | None = None
    allowed_roots: list[str]
    retrieval_sources: list[str] = Field(
        default_factory=list, description="Asked together on a local miss")
    gateway: ServedGateway = Field(default_factory=lambda: ServedGateway(enabled=False))
    gateways: list[GatewayStatus] = Field(default_factory=list)
    delegated_routers: list[RouterStatus] = Field(default_factory=list)
    recent_errors: list[str]


FetchResult.model_rebuild()
