"""The one error tree of ipfs-mcp.

Every error the project raises on purpose derives from :class:`IpfsMcpError`, so callers
(the CLI, the MCP tools) can catch one root and turn it into a clear message. Foreign
errors (OS, HTTP, libp2p) are translated at the boundary with ``raise ... from exc``.

    IpfsMcpError
    ├── InvalidInput                (also ValueError)
    │   ├── InvalidCID
    │   ├── UnsafePath              a path escapes its root, or an entry name is unsafe
    │   ├── TooLarge                input over a configured cap
    │   │   ├── WriteTooLarge       a write's declared size over the free disk or limit
    │   │   ├── TooManyEntries      a write's files and folders over its budget or the inodes
    │   │   └── DagTooLarge         a DAG deeper or wider than backends/limits.py allows
    │   ├── TargetExists            a write would replace a file or non-empty folder
    │   └── DialRefused             an address outside the node's dial scope (not dialled)
    ├── NotFound                    (also FileNotFoundError)
    │   ├── BlockNotFound           carries the missing CID and where it looked
    │   │   └── BlockNotFoundAnywhere   every retrieval source missed; carries each failure
    │   └── PinNotFound
    ├── IntegrityError              bytes do not hash to their CID
    │   └── InvalidRecord           a signed record (IPNS) is forged, expired, oversized or not the name's
    ├── DiskFull                    the file system filled up mid-write (output removed)
    ├── StorageBudgetSpent          a store's bound is spent: refused before the fetch
    │   └── RepoFull                a fetch or add would not fit the bounded repo (--repo-max)
    ├── Unsupported                 the backend in use lacks this capability (names both)
    ├── BackendUnavailable          a backend cannot serve; says why and how to fix it
    │   └── DaemonUnreachable       its daemon or API does not answer at the address tried
    ├── NodeNotRunning              the P2P node is not running (says why, and how to start it)
    ├── AllBackendsFailed           every candidate failed; carries each failure
    ├── NetworkError                a peer or the network failed us
    │   ├── Timeout                 it did not answer within the bound (not "not found")
    │   ├── RelayError              a circuit relay refused, failed or spoke out of turn
    │   │   └── RelayLimitExceeded  content over a limited (relayed) connection's budget
    │   └── HolePunchError          a DCUtR exchange was malformed, refused or out of turn
    └── OperationCancelled          the caller cancelled a long operation (it cleaned up)
"""

from __future__ import annotations

from collections.abc import Mapping


class IpfsMcpError(Exception):
    """Root of every error that ipfs-mcp raises on purpose."""


class InvalidInput(IpfsMcpError, ValueError):
    """The caller passed something we cannot accept."""


class InvalidCID(InvalidInput):
    """A string or bytes value is not a CID we can use."""

    def __init__(self, value: object, reason: str) -> None:
        self.value = value
        self.reason = reason
        super().__init__(f"invalid CID {value!r}: {reason}")


class UnsafePath(InvalidInput):
    """A path lies outside the roots it must stay in, or an entry name is unsafe."""


class TooLarge(InvalidInput):
    """Input larger than a configured limit."""


class WriteTooLarge(TooLarge):
    """A write refused up front: its declared size is over the free disk or the write limit."""

    def __init__(self, what: str, declared: int, free: int, limit: int) -> None:
        self.declared = declared
        self.free = free
        self.limit = limit
        super().__init__(f"{what} declares {declared} bytes; the target has {free} bytes free "
                         f"and the write limit is {limit} bytes (--max-write-bytes / "
                         "IPFS_MCP_MAX_WRITE); nothing was written")


class TooManyEntries(TooLarge):
    """A write refused: it would create more files, folders and links than its budget or
    than the free inodes of the target."""

    def __init__(self, what: str, declared: int, budget: int, inodes: int | None) -> None:
        self.declared = declared
        self.budget = budget
        self.inodes = inodes
        free = "" if inodes is None else f" and the target has {inodes} free inodes"
        super().__init__(f"{what} would create {declared} files, folders and links; the "
                         f"budget of one write is {budget} (IPFS_MCP_MAX_WRITE_FILES){free}; "
                         "nothing was written")


class DagTooLarge(TooLarge):
    """A DAG is deeper, or a node or folder wider, than any real one (see limits.py)."""


class TargetExists(InvalidInput):
    """The output path is an existing file or non-empty folder, and overwrite was not asked."""


class DialRefused(InvalidInput):
    """An address outside the P2P node's dial scope, or one no scope dials (link-local,
    cloud metadata); refused before any dial."""


