"""dag-cbor, dag-json, json and cbor blocks over the path gateway: as they are, typed by
codec or by the format asked; 406 for a conversion (none is made); paths through links;
501 for a path ending inside a value; the HTML view for browsers, escaped."""

from __future__ import annotations

import json
from dataclasses import dataclass

import dag_cbor
import pytest

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.server.gateway import Gateway

from .blocks import DAG_CBOR, DAG_JSON, put
from .conftest import serving

pytestmark = pytest.mark.anyio

IMMUTABLE = "public, max-age=29030400, immutable"
SCRIPT = "<script>alert(1)</script>"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


@dataclass(frozen=True)
class Tree:
    """A dag-cbor root whose ``next`` links to a dag-json leaf."""

    root: str
    root_bytes: bytes
    leaf: str
    leaf_bytes: bytes


@pytest.fixture
def tree(backend: HFCacheBackend) -> Tree:
    leaf_bytes = json.dumps({"hello": SCRIPT}, separators=(",", ":")).encode()
    leaf = put(backend, DAG_JSON, leaf_bytes)
    root_bytes = dag_cbor.encode({"next": leaf, "deep": {"value": 1}, "name": SCRIPT})
    root = put(backend, DAG_CBOR, root_bytes)
    return Tree(cid_str(root), root_bytes, cid_str(leaf), leaf_bytes)


async def test_blocks_are_sent_as_they_are_typed_by_codec_or_format(
        gateway: Gateway, tree: Tree) -> None:
    root, leaf = tree.root, tree.leaf
    async with serving(gateway) as http:
        bare = await http.get(f"/ipfs/{root}")
        plain = await http.get(f"/ipfs/{root}?format=cbor")
        accept = await http.get(f"/ipfs/{root}", headers={"accept": "application/cbor"})
        through = await http.get(f"/ipfs/{root}/next?format=dag-json")
        as_json = await http.get(f"/ipfs/{leaf}", headers={"accept": "application/json"})
        named = await http.get(f"/ipfs/{leaf}?format=dag-json&filename=x.json&download=true")
        ranged = await http.get(f"/ipfs/{root}", headers={"range": "bytes=1-3"})
        head = await http.head(f"/ipfs/{root}?format=dag-cbor")
    assert bare.status_code == 200 and bare.content == tree.root_bytes
    h = bare.headers
    assert h["content-type"] == "application/vnd.ipld.dag-cbor"
    assert h["etag"] == f'"{root}.dag-cbor"'
    assert h["cache-control"] == IMMUTABLE
    assert h["content-disposition"] == f'attachment; filename="{root}.cbor"'
    assert h["x-content-type-options"] == "nosniff"
    for response in (plain, accept):
        assert response.content == tree.root_bytes
        assert response.headers["content-type"] == "application/cbor"
        assert response.headers["etag"] == f'"{root}.cbor"'
    assert through.content == tree.leaf_bytes
    assert through.headers["content-type"] == "application/vnd.ipld.dag-json"
    assert through.headers["content-disposition"] == f'inline; filename="{leaf}.json"'
    assert through.headers["x-ipfs-roots"].split(",") == [root, leaf]
    assert as_json.content == tree.leaf_bytes
    assert as_json.headers["content-type"] == "application/json"
    assert named.headers["content-disposition"] == 'attachment; filename="x.json"'
    assert ranged.status_code == 206 and ranged.content == tree.root_bytes[1:4]
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(tree.root_bytes))


async def test_no_conversion_values_are_501_and_missing_fields_404(
        gateway: Gateway, backend: HFCacheBackend, tree: Tree) -> None:
    unixfs_file = backend.add_bytes(b'{"a": 1}')
    async with serving(gateway) as http:
        refused = [await http.get(url) for url in (
            f"/ipfs/{tree.root}?format=dag-json",
            f"/ipfs/{tree.leaf}?format=dag-cbor",
            f"/ipfs/{tree.leaf}?format=cbor",
            f"/ipfs/{unixfs_file}?format=dag-json")]
        by_accept = await http.get(f"/ipfs/{tree.root}",
                                   headers={"accept": "application/vnd.ipld.dag-json"})
        inside = await http.get(f"/ipfs/{tree.root}/deep?format=dag-cbor")
        inside_bare = await http.get(f"/ipfs/{tree.root}/deep/value")
        missing = await http.get(f"/ipfs/{tree.root}/nothing-here")
        unixfs_as_json = await http.get(f"/ipfs/{unixfs_file}?format=json")
        picture = await http.get(f"/ipfs/{backend.add_bytes(PNG)}",
                                 headers={"accept": "application/json, text/plain, */*"})
    assert [r.status_code for r in refused] == [406, 406, 406, 406]
    assert "does not convert" in refused[0].text
    assert by_accept.status_code == 406
    assert inside.status_code == 501 and inside_bare.status_code == 501
    assert "'deep' is a value inside" in inside.text
    assert missing.status_code == 404
    assert unixfs_as_json.status_code == 200 and unixfs_as_json.content == b'{"a": 1}'
    assert unixfs_as_json.headers["content-type"] == "application/json"  # by its bytes
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"


async def test_browsers_get_an_escaped_html_view_with_links(gateway: Gateway,
                                                            tree: Tree) -> None:
    async with serving(gateway) as http:
        page = await http.get(f"/ipfs/{tree.root}/", headers={"accept": "text/html"})
        again = await http.get(f"/ipfs/{tree.root}/", headers={
            "accept": "text/html", "if-none-match": page.headers["etag"]})
        leaf_page = await http.get(f"/ipfs/{tree.leaf}", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["etag"].startswith('"DagIndex-')
    assert tree.root in page.headers["etag"]
    assert "content-disposition" not in page.headers
    assert page.text.rstrip().endswith("</html>")
    assert f'href="/ipfs/{tree.leaf}/"' in page.text
    assert SCRIPT not in page.text and "&lt;script&gt;" in page.text
    assert again.status_code == 304
    assert leaf_page.status_code == 200 and SCRIPT not in leaf_page.text
