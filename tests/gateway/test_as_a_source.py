"""Our gateway as another node's trustless source: what a fetch that fails everywhere raises,
and what ``fetch_cid`` says about who answered.

Real components throughout: embedded repos, our gateway served by hypercorn on 127.0.0.1 (an
honest trustless gateway), a deliberately lying gateway of the test's own, a full tmpfs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from ipfs_mcp.backends.core.cids import cid_of_block, cid_str
from ipfs_mcp.backends.errors import BlockNotFound, BlockNotFoundAnywhere, DiskFull
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.backends.retrieval.sources import NamedSource, RetrievalSources
from ipfs_mcp.backends.retrieval.trustless_gateway import TrustlessGateways
from ipfs_mcp.backends.router import Router
from ipfs_mcp.backends.settings import BackendSettings
from ipfs_mcp.server.gateway import BlockstoreSource, Gateway
from ipfs_mcp.tools import content
from ipfs_mcp.tools.roots import AllowedRoots
from tests.conftest import fill_disk

from .conftest import serving

pytestmark = pytest.mark.anyio


@pytest.fixture
def lying_gateway(http_server_of_own: Callable[..., str]) -> str:
    """A gateway that answers every block request with bytes that are not the block."""
    return http_server_of_own(lambda path: (
        200, {"Content-Type": "application/vnd.ipld.raw"}, b"not the block you asked for"))


def _router(repo: Repo, sources: RetrievalSources) -> Router:
    return Router.from_settings(BackendSettings.from_env(), sources=sources, repo=repo,
                                choice="hf_cache")


async def test_a_block_missing_everywhere_carries_each_sources_own_failure(
        tmp_path: Path, lying_gateway: str) -> None:
    here = Repo(tmp_path / "here", fsync=False)
    empty = Repo(tmp_path / "empty", fsync=False)
    cid = cid_of_block(os.urandom(1000))  # in no repo at all
    async with serving(Gateway(BlockstoreSource(empty.blocks))) as ours:
        sources = RetrievalSources([
            NamedSource("our-gateway", TrustlessGateways([str(ours.base_url)], here.blocks)),
            NamedSource("lying-gateway", TrustlessGateways([lying_gateway], here.blocks))])
        router = _router(here, sources)
        with pytest.raises(BlockNotFoundAnywhere) as caught:
            await anyio.to_thread.run_sync(router.block_get, cid_str(cid))
    errors = caught.value.errors
    assert set(errors) == {"our-gateway", "lying-gateway"}
    assert all(isinstance(e, BlockNotFound) for e in errors.values())
    assert "do not match it" in str(errors["lying-gateway"])  # the lie is named, typed apart
    assert isinstance(caught.value, BlockNotFound)  # still "not found" for every caller


async def test_a_full_disk_is_what_surfaces_never_not_found(
        small_disk: Path, tmp_path: Path, lying_gateway: str) -> None:
    holder = HFCacheBackend(Repo(tmp_path / "holder", fsync=False))
    cid = holder.block_put(os.urandom(300_000))
    full = Repo(small_disk / "repo", fsync=False)
    async with serving(Gateway(BlockstoreSource(holder.repo.blocks))) as ours:
        sources = RetrievalSources([
            NamedSource("lying-gateway", TrustlessGateways([lying_gateway], full.blocks)),
            NamedSource("our-gateway", TrustlessGateways([str(ours.base_url)], full.blocks))])
        router = _router(full, sources)
        filler = fill_disk(small_disk)  # another writer takes every free byte
        with pytest.raises(DiskFull) as caught:
            await anyio.to_thread.run_sync(router.block_get, cid)
        filler.unlink()
    assert not isinstance(caught.value, BlockNotFound)
    assert any("lying-gateway" in note for note in getattr(caught.value, "__notes__", []))


async def test_fetch_cid_says_which_backend_and_source_answered(tmp_path: Path) -> None:
    holder = HFCacheBackend(Repo(tmp_path / "holder", fsync=False))
    cid = holder.add_bytes(b"fetched from our gateway\n")
    here = Repo(tmp_path / "here", fsync=False)
    roots = AllowedRoots.for_server([str(tmp_path)], hub_cache=tmp_path / "hub",
                                    repo=tmp_path / "here")
    async with serving(Gateway(BlockstoreSource(holder.repo.blocks))) as ours:
        gateways = TrustlessGateways([str(ours.base_url)], here.blocks)
        router = _router(here, RetrievalSources([NamedSource("trustless-gateway", gateways)]))
        first = await content.fetch_cid(router, cid, roots=roots, hub_cache=tmp_path / "hub",
                                        max_inline=1024, reads=router)
        again = await content.fetch_cid(router, cid, roots=roots, hub_cache=tmp_path / "hub",
                                        max_inline=1024, reads=router)
    assert first.text == again.text == "fetched from our gateway\n"
    assert (first.answered_by, first.fetched_from) == ("hf_cache", "trustless-gateway")
    assert (again.answered_by, again.fetched_from) == ("hf_cache", None)  # all here now
