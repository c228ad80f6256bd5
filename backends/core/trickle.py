"""The trickle file layout (``ipfs add --trickle``), node for node as boxo builds it.

boxo's ``ipld/unixfs/importer/trickle/trickledag.go`` (Kubo 0.43):

* every node, the root included, first takes up to ``max_links`` leaves directly;
* then, for depth 1, 2, ... (below the node's own depth limit; unlimited for the root), it
  takes up to ``depthRepeat`` (4) children, each a trickle subtree of that depth;
* so even a one-chunk file gets a root node above its leaf, and an empty file is a root
  without links.

Leaves and parents are made by the importer (the layout only decides the shape), so the
same code serves raw and dag-pb leaves and every CID version. Recursion depth grows with
the logarithm (base 4) of the file's leaf count, a few dozen levels for any real file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

DEPTH_REPEAT = 4  # boxo trickle: depthRepeat

N = TypeVar("N")
N_co = TypeVar("N_co", covariant=True)  # a LeafSource only hands its nodes out


class LeafSource(Protocol[N_co]):
    """The file's leaves in order, made one chunk at a time."""

    def done(self) -> bool: ...

    def next_leaf(self) -> N_co: ...


def layout(source: LeafSource[N], max_links: int, parent: Callable[[list[N]], N]) -> N:
    """The root of the trickle DAG over all leaves of ``source``.

    ``parent(children)`` makes (and stores) a file node over ``children``.
    """
    return _fill(source, max_links, parent, None)


def _fill(source: LeafSource[N], max_links: int, parent: Callable[[list[N]], N],
          max_depth: int | None) -> N:
    """boxo ``fillTrickleRec``: a node's leaves, then its subtrees of growing depth."""
    children: list[N] = []
    while len(children) < max_links and not source.done():
        children.append(source.next_leaf())
    depth = 1
    while (max_depth is None or depth < max_depth) and not source.done():
        for _ in range(DEPTH_REPEAT):
            if source.done():
                break
            children.append(_fill(source, max_links, parent, depth))
        depth += 1
    return parent(children)
