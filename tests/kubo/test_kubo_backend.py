"""The Kubo RPC backend against a real Kubo 0.43 daemon (see conftest)."""

from __future__ import annotations

import io
import random
import socket
from pathlib import Path

import pytest
from interop.kubo_daemon import KuboDaemon

from ipfs_mcp.backends.core import car, dagpb, unixfs
from ipfs_mcp.backends.core.cids import cid_of_block, cid_str, parse_cid
from ipfs_mcp.backends.core.importer import ImportOptions
from ipfs_mcp.backends.errors import (
    BackendUnavailable,
    BlockNotFound,
    InvalidInput,
    NotFound,
    PinNotFound,
    Timeout,
)
from ipfs_mcp.backends.hf_cache import HFCacheBackend
from ipfs_mcp.backends.remote.kubo.rpc import KuboRPCBackend, api_url_from
from ipfs_mcp.backends.repo.pins import Pin
from ipfs_mcp.backends.repo.repository import Repo

from .helpers import ours, ours_path, random_tree, same_tree

V1 = ImportOptions(cid_version=1)
KNOWN = [  # INTEROP.md: what Kubo's `ipfs add` gives
    (b"", "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH",
     "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"),
    (b"hello world\n", "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o",
     "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"),
    (bytes(1 << 20), "QmVkbauSDEaMP4Tkq6Epm9uW75mWm136n81YH8fGtfwdHU",
     "bafybeiggzq4ryi7hscq5hzvzcnk4urnxt3asp37dhgvnjilf7exskximla"),
]


def test_known_vectors_match_kubo(rpc: KuboRPCBackend, tmp_path: Path) -> None:
    for data, v0, v1 in KNOWN:
        assert rpc.add_bytes(data) == v0
        assert rpc.add_bytes(data, options=V1) == v1
        assert rpc.cat(v0) == data and rpc.cat(v1) == data
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "a.txt").write_bytes(b"aaa\n")
    (folder / "b.txt").write_bytes(b"bbb\n")
    assert cid_str(rpc.add_path(folder).root) == "Qmbf84Ab1zsAStesz6Q7CTHJWKhZyMd9KtYPqrxEvFuBsF"
    assert cid_str(rpc.add_path(folder, options=V1).root) == \
        "bafybeieb2ojvdcdqsm2dwkzjc4unjujhh7dkkbr4njv4tzh5fb3fjdx4wu"


OPTION_SETS = [
    ImportOptions(),
    ImportOptions(cid_version=1),
    ImportOptions(raw_leaves=True),
    ImportOptions(cid_version=1, raw_leaves=False),
    ImportOptions(chunk_size=1024),  # 174 links fill at 178176 bytes: the fan-out edge
    ImportOptions(cid_version=1, chunk_size=1000),
    ImportOptions(chunk_size=1024, trickle=True),  # --trickle
    ImportOptions(cid_version=1, chunk_size=1024, max_links=7),  # --max-file-links
    ImportOptions(chunk_size=4096, max_links=3, trickle=True),
    ImportOptions(chunker="rabin-512-2048-8192"),  # --chunker=rabin-MIN-AVG-MAX
    ImportOptions(cid_version=1, chunker="buzhash"),
    # unixfs-v1-2025 for files (its block-based HAMT estimation only concerns folders)
    ImportOptions.from_profile("unixfs-v1-2025", hamt_size_estimation="links"),
]


def _option_id(o: ImportOptions) -> str:
    layout = f"-trickle{o.max_links}" if o.trickle else f"-links{o.max_links}"
    return f"v{o.cid_version}-raw{o.raw_leaves}-{o.chunker_spec}{layout}"


@pytest.mark.parametrize("options", OPTION_SETS, ids=_option_id)
def test_random_files_get_the_cids_our_importer_gives(rpc: KuboRPCBackend,
                                                      options: ImportOptions) -> None:
    rng = random.Random(f"files-{options}")
    c = options.chunk_size
    fill = options.max_links * c
    edges = {0, 1, c - 1, c, c + 1, fill, fill + 1, 2 * c + rng.randrange(c), 599_999}
    for size in sorted(s for s in edges if s <= 600_000):
        data = rng.randbytes(size)
        cid = rpc.add_bytes(data, pin=False, options=options)
        assert cid == ours(data, options), f"size {size}"
        assert rpc.cat(cid) == data


