"""Trustless gateways as a retrieval source, over real HTTP on 127.0.0.1.

The gateways here are tiny HTTP servers of the test's own, serving blocks the test chose:
an honest one, and deliberately lying ones (flipped bytes, oversized answers, 429s); the
test names say which. A real gateway (ours, Kubo's) is in tests/interop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from multiformats import CID

from ipfs_mcp.backends.core import limits
from ipfs_mcp.backends.core.cids import cid_of_block, cid_str, parse_cid
from ipfs_mcp.backends.core.dagpb import encode_link, encode_node
from ipfs_mcp.backends.core.importer import Importer, ImportOptions
from ipfs_mcp.backends.errors import BlockNotFound, DagTooLarge, OperationCancelled
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.backends.retrieval.sources import NamedSource, RetrievalSources
from ipfs_mcp.backends.retrieval.trustless_gateway import MAX_GATEWAY_BLOCK, TrustlessGateways

Answer = Callable[[str, bytes], tuple[int, dict[str, str], bytes]]


class _Blocks:
    """A blockstore-shaped dict that only collects blocks (the source DAG)."""

    def __init__(self) -> None:
        self.blocks: dict[str, bytes] = {}

    def put_block(self, cid: bytes, data: bytes) -> None:
        self.blocks[cid_str(CID.decode(cid))] = data


def make_dag(size: int) -> tuple[CID, dict[str, bytes], bytes]:
    data = bytes((i * 7 + 3) % 251 for i in range(size))
    sink = _Blocks()
    node = Importer(sink, ImportOptions(chunk_size=4096)).add_bytes(data)
    return node.cid_obj, sink.blocks, data


@pytest.fixture
def gateway(http_server_of_own):
    """``start(blocks, answer=None)``: a gateway serving ``blocks`` by CID, honestly or as
    ``answer(cid, block)`` says; returns its URL and the CIDs it was asked for block by
    block (a whole-DAG fetch asks for a CAR first, which these servers do not have)."""

    def start(blocks: dict[str, bytes], answer: Answer | None = None
              ) -> tuple[str, list[str]]:
        asked: list[str] = []

        def respond(target: str) -> tuple[int, dict[str, str], bytes]:
            path, _, query = target.partition("?")
            cid = path.removeprefix("/ipfs/")
            if "format=car" not in query:
                asked.append(cid)
            block = blocks.get(cid)
            if answer is not None and block is not None:
                return answer(cid, block)
            if block is None or query != "format=raw":
                return 404, {}, b"not here"
            return 200, {"Content-Type": "application/vnd.ipld.raw"}, block

        return http_server_of_own(respond), asked

    return start


def test_fetches_a_dag_from_an_honest_gateway(tmp_path: Path, gateway) -> None:
    root, blocks, data = make_dag(50_000)
    url, asked = gateway(blocks)
    repo = Repo(tmp_path / "repo", fsync=False)
    source = TrustlessGateways([url], repo.blocks, timeout=10)
    source.fetch_dag(root)
    assert set(asked) == set(blocks)  # every block asked once, nothing else
    for cid, block in blocks.items():
        assert repo.blocks.get(parse_cid(cid)) == block
    source.fetch_dag(root)  # all local now: nothing is asked again
    assert len(asked) == len(blocks)
    stat = source.stats()[0]
    assert stat.successes == len(blocks) and not stat.dropped
    source.close()


def test_lying_gateway_flipping_bytes_is_dropped_and_nothing_wrong_is_stored(
        tmp_path: Path, gateway) -> None:
    root, blocks, _ = make_dag(20_000)

    def flip(cid: str, block: bytes) -> tuple[int, dict[str, str], bytes]:
        return 200, {}, bytes([block[0] ^ 1]) + block[1:]

    liar, lied_to = gateway(blocks, flip)
    repo = Repo(tmp_path / "repo", fsync=False)
    source = TrustlessGateways([liar], repo.blocks, timeout=10)
    with pytest.raises(BlockNotFound, match="do not match"):
        source.fetch_block(root)
    assert not repo.blocks.has(root)
    stat = source.stats()[0]
    assert stat.dropped and stat.bad_blocks == 1
    with pytest.raises(BlockNotFound):  # never asked again
        source.fetch_dag(root)
    assert lied_to == [cid_str(root)]
    assert list(repo.blocks.iter_multihashes()) == []


def test_honest_gateway_answers_after_a_liar(tmp_path: Path, gateway) -> None:
    root, blocks, _ = make_dag(20_000)
    liar, _ = gateway(blocks, lambda cid, b: (200, {}, b[::-1]))
    honest, _ = gateway(blocks)
    repo = Repo(tmp_path / "repo", fsync=False)
    source = TrustlessGateways([liar, honest], repo.blocks, timeout=10)
    source.fetch_dag(root)
    for cid, block in blocks.items():
        assert repo.blocks.get(parse_cid(cid)) == block
    by_url = {s.url: s for s in source.stats()}
    assert by_url[liar].dropped and not by_url[honest].dropped


def test_lying_gateway_sending_an_oversized_block_is_cut_off(tmp_path: Path, gateway) -> None:
    root, blocks, _ = make_dag(5000)
    big, _ = gateway(blocks, lambda cid, b: (200, {}, b"x" * (MAX_GATEWAY_BLOCK + 10)))
    repo = Repo(tmp_path / "repo", fsync=False)
    source = TrustlessGateways([big], repo.blocks, timeout=10)
    with pytest.raises(BlockNotFound, match="more than"):
        source.fetch_block(root)
    assert source.stats()[0].dropped


def test_rate_limited_gateway_is_set_aside_for_retry_after(tmp_path: Path, gateway) -> None:
    root, blocks, _ = make_dag(5000)
    busy, _ = gateway(blocks, lambda cid, b: (429, {"Retry-After": "30"}, b""))
    honest, _ = gateway(blocks)
    repo = Repo(tmp_path / "repo", fsync=False)
    now = [1000.0]
    source = TrustlessGateways([busy, honest], repo.blocks, timeout=10, clock=lambda: now[0])
    source.fetch_block(root)
    by_url = {s.url: s for s in source.stats()}
    assert by_url[busy].backoff_until >= 1030.0 and not by_url[busy].dropped
    # While it backs off, the honest one is asked first.
    assert source.ranked()[0] == honest


def test_cancel_stops_a_dag_fetch(tmp_path: Path, gateway) -> None:
    root, blocks, _ = make_dag(100_000)
    url, asked = gateway(blocks)
    repo = Repo(tmp_path / "repo", fsync=False)
    source = TrustlessGateways([url], repo.blocks, timeout=10)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(OperationCancelled):
        source.fetch_dag(root, cancel)
    assert len(asked) < len(blocks)


def test_sources_race_and_name_every_failure(tmp_path: Path, gateway) -> None:
    root, blocks, data = make_dag(10_000)
    empty, _ = gateway({})
    honest, _ = gateway(blocks)
    repo = Repo(tmp_path / "repo", fsync=False)
    none_here = TrustlessGateways([empty], repo.blocks, timeout=10)
    has_it = TrustlessGateways([honest], repo.blocks, timeout=10)
    both = RetrievalSources([NamedSource("empty", none_here), NamedSource("gw", has_it)])
    both.fetch_dag(root)
    assert both.answered_by() == "gw"
    other = parse_cid("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
    with pytest.raises(BlockNotFound) as info:
        both.fetch_block(other)
    assert "empty:" in str(info.value) and "gw:" in str(info.value)


# -- hostile DAGs: the fetch walk is the shared walker, so it keeps every bound ------------
def _pb_node(links: list[CID]) -> tuple[CID, bytes]:
    block = encode_node([encode_link(bytes(cid), "", 1) for cid in links], None)
    return cid_of_block(block, version=1, codec="dag-pb"), block


def _chain(levels: int) -> tuple[list[CID], dict[str, bytes]]:
    """dag-pb nodes each linking the next, a raw leaf at the bottom; the root first."""
    leaf = cid_of_block(b"x", version=1, codec="raw")
    cids, blocks = [leaf], {cid_str(leaf): b"x"}
    for _ in range(levels):
        cid, block = _pb_node([cids[-1]])
        cids.append(cid)
        blocks[cid_str(cid)] = block
    return cids[::-1], blocks


def test_gateway_serving_a_dag_deeper_than_the_bound_is_refused_mid_walk(
        tmp_path: Path, gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_DAG_DEPTH", 5)
    chain, blocks = _chain(9)
    url, asked = gateway(blocks)
    repo = Repo(tmp_path / "repo", fsync=False)
    with pytest.raises(DagTooLarge, match="more than 5 levels deep"):
        TrustlessGateways([url], repo.blocks, timeout=10).fetch_dag(chain[0])
    # Depths 0 to 5 were fetched; nothing below the bound was asked for.
    assert asked == [cid_str(cid) for cid in chain[:6]]


def test_gateway_serving_a_node_with_too_many_links_is_refused_before_its_children(
        tmp_path: Path, gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_LINKS_PER_NODE", 4)
    leaves = [cid_of_block(bytes([i]), version=1, codec="raw") for i in range(5)]
    root, block = _pb_node(leaves)
    blocks = {cid_str(root): block} | {cid_str(c): bytes([i]) for i, c in enumerate(leaves)}
    url, asked = gateway(blocks)
    repo = Repo(tmp_path / "repo", fsync=False)
    with pytest.raises(DagTooLarge, match="5 links, over the bound of 4"):
        TrustlessGateways([url], repo.blocks, timeout=10).fetch_dag(root)
    assert asked == [cid_str(root)]
