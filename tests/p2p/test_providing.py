"""Announcing walks the local DAG with the one bounded walker: a hostile DAG we hold (here,
a chain of dag-cbor blocks deeper than any real one) is refused with the bound it broke,
before a single record is put, instead of being walked without end."""

from __future__ import annotations

import os
from pathlib import Path

import dag_cbor
import pytest
import trio
from multiformats import CID

from ipfs_mcp.backends.core import limits
from ipfs_mcp.backends.core.cids import cid_of_block
from ipfs_mcp.backends.errors import DagTooLarge

from .nodes import add_bytes, node_at, repo_at

pytestmark = pytest.mark.anyio


def chain(path: Path, length: int) -> CID:
    """``length`` dag-cbor blocks, each linking to the next; the head's CID."""
    blocks = repo_at(path).blocks
    link: CID | None = None
    for n in range(length):
        data = dag_cbor.encode({"n": n} if link is None else {"n": n, "next": link})
        link = cid_of_block(data, codec="dag-cbor")
        blocks.put(link, data)
    assert link is not None
    return link


async def test_announcing_a_dag_deeper_than_the_bound_is_refused(tmp_path: Path) -> None:
    head = chain(tmp_path / "n", limits.MAX_DAG_DEPTH + 2)
    file_root = add_bytes(repo_at(tmp_path / "n"), os.urandom(600_000))  # three leaves, a root
    with trio.fail_after(60):
        async with node_at(tmp_path / "n") as node:
            with pytest.raises(DagTooLarge, match="levels deep"):
                await node.announce_content(head, recursive=True)
            # The same walk over a real DAG lists every block once.
            assert node.providing.local_dag(file_root)[0] == file_root
            assert len(node.providing.local_dag(file_root)) == 4