@pytest.mark.parametrize("options", [ImportOptions(), ImportOptions(cid_version=1),
                                     ImportOptions(hidden=True),
                                     ImportOptions(wrap_with_directory=True),
                                     ImportOptions(chunk_size=4096, raw_leaves=True),
                                     ImportOptions(max_directory_links=3),
                                     ImportOptions(cid_version=1, trickle=True, max_links=4,
                                                   chunk_size=1024)],
                         ids=["v0", "v1", "hidden", "wrapped", "chunk4096-raw",
                              "max-directory-links", "trickle"])
def test_random_trees_get_the_cids_our_importer_gives(rpc: KuboRPCBackend, tmp_path: Path,
                                                      options: ImportOptions) -> None:
    tree = random_tree(tmp_path / "tree", random.Random(f"tree-{options}"))
    result = rpc.add_path(tree, pin=False, options=options)
    assert cid_str(result.root) == ours_path(tree, options)


def test_symlinks_are_added_as_symlinks(rpc: KuboRPCBackend, tmp_path: Path) -> None:
    tree = random_tree(tmp_path / "tree", random.Random("links"), files=4, symlinks=True)
    result = rpc.add_path(tree, pin=False)
    assert cid_str(result.root) == ours_path(tree)
    out = tmp_path / "out"
    rpc.get_to_path(cid_str(result.root), output_path=out)
    assert same_tree(tree, out) is False  # dotfiles were skipped ...
    assert (out / "link-to-dir").is_symlink()


def test_large_directory_is_sharded_as_kubo_shards_it(rpc: KuboRPCBackend,
                                                     tmp_path: Path) -> None:
    folder = tmp_path / "big"
    folder.mkdir()
    pad = "n" * 200  # 1200 links of ~234 bytes each pass Kubo's 256 KiB threshold
    for i in range(1200):
        (folder / f"{pad}-{i:05d}").write_bytes(b"%d\n" % i)
    root = cid_str(rpc.add_path(folder, pin=False).root)
    node = dagpb.decode(rpc.block_get(root))
    kind = unixfs.decode(node.data or b"").type
    assert kind == unixfs.NodeType.HAMT_SHARD
    assert root == ours_path(folder)
    assert rpc.stat(root).kind == "directory"
    entries = rpc.ls(root)  # names and CIDs checked against the verified HAMT shards
    assert sorted(e.name for e in entries) == sorted(p.name for p in folder.iterdir())
    assert rpc.cat(f"{root}/{pad}-01199") == b"1199\n"
    narrow = ImportOptions(max_hamt_fanout=16)  # --max-hamt-fanout
    assert cid_str(rpc.add_path(folder, pin=False, options=narrow).root) == \
        ours_path(folder, narrow)


def test_options_kubo_keeps_in_its_config_are_refused_for_folders(
        rpc: KuboRPCBackend, tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"x")
    for options in (ImportOptions(shard_threshold=1000),
                    ImportOptions.from_profile("unixfs-v1-2025")):  # block-based estimation
        with pytest.raises(InvalidInput, match="node configuration"):
            rpc.add_path(tmp_path / "d", options=options)


@pytest.mark.parametrize("options", [ImportOptions(chunk_size=1024),
                                     ImportOptions(cid_version=1, chunk_size=1024)],
                         ids=["dag-pb-leaves", "raw-leaves"])
def test_cat_ranges_are_exact(rpc: KuboRPCBackend, options: ImportOptions) -> None:
    rng = random.Random(7)
    data = rng.randbytes(400_000)  # two levels of 1 KiB leaves
    cid = rpc.add_bytes(data, pin=False, options=options)
    cases = [(0, None), (0, 1), (1023, 2), (1024, 1024), (5, 300_000), (399_999, 10),
             (400_000, 5), (178_175, 3)]
    cases += [(rng.randrange(400_000), rng.randrange(1, 50_000)) for _ in range(6)]
    for offset, length in cases:
        end = None if length is None else offset + length
        assert rpc.cat(cid, offset=offset, length=length) == data[offset:end], (offset, length)
    with pytest.raises(InvalidInput):
        rpc.cat(cid, offset=-1)