class NotFound(IpfsMcpError, FileNotFoundError):
    """Something asked for does not exist where we looked."""


class BlockNotFound(NotFound):
    """A block is not in the places that were searched."""

    def __init__(self, cid: object, where: str = "the local blockstore") -> None:
        self.cid = str(cid)
        self.where = where
        super().__init__(f"block {cid} not found in {where}")


class NameNotFound(NotFound):
    """No valid record (IPNS) or TXT record (DNSLink) was found for a name."""


class BlockNotFoundAnywhere(BlockNotFound):
    """Every retrieval source missed a block. ``errors`` maps each source to its own failure,
    each of its own type, as :class:`AllBackendsFailed` does for backends; a failure that is
    not a miss (a full disk, a cancel, a corrupt block) is raised itself instead."""

    def __init__(self, cid: object, errors: Mapping[str, BaseException]) -> None:
        self.errors = dict(errors)
        detail = "; ".join(f"{name}: {err}" for name, err in self.errors.items())
        super().__init__(cid, f"any retrieval source ({detail})")


class PinNotFound(NotFound):
    """Unpinning something that is not pinned."""


class IntegrityError(IpfsMcpError):
    """Bytes do not match the CID they were stored or sent under."""


class InvalidRecord(IntegrityError):
    """A signed record (IPNS) fails validation: its signature, its name, its validity or its size."""


class BackendUnavailable(IpfsMcpError):
    """A backend cannot be used; the message says why and what to do."""


class Unsupported(IpfsMcpError):
    """The backend in use cannot do this at all; another backend could."""

    def __init__(self, backend: str, capability: str, why: str = "") -> None:
        self.backend = backend
        self.capability = capability
        detail = f" ({why})" if why else ""
        super().__init__(f"{capability} is not supported by backend {backend}{detail}")


class DaemonUnreachable(BackendUnavailable):
    """A daemon (Kubo, a cluster) does not answer at the address that was tried."""


class NodeNotRunning(IpfsMcpError):
    """The P2P node is not running, so nothing can be asked of the network."""


class AllBackendsFailed(IpfsMcpError):
    """Every candidate (backend, provider) failed; ``errors`` maps each name to its failure."""

    def __init__(self, what: str, errors: Mapping[str, BaseException]) -> None:
        self.errors = dict(errors)
        detail = "; ".join(f"{name}: {err}" for name, err in self.errors.items()) or "none tried"
        super().__init__(f"{what} failed everywhere ({detail})")


class NetworkError(IpfsMcpError):
    """A peer or the network failed (timeouts, refused dials, protocol violations)."""


class Timeout(NetworkError):
    """A peer, daemon or lookup did not answer within its time bound."""


class RelayError(NetworkError):
    """A Circuit Relay v2 exchange failed: the relay (or the peer behind it) answered with a
    status other than OK (``status`` holds its name), sent a malformed or unexpected message,
    or could not be reached."""

    def __init__(self, message: str, status: str = "") -> None:
        self.status = status
        super().__init__(message)


class RelayLimitExceeded(RelayError):
    """What is wanted is larger than what a limited (relayed) connection may still carry,
    and no direct connection to the peer came up in time."""


class HolePunchError(NetworkError):
    """A hole punch (DCUtR) could not run: the peer sent a malformed, oversized or
    out-of-turn message, gave no address to dial, or no direct connection came of it."""


class DiskFull(IpfsMcpError):
    """The file system ran out of space (or quota) mid-write; the partial output was removed."""


class StorageBudgetSpent(IpfsMcpError):
    """A fetch refused up front: the store it would add to has used its bound (the
    recursive gateway's total), or the disk is down to its reserve."""


class RepoFull(StorageBudgetSpent):
    """A fetch or add refused before its first byte: its declared size would not fit under
    the repo's bound (``--repo-max``) even once every unpinned block not in use is evicted."""

    def __init__(self, what: str, needed: int, free: int, bound: int, used: int) -> None:
        self.needed = needed
        self.free = free
        self.bound = bound
        self.used = used
        super().__init__(f"{what or 'the content'} needs {needed} bytes in the repo; at most "
                         f"{free} can be made free (the repo holds {used} bytes, the rest "
                         f"pinned or being read, under its bound of {bound} bytes: "
                         "--repo-max / IPFS_MCP_REPO_MAX); nothing was fetched or written")


class OperationCancelled(IpfsMcpError):
    """A long operation stopped because its caller cancelled it; partial output was removed."""
