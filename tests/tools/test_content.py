"""The content tools over a real embedded repo: CIDs, paging, caps, disk and HF cache."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import anyio
import pytest

from ipfs_mcp.backends.errors import (
    InvalidCID,
    InvalidInput,
    NotFound,
    PinNotFound,
    TooLarge,
    UnsafePath,
)
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.hub.layout import RECORD_PATH
from ipfs_mcp.tools import content
from ipfs_mcp.tools.import_options import ImportArgs
from ipfs_mcp.tools.models import StoreResult
from ipfs_mcp.tools.roots import AllowedRoots

pytestmark = pytest.mark.anyio

HELLO_V0 = "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD"  # `echo -n "hello world" | ipfs add`


def make_model(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text('{"model_type": "gpt2", "n_layer": 2}\n')
    (folder / "tokenizer").mkdir(exist_ok=True)
    (folder / "tokenizer" / "vocab.txt").write_text("a\nb\nc\n")
    (folder / "model.safetensors").write_bytes(os.urandom(700_000))
    return folder


async def test_add_text_gives_kubos_cid(backend: HFCacheBackend, roots: AllowedRoots) -> None:
    added = await content.add_content(backend, roots=roots, text="hello world", max_inline=100)
    assert added.cid == HELLO_V0
    assert added.pinned and added.size == 11 and added.resource_uri == f"ipfs://{HELLO_V0}"
    v1 = await content.add_content(backend, roots=roots, text="hello world",
                                   import_args=ImportArgs(cid_version=1), max_inline=100)
    assert v1.cid.startswith("bafkrei")  # CIDv1 implies raw leaves, as in Kubo


async def test_add_content_inputs(backend: HFCacheBackend, roots: AllowedRoots,
                                  work: Path) -> None:
    data = bytes(range(256))
    added = await content.add_content(backend, roots=roots, max_inline=1000,
                                      data_base64=base64.b64encode(data).decode())
    assert backend.cat(added.cid) == data
    with pytest.raises(TooLarge, match="inline cap of 100"):
        await content.add_content(backend, roots=roots, text="x" * 101, max_inline=100)
    with pytest.raises(TooLarge):
        await content.add_content(backend, roots=roots, max_inline=100,
                                  data_base64=base64.b64encode(b"y" * 1000).decode())
    with pytest.raises(InvalidInput, match="base64"):
        await content.add_content(backend, roots=roots, data_base64="%%%", max_inline=100)
    with pytest.raises(InvalidInput, match="exactly one"):
        await content.add_content(backend, roots=roots, text="a", path="b", max_inline=100)
    (work / "f.txt").write_text("file")
    by_path = await content.add_content(backend, roots=roots, path=str(work / "f.txt"),
                                        max_inline=100)
    assert by_path.kind == "file" and backend.cat(by_path.cid) == b"file"
    with pytest.raises(UnsafePath):
        await content.add_content(backend, roots=roots, path="/etc/hostname", max_inline=100)


async def test_store_folder_then_fetch_everything(backend: HFCacheBackend,
                                                  roots: AllowedRoots, work: Path, hub: Path) -> None:
    model = make_model(work / "tiny-model")
    stored = await content.store_model(backend, str(model), roots=roots, hub_cache=hub)
    assert stored.file_count == 3 and stored.total_size == sum(
        p.stat().st_size for p in model.rglob("*") if p.is_file())
    paths = {f.path: f for f in stored.files}
    assert {"config.json", "tokenizer/vocab.txt", "model.safetensors", ""} <= set(paths)
    assert stored.pinned and stored.backend == "hf_cache"
    root = stored.root_cid

    text = await content.fetch_cid(backend, f"{root}/config.json", roots=roots, hub_cache=hub,
                                   max_inline=1024)
    assert text.delivery == "text" and text.text == (model / "config.json").read_text()
    assert text.resolved_cid == paths["config.json"].cid and text.eof

    big = await content.fetch_cid(backend, f"{root}/model.safetensors", roots=roots, hub_cache=hub,
                                  max_inline=1024)
    assert big.delivery == "resource_link" and big.size == 700_000 and big.text is None
    page = await content.fetch_cid(backend, f"ipfs://{root}/model.safetensors", roots=roots, hub_cache=hub,
                                   offset=300_000, length=1000, max_inline=1024)
    blob = (model / "model.safetensors").read_bytes()
    assert page.delivery == "base64" and not page.eof
    assert base64.b64decode(page.base64 or "") == blob[300_000:301_000]
    with pytest.raises(TooLarge, match="inline cap"):
        await content.fetch_cid(backend, root, roots=roots, hub_cache=hub, length=2048, max_inline=1024)

    listing = await content.fetch_cid(backend, root, roots=roots, hub_cache=hub, max_inline=1024)
    assert listing.delivery == "listing"
    assert {e.name for e in listing.entries or []} == {"config.json", "tokenizer",
                                                        "model.safetensors"}
    ls = await content.ls(backend, f"/ipfs/{root}/tokenizer")
    assert [e.name for e in ls.entries] == ["vocab.txt"] and ls.kind == "directory"

    out = await content.fetch_cid(backend, root, roots=roots, hub_cache=hub, output_path=str(work / "copy"),
                                  max_inline=1024)
    assert out.delivery == "file" and out.output_path == str((work / "copy").resolve())
    assert (work / "copy" / "model.safetensors").read_bytes() == blob
    assert (work / "copy" / "tokenizer" / "vocab.txt").read_text() == "a\nb\nc\n"


async def test_fetch_errors(backend: HFCacheBackend, roots: AllowedRoots, work: Path, hub: Path) -> None:
    for bad in ("notacid", "", "Qm123", "bafy!!"):
        with pytest.raises(InvalidCID):
            await content.fetch_cid(backend, bad, roots=roots, hub_cache=hub, max_inline=10)
    missing = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
    with pytest.raises(NotFound, match="not found in the blockstore"):
        await content.fetch_cid(backend, missing, roots=roots, hub_cache=hub, max_inline=10)
    added = await content.add_content(backend, roots=roots, text="x", max_inline=10)
    with pytest.raises(UnsafePath):
        await content.fetch_cid(backend, added.cid, roots=roots, hub_cache=hub, output_path="/tmp/../etc/x",
                                max_inline=10)
    with pytest.raises(UnsafePath):
        await content.fetch_cid(backend, added.cid, roots=roots, hub_cache=hub, output_path="/etc/x",
                                max_inline=10)
    with pytest.raises(InvalidInput):
        await content.fetch_cid(backend, added.cid, roots=roots, hub_cache=hub, offset=-1, max_inline=10)
    with pytest.raises(InvalidInput, match="not both"):
        await content.fetch_cid(backend, added.cid, roots=roots, hub_cache=hub, output_path=str(work / "a"),
                                into_hf_cache="a/b", max_inline=10)


async def test_into_hf_cache_loads_offline(backend: HFCacheBackend, roots: AllowedRoots,
                                           work: Path, hub: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import hf_hub_download, snapshot_download

    model = make_model(work / "m")
    stored = await content.store_model(backend, str(model), roots=roots, hub_cache=hub)
    result = await content.fetch_cid(backend, stored.root_cid, roots=roots, hub_cache=hub,
                                     into_hf_cache="acme/tiny", max_inline=10)
    assert result.delivery == "hf_cache" and result.files_written == 3
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    got = hf_hub_download("acme/tiny", "model.safetensors", cache_dir=hub,
                          local_files_only=True)
    assert Path(got).read_bytes() == (model / "model.safetensors").read_bytes()
    snap = snapshot_download("acme/tiny", cache_dir=hub, local_files_only=True)
    assert (Path(snap) / "tokenizer" / "vocab.txt").read_text() == "a\nb\nc\n"

    # And back: store_model by repo id finds the same snapshot; copied, its files get the
    # same CIDs; by reference (the default for the hub cache), Kubo's --nocopy CIDs. The
    # root differs by the snapshot record beside the files (its commit: the one written).
    def model_files(stored: StoreResult) -> dict[str, str]:
        return {f.path: f.cid for f in stored.files
                if f.kind == "file" and not f.path.startswith(".cache/")}

    again = await content.store_model(backend, "acme/tiny@main", roots=roots, hub_cache=hub,
                                      nocopy=False)
    assert model_files(again) == model_files(stored) and not again.nocopy
    assert result.hf_commit and result.hf_commit in backend.cat(
        f"{again.root_cid}/{RECORD_PATH}").decode()
    by_reference = await content.store_model(backend, "acme/tiny@main", roots=roots,
                                             hub_cache=hub)
    raw = await content.store_model(backend, str(model), roots=roots, hub_cache=hub,
                                    import_args=ImportArgs(raw_leaves=True))
    assert by_reference.nocopy and model_files(by_reference) == model_files(raw)
    with pytest.raises(NotFound, match="not in the HuggingFace cache"):
        await content.store_model(backend, "acme/absent", roots=roots, hub_cache=hub)


async def test_pins_and_gc(backend: HFCacheBackend, roots: AllowedRoots, hub: Path) -> None:
    keep = await content.add_content(backend, roots=roots, text="keep", name="k", max_inline=9)
    drop = await content.add_content(backend, roots=roots, text="drop", name="d", max_inline=9)
    listed = await content.list_pins(backend)
    assert {p.cid for p in listed.pins} == {keep.cid, drop.cid} and listed.total == 2
    assert [p.name for p in (await content.list_pins(backend, name_contains="K")).pins] == ["k"]
    unpinned = await content.unpin(backend, drop.cid)
    assert unpinned.removed == ["recursive"]
    with pytest.raises(PinNotFound):
        await content.unpin(backend, drop.cid)
    gc = await content.repo_gc(backend)
    assert gc.removed_blocks == 1 and gc.kept_blocks == 1
    with pytest.raises(NotFound):
        await content.fetch_cid(backend, drop.cid, roots=roots, hub_cache=hub, max_inline=10)
    pinned = await content.pin(backend, keep.cid, recursive=True)
    assert pinned.pinned and pinned.size is not None and pinned.size >= 4  # block bytes


async def test_progress_then_cancel_leaves_nothing_pinned(backend: HFCacheBackend,
                                                          roots: AllowedRoots,
                                                          work: Path, hub: Path) -> None:
    from ipfs_mcp.tools.progress import Progress

    folder = work / "big"
    folder.mkdir()
    for i in range(4):
        (folder / f"part{i}.bin").write_bytes(os.urandom(600_000))
    reports: list[tuple[float, float | None]] = []
    with anyio.CancelScope() as scope:
        async def report(done: float, total: float | None, message: str | None) -> None:
            reports.append((done, total))
            scope.cancel()  # the client cancels as soon as it sees progress

        with anyio.fail_after(30):
            await content.store_model(backend, str(folder), roots=roots, hub_cache=hub,
                                      progress=Progress(report))
    assert scope.cancelled_caught
    assert reports and reports[0][1] == 2_400_000  # total known up front
    assert list(backend.repo.pins) == []  # cancelled before the pin: nothing half-pinned
    assert list(backend.repo.blocks.tmp_dir.iterdir()) == []


async def test_progress_reports_reach_the_total(backend: HFCacheBackend, roots: AllowedRoots,
                                                work: Path, hub: Path) -> None:
    from ipfs_mcp.tools.progress import Progress

    (work / "one.bin").write_bytes(os.urandom(300_000))
    seen: list[float] = []

    async def report(done: float, total: float | None, message: str | None) -> None:
        seen.append(done)
        assert total == 300_000 and message and "one.bin" in message

    stored = await content.store_model(backend, str(work / "one.bin"), roots=roots, hub_cache=hub,
                                       progress=Progress(report))
    assert stored.file_count == 1
    assert seen == sorted(seen) and seen[-1] == 300_000  # the bar ends full


async def test_a_replication_factor_is_refused_where_nothing_replicates(
        backend: HFCacheBackend, roots: AllowedRoots) -> None:
    from ipfs_mcp.backends.errors import Unsupported

    added = await content.add_content(backend, roots=roots, text="one machine", pin=False,
                                      max_inline=100)
    with pytest.raises(Unsupported, match="not supported by backend hf_cache"):
        await content.pin(backend, added.cid, replication_min=2)
    assert list(backend.repo.pins) == []  # refused before anything was pinned