def test_tree_get_ls_stat_and_paths(rpc: KuboRPCBackend, tmp_path: Path) -> None:
    tree = random_tree(tmp_path / "tree", random.Random("get"), files=10)
    root = cid_str(rpc.add_path(tree, pin=False).root)
    out = tmp_path / "out"
    entry = rpc.get_to_path(root, output_path=out)
    assert entry.kind == "directory"
    (tmp_path / "expected").mkdir()
    for path in tree.rglob("*"):  # what add sent: dotfiles skipped
        rel = path.relative_to(tree)
        if any(part.startswith(".") for part in rel.parts):
            continue
        dest = tmp_path / "expected" / rel
        if path.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(path.read_bytes())
    assert same_tree(tmp_path / "expected", out)
    listing = {e.name: e for e in rpc.ls(root)}
    assert set(listing) == {p.name for p in tree.iterdir() if not p.name.startswith(".")}
    assert listing["empty"].kind == "directory"
    some_file = next(p for p in tree.rglob("*") if p.is_file() and ".hidden" not in str(p)
                     and not p.name.startswith("."))
    rel = some_file.relative_to(tree).as_posix()
    assert rpc.cat(f"{root}/{rel}") == some_file.read_bytes()
    stat = rpc.stat(f"/ipfs/{root}/{rel}")
    assert (stat.kind, stat.size) == ("file", some_file.stat().st_size)
    file_cid = rpc.add_bytes(some_file.read_bytes(), pin=False)
    assert [e.cid_str for e in rpc.ls(file_cid)] == [file_cid]
    with pytest.raises(NotFound):
        rpc.stat(f"{root}/no-such-entry")
    with pytest.raises(InvalidInput):
        rpc.cat(root)  # a folder


def _pinned(backend: KuboRPCBackend) -> dict[str, Pin]:
    return {cid_str(p.cid): p for p in backend.pins()}


def test_pins_with_names(rpc: KuboRPCBackend) -> None:
    data = random.randbytes(3000)
    cid = rpc.add_bytes(data, pin=False)
    assert cid not in _pinned(rpc)
    pin = rpc.pin(cid, name="my model")
    assert (cid_str(pin.cid), pin.type, pin.name) == (cid, "recursive", "my model")
    listed = _pinned(rpc)[cid]
    assert (listed.type, listed.name) == ("recursive", "my model")  # Kubo's pin ls --names
    assert rpc.pin_types(cid) == {cid: "recursive"}
    assert rpc.unpin(cid) == ["recursive"]
    assert cid not in _pinned(rpc)
    with pytest.raises(PinNotFound):
        rpc.unpin(cid)
    with pytest.raises(PinNotFound):
        rpc.pin_types(cid)
    named = rpc.add_bytes(b"pinned by add " + random.randbytes(8), name="from add")
    assert _pinned(rpc)[named].name == "from add"  # add --pin-name
    direct = rpc.add_bytes(random.randbytes(100), pin=False)
    assert rpc.pin(direct, recursive=False).type == "direct"
    assert _pinned(rpc)[direct].type == "direct"
    rpc.unpin(direct)


def test_blocks(rpc: KuboRPCBackend) -> None:
    import dag_cbor

    raw = random.randbytes(500)
    cid = rpc.block_put(raw)
    assert cid == cid_str(cid_of_block(raw))
    assert rpc.block_get(cid) == raw
    pb = bytes.fromhex("0a0408021800")  # an empty UnixFS file node
    assert rpc.block_put(pb, codec="dag-pb") == cid_str(cid_of_block(pb, codec="dag-pb"))
    cbor = dag_cbor.encode({"link": parse_cid(cid), "n": 1})
    cbor_cid = rpc.block_put(cbor, codec="dag-cbor")
    assert rpc.block_get(cbor_cid) == cbor
    with pytest.raises(InvalidInput):
        rpc.block_put(b"x", codec="nonsense")


def test_a_block_kubo_cannot_find_in_time_is_a_timeout_not_not_found(kubo: KuboDaemon) -> None:
    # Kubo searches the network until its --timeout; running out means "not found in
    # time", which is not "absent": it must not read as BlockNotFound.
    fast = KuboRPCBackend.connect(kubo.api_url, timeout=1.5)
    missing = cid_str(cid_of_block(b"never added anywhere " + random.randbytes(16)))
    with pytest.raises(Timeout) as info:
        fast.block_get(missing)
    assert not isinstance(info.value, BlockNotFound)
    assert missing in str(info.value) and "IPFS_API_TIMEOUT" in str(info.value)
    fast.close()


