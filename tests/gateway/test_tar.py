"""``?format=tar`` over real HTTP: a UnixFS folder or file as a streamed TAR that the
standard library reads back; names that climb out of the archive are refused; a file whose
bytes differ from its declared size cuts the stream."""

from __future__ import annotations

import io
import random
import tarfile
from pathlib import Path

import pytest

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.server.gateway import BlockstoreSource, Gateway, GatewayLimits

from .blocks import put_file, put_folder
from .conftest import cut_short, serving

pytestmark = pytest.mark.anyio

BIG = random.Random(7).randbytes(700_000)  # several blocks and several stream chunks


def _members(body: bytes) -> dict[str, bytes | None]:
    """Each member's name and its bytes (None for folders and links)."""
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:") as archive:
        out: dict[str, bytes | None] = {}
        for member in archive.getmembers():
            handle = archive.extractfile(member) if member.isfile() else None
            out[member.name] = handle.read() if handle is not None else None
        return out


async def test_a_folder_streams_as_a_tar_under_its_cid(
        gateway: Gateway, backend: HFCacheBackend, tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "ą" / "ę").mkdir(parents=True)
    (site / "ą" / "ę" / "file-źł.txt").write_bytes(b"utf8 names\n")
    (site / "big.bin").write_bytes(BIG)
    (site / "empty").write_bytes(b"")
    root = cid_str(backend.add_path(site).root)
    file_cid = backend.add_bytes(b"just one file")
    async with serving(gateway) as http:
        folder = await http.get(f"/ipfs/{root}?format=tar")
        single = await http.get(f"/ipfs/{file_cid}", headers={"accept": "application/x-tar"})
        named = await http.get(f"/ipfs/{root}?format=tar&filename=testтест.tar")
        head = await http.head(f"/ipfs/{root}?format=tar")
        again = await http.get(f"/ipfs/{root}?format=tar",
                               headers={"if-none-match": folder.headers["etag"]})
    assert folder.status_code == 200
    h = folder.headers
    assert h["content-type"] == "application/x-tar"
    assert h["etag"] == f'W/"{root}.x-tar"'
    assert h["content-disposition"] == f'attachment; filename="{root}.tar"'
    assert "content-length" not in h  # streamed
    assert _members(folder.content) == {
        root: None, f"{root}/big.bin": BIG, f"{root}/empty": b"", f"{root}/ą": None,
        f"{root}/ą/ę": None, f"{root}/ą/ę/file-źł.txt": b"utf8 names\n"}
    assert _members(single.content) == {file_cid: b"just one file"}
    assert named.headers["content-disposition"] == (
        "attachment; filename=\"test____.tar\"; filename*=UTF-8''test%D1%82%D0%B5%D1%81%D1%82.tar")
    assert head.status_code == 200 and head.content == b""
    assert again.status_code == 304


async def test_names_climbing_out_of_the_archive_are_refused(
        gateway: Gateway, backend: HFCacheBackend) -> None:
    leaf = put_file(backend, [b"payload"])
    outside = cid_str(put_folder(backend, {"../foo": leaf, "bar": leaf}))
    deep_outside = cid_str(put_folder(backend, {"a": put_folder(backend, {"../../x": leaf})}))
    inside = cid_str(put_folder(backend, {"foobar": put_folder(
        backend, {"directory": put_folder(backend, {"../file": leaf})})}))
    async with serving(gateway) as http:
        refused = await http.get(f"/ipfs/{outside}?format=tar")
        refused_deep = await http.get(f"/ipfs/{deep_outside}?format=tar")
        kept = await http.get(f"/ipfs/{inside}?format=tar")
    for response in (refused, refused_deep):
        assert 400 <= response.status_code < 600
        assert "would leave the archive" in response.text
        assert b"payload" not in response.content
    assert kept.status_code == 200
    assert _members(kept.content)[f"{inside}/foobar/file"] == b"payload"


async def test_a_file_lying_about_its_size_is_refused_or_cuts_the_tar(
        backend: HFCacheBackend) -> None:
    # Met in the first chunk (made before the status goes out), the lie is an error status;
    # met later, the body is cut there, never finished as a short well-formed archive.
    gateway = Gateway(BlockstoreSource(backend.repo.blocks),
                      limits=GatewayLimits(chunk_bytes=64 * 1024))
    honest = put_file(backend, [BIG[:300_000], BIG[300_000:]])
    liar = put_file(backend, [b"short"], declared=1000)
    early = cid_str(put_folder(backend, {"a-liar": liar}))
    late = cid_str(put_folder(backend, {"a-honest": honest, "b-liar": liar}))
    async with serving(gateway) as http:
        refused = await http.get(f"/ipfs/{early}?format=tar")
        received = await cut_short(http, f"/ipfs/{late}?format=tar")
    assert refused.status_code == 500 and b"short" not in refused.content
    assert BIG[:1000] in received and len(received) < len(BIG) + 4 * 512 + 1000
