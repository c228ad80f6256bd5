"""Links between blocks, for the codecs we can walk: dag-pb, raw and dag-cbor."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any, Generic, TypeVar, overload

from multiformats import CID

from ipfs_mcp.backends.core import cbor, dagpb, limits
from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.errors import DagTooLarge, IntegrityError

_DAG_PB = 0x70
_RAW = 0x55
_DAG_CBOR = 0x71


def links_of(cid: CID, block: bytes) -> list[CID]:
    """The CIDs a block links to, in order.

    Raises:
        IntegrityError: the block is not valid for its codec, or the codec is unknown.
    """
    code = cid.codec.code
    if code == _RAW:
        return []
    if code == _DAG_PB:
        return [link.cid for link in dagpb.decode(block).links]
    if code == _DAG_CBOR:
        return list(_cbor_links(cbor.decode(block, f"dag-cbor block {cid_str(cid)}")))
    raise IntegrityError(f"cannot follow links of codec {cid.codec.name} ({cid})")


def _cbor_links(value: object) -> Iterator[CID]:
    """Every CID inside a decoded dag-cbor value, in order, without recursion (the decoder
    bounds nesting, but a deep value must not cost a Python frame per level here)."""
    stack: list[object] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, CID):
            yield item
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))


# -- the one walker -------------------------------------------------------------------------
# Every walk over blocks that came from outside (pin, GC mark, verify, CAR export, the
# gateway's CAR scopes, fetches, file and folder layouts) goes through :class:`Walker`, so
# the bounds of :mod:`.limits` hold for all of them by construction, as boxo's
# ``merkledag.Walk`` and Helia's exporter keep theirs in the walker and not in the callers.

T = TypeVar("T")
Load = Callable[[CID], bytes | None]  # None: a hole the caller tolerates (visited, unread)
Present = Callable[[CID], bool]


@dataclass(frozen=True, slots=True)
class Node(Generic[T]):
    """One visit: the block (None when it was not read: a raw leaf ``present`` vouched for,
    or a hole the loader tolerated), its depth below the root, and the context its parent
    gave it (an offset, a path, a pin name: whatever the visitor needs)."""

    cid: CID
    block: bytes | None
    depth: int
    context: T


# What to walk next below a node, in order, each with the context its visit will see.
Follow = Callable[[Node[T]], Iterable[tuple[CID, T]]]


class Walker(Generic[T]):
    """The stack, the seen-set and the bounds of one depth-first, pre-order walk.

    :func:`walk_nodes` drives it one block at a time; a driver that loads blocks its own way
    (several requests in flight, an async session) calls :meth:`pop`, :meth:`check_block`
    and :meth:`push` itself and gets the same bounds.

    Args:
        root: where the walk starts (at depth 0).
        context: the root's context.
        seen: the multihashes already visited, shared with the caller (default: a fresh set).
        dedupe: False visits a block each time a link reaches it (a CAR with duplicates,
            a folder tree written out); ``seen`` is then unused.
        what: how errors name the walk ("DAG", "file", "folder").
        entries: count folder entries (``MAX_TREE_ENTRIES`` per walk, ``MAX_DIR_ENTRIES``
            children a node) rather than blocks (``MAX_WALK_BLOCKS``, ``MAX_LINKS_PER_NODE``).
        max_nodes: a lower bound on visits than the default one.
    """

    __slots__ = ("root", "seen", "dedupe", "what", "entries", "max_nodes", "visited",
                 "_stack")

    def __init__(self, root: CID, context: T = None, *,  # type: ignore[assignment]
                 seen: set[bytes] | None = None, dedupe: bool = True, what: str = "DAG",
                 entries: bool = False, max_nodes: int | None = None) -> None:
        self.root = root
        self.seen: set[bytes] = set() if seen is None else seen
        self.dedupe = dedupe
        self.what = what
        self.entries = entries
        # Read at each walk, not at import: the bounds are module attributes tests lower.
        default = limits.MAX_TREE_ENTRIES if entries else limits.MAX_WALK_BLOCKS
        self.max_nodes = default if max_nodes is None else max_nodes
        self.visited = 0
        self._stack: list[tuple[CID, int, T]] = [(root, 0, context)]

    def pop(self) -> tuple[CID, int, T] | None:
        """The next node to visit (cid, depth, context), or None when the walk is done.

        A block already seen is skipped; the one returned is counted and marked seen.

        Raises:
            DagTooLarge: deeper than ``MAX_DAG_DEPTH`` or more nodes than the walk may visit.
        """
        stack, seen = self._stack, self.seen
        while stack:
            cid, depth, context = frame = stack.pop()
            if self.dedupe:
                key = bytes(cid.digest)
                if key in seen:
                    continue
                seen.add(key)
            limits.check_depth(depth, self.what, self.root)
            self.visited += 1
            if self.visited > self.max_nodes:
                unit = "entries in its tree" if self.entries else "blocks"
                raise DagTooLarge(f"{self.what} {cid_str(self.root)} has more than "
                                  f"{self.max_nodes} {unit}")
            return frame
        return None

    def check_block(self, cid: CID, block: bytes) -> bytes:
        """``block``, once it is known to be within ``MAX_BLOCK_SIZE``.

        Raises:
            DagTooLarge: the block is larger.
        """
        if len(block) > limits.MAX_BLOCK_SIZE:
            raise DagTooLarge(f"block {cid_str(cid)} is {len(block)} bytes, over the bound of "
                              f"{limits.MAX_BLOCK_SIZE}")
        return block

    def push(self, cid: CID, depth: int, children: Iterable[tuple[CID, T]]) -> None:
        """Queue the children of the node ``cid`` (at ``depth``), to be visited in order.

        Raises:
            DagTooLarge: more children than one node may have.
        """
        if self.entries:
            bound = limits.MAX_DIR_ENTRIES
            kids = list(islice(children, bound + 1))
            if len(kids) > bound:
                raise DagTooLarge(f"folder {cid_str(cid)} has more than {bound} entries")
        else:
            kids = children if isinstance(children, list) else list(
                islice(children, limits.MAX_LINKS_PER_NODE + 1))
            limits.check_links(len(kids), cid)
        self._stack.extend((child, depth + 1, context) for child, context in reversed(kids))

    def pending(self) -> list[CID]:
        """The nodes still queued, in the order the walk would visit them (some may be
        skipped then as seen): what is left when a driver stops part-way."""
        return [cid for cid, _, _ in reversed(self._stack)]


def follow_links(node: Node[T]) -> list[tuple[CID, T]]:
    """Every link of the block (none for a block not read), each with the node's context.

    Raises:
        IntegrityError: the block is not valid for its codec, or the codec is unknown.
    """
    if node.block is None:
        return []
    context = node.context
    return [(link, context) for link in links_of(node.cid, node.block)]


def walk_nodes(root: CID, load: Load, follow: Follow[T] = follow_links,
               context: T = None, *,  # type: ignore[assignment]
               present: Present | None = None, seen: set[bytes] | None = None,
               dedupe: bool = True, what: str = "DAG", entries: bool = False,
               max_nodes: int | None = None) -> Iterator[Node[T]]:
    """Depth-first, pre-order walk from ``root``, one :class:`Node` per visit.

    ``load`` gives a block (verified) or None for a hole the caller tolerates. A raw leaf
    that ``present`` says is stored is visited without being read. Once the caller has seen
    a node, ``follow(node)`` names what to visit below it (by default every link; a visitor
    prunes, or carries offsets or paths in the context). The other arguments are
    :class:`Walker`'s. Iterative, so a deep or wide DAG cannot exhaust the Python stack.

    Raises:
        DagTooLarge: a bound of :mod:`.limits` is exceeded (the error names it).
        Whatever ``load`` and ``follow`` raise.
    """
    walker: Walker[T] = Walker(root, context, seen=seen, dedupe=dedupe, what=what,
                               entries=entries, max_nodes=max_nodes)
    while (frame := walker.pop()) is not None:
        cid, depth, ctx = frame
        if present is not None and cid.codec.code == _RAW and present(cid):
            block = None
        else:
            block = load(cid)
            if block is not None:
                walker.check_block(cid, block)
        node = Node(cid, block, depth, ctx)
        yield node
        walker.push(cid, depth, follow(node))


def visit_nodes(root: CID, load: Load, visitor: Follow[T],
                context: T = None, **options: Any) -> None:  # type: ignore[assignment]
    """:func:`walk_nodes` for a visitor that does its work in ``visitor(node)`` and returns
    what to visit next; ``options`` are :func:`walk_nodes`' keywords.

    Raises:
        DagTooLarge: a bound of :mod:`.limits` is exceeded.
        Whatever ``load`` and ``visitor`` raise.
    """
    for _ in walk_nodes(root, load, visitor, context, **options):
        pass


@overload
def walk(root: CID, load: Callable[[CID], bytes], *, seen: set[bytes] | None = None,
         dedupe: bool = True, present: None = None) -> Iterator[tuple[CID, bytes]]: ...
@overload
def walk(root: CID, load: Load, *, seen: set[bytes] | None = None, dedupe: bool = True,
         present: Present | None = None) -> Iterator[tuple[CID, bytes | None]]: ...
def walk(root: CID, load: Load, *, seen: set[bytes] | None = None, dedupe: bool = True,
         present: Present | None = None) -> Iterator[tuple[CID, bytes | None]]:
    """Every block of a DAG, depth-first, pre-order (the order of ``ipfs dag export``).

    Each block is yielded once, keyed by multihash (``seen`` may be shared between walks),
    or each time a link reaches it with ``dedupe=False``. ``load`` fetches (and verifies) a
    block; a raw leaf that ``present`` says is stored is yielded as None, unread. Bounded
    by :mod:`.limits`: depth, links per node, block size and blocks per walk.

    Raises:
        DagTooLarge: the DAG exceeds one of those bounds (the error names it).
    """
    for node in walk_nodes(root, load, follow_links, None, present=present, seen=seen,
                           dedupe=dedupe):
        yield node.cid, node.block