def test_dag_export_and_import(rpc: KuboRPCBackend, tmp_path: Path) -> None:
    tree = random_tree(tmp_path / "tree", random.Random("car"), files=6)
    root = cid_str(rpc.add_path(tree, pin=False).root)
    data = rpc.dag_export(root)
    assert data is not None
    roots, blocks = car.read_car(io.BytesIO(data))
    assert [cid_str(r) for r in roots] == [root]
    theirs = {bytes(c.digest) for c, _ in blocks}
    local = HFCacheBackend(Repo(tmp_path / "repo"))
    assert cid_str(local.add_path(tree).root) == root
    mine = car.read_car(io.BytesIO(local.dag_export(root) or b""))[1]
    assert {bytes(c.digest) for c, _ in mine} == theirs  # same DAG, whatever the order
    rpc.dag_export(root, tmp_path / "export.car")
    assert (tmp_path / "export.car").read_bytes() == data

    fresh = random.randbytes(700_000)  # never seen by the daemon
    new_root = local.add_bytes(fresh)
    report = rpc.dag_import(io.BytesIO(local.dag_export(new_root) or b""))
    assert [cid_str(r) for r in report.roots] == [new_root] and report.blocks == 4
    assert _pinned(rpc)[new_root].type == "recursive"
    assert rpc.cat(new_root) == fresh


def test_id_peers_and_providers(rpc: KuboRPCBackend, kubo: KuboDaemon) -> None:
    info = rpc.id()
    assert info["ID"] == kubo.peer_id
    assert kubo.dial_addr.removesuffix(f"/p2p/{kubo.peer_id}") in \
        [a.removesuffix(f"/p2p/{kubo.peer_id}") for a in info["Addresses"]]
    cid = rpc.add_bytes(b"provided by the daemon itself\n")
    providers = rpc.find_providers(cid, timeout=3)
    assert info["ID"] in [p.peer_id for p in providers]


def test_swarm_peers_and_providers_across_two_daemons(rpc: KuboRPCBackend, kubo: KuboDaemon,
                                                      own_daemon: KuboDaemon) -> None:
    from ipfs_mcp.backends.remote.kubo.cli import KuboCLIBackend

    cli = KuboCLIBackend.connect(kubo.cli_command, env=kubo.cli_env, timeout=60)
    assert own_daemon.peer_id not in [pid for pid, _ in rpc.swarm_peers()]
    own_daemon.connect(kubo.dial_addr)
    kubo.wait_for_peer(own_daemon.peer_id)
    for backend in (rpc, cli):
        peers = dict(backend.swarm_peers())
        assert peers[own_daemon.peer_id].startswith("/ip4/127.0.0.1/tcp/")
    # Only the other daemon holds it; the suite's daemon finds it through its LAN DHT.
    cid = own_daemon.add_bytes(b"provided by the other daemon " + random.randbytes(16))
    own_daemon.cli("routing", "provide", "--", cid, timeout=60)
    for backend in (rpc, cli):
        providers = backend.find_providers(cid, timeout=20)
        assert own_daemon.peer_id in [p.peer_id for p in providers]
    found = {p.peer_id: p for p in rpc.find_providers(cid, timeout=20)}
    assert any(a.startswith("/ip4/127.0.0.1/") for a in found[own_daemon.peer_id].addrs)


def test_api_address_forms(kubo: KuboDaemon) -> None:
    assert api_url_from(None) == "http://127.0.0.1:5001"
    assert api_url_from("/ip4/127.0.0.1/tcp/5001") == "http://127.0.0.1:5001"
    assert api_url_from("/ip4/127.0.0.1/tcp/5001/http") == "http://127.0.0.1:5001"
    assert api_url_from("/ip6/::1/tcp/5001") == "http://[::1]:5001"
    assert api_url_from("/dns4/localhost/tcp/5001/https") == "https://localhost:5001"
    assert api_url_from("http://127.0.0.1:5001/api/v0/") == "http://127.0.0.1:5001"
    for bad in ("/ip4/127.0.0.1/udp/5001", "ftp://x", "/unix/tmp/sock", "localhost:5001"):
        with pytest.raises(InvalidInput):
            api_url_from(bad)
    backend = KuboRPCBackend.connect(kubo.api_multiaddr)  # the repo's own api file form
    assert backend.id()["ID"] == kubo.peer_id
    backend.close()


def _free_port() -> int:
    # Bind, read the port, close: nothing listens there afterwards.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_no_daemon_is_unavailable_with_the_url_and_a_hint() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(BackendUnavailable) as info:
        KuboRPCBackend.connect(url, timeout=3)
    assert url in str(info.value) and "ipfs daemon" in str(info.value)


def test_an_injected_client_is_used_and_left_open(kubo: KuboDaemon) -> None:
    import httpx

    with httpx.Client(timeout=30) as client:
        backend = KuboRPCBackend.connect(kubo.api_url, client=client)
        assert backend.client is client
        assert backend.cat(backend.add_bytes(b"via my client\n")) == b"via my client\n"
        backend.close()  # the caller's client: not ours to close
        assert not client.is_closed
