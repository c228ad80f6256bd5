"""Bounds on what a DAG, a block or a write may demand, shared by every walker and writer.

Blocks come from outside (peers, gateways, daemons, CARs), so every walk over them is bounded
in depth, width and count, and every write to disk is checked against its declared size, the
free disk and a limit before the first byte. Each value sits far above what Kubo (or any real
data) produces, so only a hostile DAG ever meets one; the error then names the bound.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from multiformats import CID

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.errors import DagTooLarge, TooManyEntries, WriteTooLarge

# -- blocks ---------------------------------------------------------------------------------
# A bitswap message is capped at 4 MiB, so no peer can send a larger block (our bitswap
# serves and accepts at most 2 MiB, as boxo does), and Kubo refuses to make blocks over 1 MiB
# without --allow-big-block. A CAR or daemon may still carry one up to 4 MiB; beyond that
# a block is hostile.
MAX_BLOCK_SIZE = 4 * 1024 * 1024
# A CAR section is one CID (well under 128 bytes for any multihash we verify) plus a block.
MAX_CAR_SECTION = MAX_BLOCK_SIZE + 128
# A CAR header only lists roots; 1 MiB holds tens of thousands of CIDs.
MAX_CAR_HEADER = 1024 * 1024
# `ipfs dag export` writes one root; multi-root CARs from other tools have a handful. Each
# root is pinned and walked on import, so the count is bounded too.
MAX_CAR_ROOTS = 1024

# -- DAG shape ------------------------------------------------------------------------------
# Kubo's balanced file layout is at most ~8 levels deep for 2^64 bytes (174 links a node)
# and its trickle layout a few dozen; a folder tree is bounded by PATH_MAX (4096 bytes, so at
# most 2048 nested "a/" levels). 4096 leaves a wide margin and keeps every walk's stack small.
MAX_DAG_DEPTH = 4096
# A dag-pb link takes at least ~40 bytes, so a block under MAX_BLOCK_SIZE holds ~100k links;
# Kubo shards folders past 256 KiB of links (a few thousand) and files use 174 a node.
MAX_LINKS_PER_NODE = 1 << 17
# One folder (plain or HAMT-sharded, all shards together). The largest published folders
# (Wikipedia mirrors) reach tens of millions only as HAMTs read one entry at a time; a list
# or a write of one folder beyond a million entries is not something an agent asks for.
MAX_DIR_ENTRIES = 1 << 20
# Entries one listing (the ``ls`` tool, a folder fetched inline) examines when its caller
# sets no smaller limit: each costs a block read (its kind and size), and a HAMT folder of
# a million entries must not cost a million reads to show a page. The answer says it was cut.
MAX_LISTED_ENTRIES = 10_000
# Entries (files, folders, symlinks) visited while sizing or writing one tree: the same
# million, so a folder DAG that links one sub-folder many times cannot fan out without end.
MAX_TREE_ENTRIES = 1 << 20
# Blocks one walk (pin, GC mark, CAR export, verify of a DAG) may visit. Deduplicated walks
# only see each block once; 2^26 blocks of 256 KiB is 16 TiB, beyond any single pin.
MAX_WALK_BLOCKS = 1 << 26

# -- writes ---------------------------------------------------------------------------------
# Without a configured limit a write may take 90% of the free space: the rest stays for the
# repo (blocks fetched for the write land there too), logs and the rest of the system, so a
# hostile DAG cannot fill a disk even when it declares a size that fits.
DEFAULT_WRITE_SHARE = 0.9
# Files, folders and links one write may create. Bytes alone do not bound a write: three
# small blocks of folders that link one sub-folder many times declare a million tiny files
# (minutes of work, an inode each, the server's memory growing all the while). Real models
# and datasets hold thousands of files; a larger tree can be allowed through the settings
# (IPFS_MCP_MAX_WRITE_FILES).
DEFAULT_MAX_WRITE_ENTRIES = 100_000


# Walks check every node, and a CID's text costs tens of microseconds (base58 for CIDv0):
# the checks take the CID itself and make its text only for the error.
def check_depth(depth: int, what: str, cid: CID | None = None) -> None:
    """Raises DagTooLarge when a walk goes deeper than MAX_DAG_DEPTH; the error names
    ``what`` (and ``cid``, when given)."""
    if depth > MAX_DAG_DEPTH:
        label = what if cid is None else f"{what} {cid_str(cid)}"
        raise DagTooLarge(f"{label} is more than {MAX_DAG_DEPTH} levels deep; no real DAG is "
                          "(a hostile or broken DAG?)")


def check_links(count: int, node: CID) -> None:
    """Raises DagTooLarge when one node has more than MAX_LINKS_PER_NODE links."""
    if count > MAX_LINKS_PER_NODE:
        raise DagTooLarge(f"{cid_str(node)} has {count} links, over the bound of "
                          f"{MAX_LINKS_PER_NODE}")


def free_bytes(target: Path) -> int:
    """Free bytes (for an unprivileged writer) on the file system that will hold ``target``."""
    probe = Path(target).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def allocated_bytes(folder: Path) -> int:
    """Bytes a tree takes on disk (allocated blocks, not apparent sizes; symlinks not
    followed): what a sparse or referenced file really costs."""
    total = 0
    for base, _, names in os.walk(folder):
        for name in names:
            total += os.lstat(os.path.join(base, name)).st_blocks * 512
    return total


def write_limit(free: int, max_bytes: int | None) -> int:
    """The effective limit: ``max_bytes`` when configured, else DEFAULT_WRITE_SHARE of free."""
    if max_bytes is not None:
        return max_bytes
    return int(free * DEFAULT_WRITE_SHARE)


def check_write(what: str, declared: int, target: Path, max_bytes: int | None) -> int:
    """Refuse a write whose declared size does not fit; returns the limit that applies.

    Raises:
        WriteTooLarge: ``declared`` is over the free disk at ``target`` or over the limit.
    """
    free = free_bytes(target)
    limit = write_limit(free, max_bytes)
    if declared > free or declared > limit:
        raise WriteTooLarge(what, declared, free, limit)
    return limit


def free_inodes(target: Path) -> int | None:
    """Inodes an unprivileged writer may still create on the file system that will hold
    ``target``; None when the file system does not count them (``f_files`` is 0)."""
    probe = Path(target).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    st = os.statvfs(probe)
    return st.f_favail if st.f_files else None


def check_entries(what: str, declared: int, target: Path, max_entries: int | None) -> int:
    """Refuse a write that would create more files, folders and links than its budget
    (``max_entries``, else DEFAULT_MAX_WRITE_ENTRIES) or than the target's free inodes;
    returns the budget that applies.

    Raises:
        TooManyEntries: it would.
    """
    budget = DEFAULT_MAX_WRITE_ENTRIES if max_entries is None else max_entries
    inodes = free_inodes(target)
    if declared > budget or (inodes is not None and declared > inodes):
        raise TooManyEntries(what, declared, budget, inodes)
    return budget


def parse_max_write(value: str | None, name: str = "IPFS_MCP_MAX_WRITE") -> int | None:
    """A byte count from the environment or command line (``0`` or empty: the default).

    Plain bytes or with a binary suffix (``512M``, ``20G``, ``1T``).

    Raises:
        ValueError: not a whole, non-negative number of bytes.
    """
    text = (value or "").strip().upper().removesuffix("B").removesuffix("I")
    if not text:
        return None
    scale = 1
    for suffix, factor in (("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30), ("T", 1 << 40)):
        if text.endswith(suffix):
            text, scale = text[:-1], factor
            break
    if not text.isdigit():
        raise ValueError(f"{name}={value!r} is not a number of bytes (e.g. 500000000 or 20G)")
    number = int(text) * scale
    return number or None

