"""Every decoder that reads bytes a content provider chose, fuzzed: nothing but the project's
own errors (``IpfsMcpError`` and its subclasses) may escape any of them.

Each property gets raw bytes and, where raw bytes rarely reach deep code, structured but
hostile input (a CAR header with a 10-byte length varint, dag-cbor with 8-byte lengths or
nested 100,000 deep, a CID whose multihash we cannot compute, a packed UnixFS ``blocksizes``
with a cut-off varint, ...).

Budget: in the suite each property runs ``FUZZ_EXAMPLES`` examples (the whole module takes
seconds). ``IPFS_MCP_FUZZ_LONG=1`` runs the properties again and again with fresh random
input for ``IPFS_MCP_FUZZ_SECONDS`` seconds in total (default 3600, shared equally between
the properties) and prints how many examples each one ran::

    IPFS_MCP_FUZZ_LONG=1 IPFS_MCP_FUZZ_SECONDS=600 \\
        python -m pytest -p no:cacheprovider -q -s tests/security/test_fuzz_decoders.py
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from typing import Any

import dag_cbor
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multiformats import CID

from ipfs_mcp.backends.core import car, cids, dag, dagpb, unixfs, varint
from ipfs_mcp.backends.core.protobuf import bytes_field, key, varint_field
from ipfs_mcp.backends.errors import IpfsMcpError
from ipfs_mcp.p2p import host as p2p_host
from ipfs_mcp.p2p.bitswap import message
from ipfs_mcp.server.gateway import request as gateway_request
from ipfs_mcp.server.gateway import resolve as gateway_resolve

LONG = os.environ.get("IPFS_MCP_FUZZ_LONG") == "1"
LONG_SECONDS = float(os.environ.get("IPFS_MCP_FUZZ_SECONDS", "3600"))
FUZZ_EXAMPLES = 60

# -- hostile shapes ------------------------------------------------------------------------
KECCAK = 0x1B  # keccak-256: multiformats knows it but needs pycryptodome to compute it
_HASH_CODES = st.sampled_from([0x00, 0x12, 0x13, 0x16, 0x1B, 0x1D, 0xB220, 0x1E, 0x99])
_CODECS = st.sampled_from([0x55, 0x70, 0x71, 0x0129, 0x72, 0x12345])


def _cid_bytes(version: int, codec: int, code: int, digest: bytes) -> bytes:
    return (varint.encode(version) + varint.encode(codec) + varint.encode(code)
            + varint.encode(len(digest)) + digest)


hostile_cids = st.builds(_cid_bytes, st.sampled_from([0, 1, 2, 3]), _CODECS, _HASH_CODES,
                         st.binary(max_size=40))


def _cbor_head(major: int, extra: int, arg: bytes) -> bytes:
    return bytes([(major << 5) | extra]) + arg


# Heads with 1- to 8-byte arguments (lengths of strings, lists, maps; tags; floats).
cbor_heads = st.builds(_cbor_head, st.integers(0, 7), st.sampled_from([24, 25, 26, 27, 28, 31]),
                       st.binary(min_size=0, max_size=8))
deep_cbor = st.builds(lambda head, depth, tail: head * depth + tail,
                      st.sampled_from([b"\x81", b"\xa1\x61a", b"\xd8\x2a\x81", b"\x9f"]),
                      st.integers(1, 100_000), st.binary(max_size=4))
cbor_blocks = st.one_of(
    st.binary(max_size=256),
    cbor_heads,
    deep_cbor,
    st.builds(lambda a, b: a + b, cbor_heads, st.binary(max_size=64)),
    # Well-formed blocks too: integers within CBOR's range (the encoder refuses the rest,
    # which the long run found as a fault of this strategy, not of a decoder).
    st.builds(lambda items: dag_cbor.encode(items),
              st.lists(st.integers(-(2**64), 2**64 - 1), max_size=5)),
)


def _packed(values: list[int], cut: int) -> bytes:
    packed = b"".join(varint.encode(v) for v in values) + b"\x80" * cut
    return bytes_field(4, packed)


unixfs_messages = st.one_of(
    st.binary(max_size=128),
    st.builds(lambda t, fs, packed: varint_field(1, t) + varint_field(3, fs) + packed,
              st.integers(0, 8), st.integers(0, 2**64 - 1),
              st.builds(_packed, st.lists(st.integers(0, 2**64 - 1), max_size=4),
                        st.integers(0, 11))),
    st.builds(lambda fields: b"".join(fields), st.lists(st.one_of(
        st.builds(varint_field, st.integers(1, 9), st.integers(0, 2**64 - 1)),
        st.builds(bytes_field, st.integers(1, 9), st.binary(max_size=16)),
        st.builds(lambda f, w: key(f, w), st.integers(1, 9), st.integers(0, 7)),
    ), max_size=6)),
)


def _pb_node(links: list[bytes], data: bytes | None) -> bytes:
    return dagpb.encode_node(links, data)


dagpb_blocks = st.one_of(
    st.binary(max_size=256),
    st.builds(_pb_node,
              st.lists(st.builds(lambda c, n, s: bytes_field(2, bytes_field(1, c)
                                                             + bytes_field(2, n)
                                                             + varint_field(3, s)),
                                 hostile_cids, st.binary(max_size=8), st.integers(0, 2**64 - 1)),
                       max_size=4),
              st.one_of(st.none(), unixfs_messages)),
)


def _car(header: bytes, sections: list[bytes], length: bytes | None) -> bytes:
    head = varint.encode(len(header)) if length is None else length
    body = b"".join(varint.encode(len(s)) + s for s in sections)
    return head + header + body


def _root_header(roots: list[bytes]) -> bytes:
    return dag_cbor.encode({"roots": [CID.decode(r) for r in roots], "version": 1})


good_root = cids.cid_of_block(b"root").__bytes__()
car_headers = st.one_of(st.binary(max_size=64), cbor_blocks,
                        st.just(_root_header([good_root])),
                        st.builds(lambda depth: b"\x81" * depth + b"\x00",
                                  st.integers(1000, 100_000)))
car_sections = st.lists(st.one_of(
    st.binary(max_size=64),
    st.builds(lambda cid, block: cid + block, hostile_cids, st.binary(max_size=32)),
    st.builds(lambda block: _cid_bytes(1, 0x55, KECCAK, b"\x00" * 32) + block,
              st.binary(max_size=16)),
), max_size=3)
car_files = st.one_of(
    st.binary(max_size=256),
    st.builds(_car, car_headers, car_sections,
              st.one_of(st.none(), st.just(b"\xff" * 9 + b"\x01"), st.binary(max_size=10))),
    st.builds(lambda head, tail: bytes.fromhex("0aa16776657273696f6e02") + head + tail,
              st.binary(min_size=40, max_size=40), st.binary(max_size=64)),
)

bitswap_messages = st.one_of(
    st.binary(max_size=256),
    st.builds(lambda entries: bytes_field(1, b"".join(bytes_field(1, e) for e in entries)),
              st.lists(st.builds(lambda c, p: bytes_field(1, c) + varint_field(2, p),
                                 hostile_cids, st.integers(0, 2**64 - 1)), max_size=3)),
    st.builds(lambda prefix, data: bytes_field(3, bytes_field(1, prefix) + bytes_field(2, data)),
              st.one_of(st.binary(max_size=12),
                        st.builds(lambda v, c, h, n: (varint.encode(v) + varint.encode(c)
                                                      + varint.encode(h) + varint.encode(n)),
                                  st.integers(0, 3), _CODECS, _HASH_CODES, st.integers(0, 80))),
              st.binary(max_size=32)),
    st.builds(lambda c, k: bytes_field(4, bytes_field(1, c) + varint_field(2, k)),
              hostile_cids, st.integers(0, 2**64 - 1)),
)

multiaddrs = st.one_of(
    st.text(max_size=80),
    st.builds(lambda parts: "/" + "/".join(parts), st.lists(st.one_of(
        st.sampled_from(["ip4", "ip6", "tcp", "udp", "p2p", "ipfs", "dns4", "quic-v1", "http",
                         "p2p-circuit", "unix", "1.2.3.4", "::1", "99999", "-1", "QmX"]),
        st.text(max_size=12)), max_size=8)),
)

gateway_paths = st.one_of(
    st.binary(max_size=128),
    st.builds(lambda cid, rest: b"/ipfs/" + cid.encode() + rest,
              st.sampled_from([cids.cid_str(cids.cid_of_block(b"x")), "Qm", "bafy", "%ff", ""]),
              st.binary(max_size=64)),
)
ranges = st.one_of(st.text(max_size=40),
                   st.builds(lambda s: "bytes=" + s, st.text(alphabet="0123456789-, ",
                                                            max_size=60)))


# -- the properties ------------------------------------------------------------------------
def _only_ours(call: Callable[[], object]) -> None:
    """Run ``call``; an error that is not the project's fails the property."""
    try:
        call()
    except IpfsMcpError:
        pass


def _decode_varint(data: bytes) -> None:
    _only_ours(lambda: varint.decode(data, 0))
    _only_ours(lambda: varint.decode(data, 0, strict=True))


def _read_car(data: bytes) -> None:
    def run() -> None:
        _, blocks = car.read_car(io.BytesIO(data))
        for _ in blocks:
            pass
    _only_ours(run)


def _cbor_links(block: bytes) -> None:
    cid = cids.cid_of_block(block, codec=cids.DAG_CBOR)
    _only_ours(lambda: dag.links_of(cid, block))


def _resolve_cbor(block: bytes) -> None:
    cid = cids.cid_of_block(block, codec=cids.DAG_CBOR)
    blocks = {bytes(cid.digest): block}

    def load(want: CID) -> bytes:
        found = blocks.get(bytes(want.digest))
        if found is None:
            from ipfs_mcp.backends.errors import BlockNotFound
            raise BlockNotFound(want)
        return found
    _only_ours(lambda: gateway_resolve.resolve(cid, ("a", "0", "x"), load))


def _dagpb(block: bytes) -> None:
    cid = cids.cid_of_block(block, version=0, codec=cids.DAG_PB)
    _only_ours(lambda: dag.links_of(cid, block))
    _only_ours(lambda: gateway_resolve.unixfs_node(cid, block))
    _only_ours(lambda: gateway_resolve.file_size(cid, block))


def _unixfs(data: bytes) -> None:
    _only_ours(lambda: unixfs.decode(data))
    block = dagpb.encode_node([], data)
    cid = cids.cid_of_block(block, version=0, codec=cids.DAG_PB)
    _only_ours(lambda: gateway_resolve.file_size(cid, block))


def _bitswap(data: bytes) -> None:
    def run() -> None:
        msg = message.decode_message(data)
        for payload in msg.payloads:
            message.block_cid(payload)
    _only_ours(run)


def _cid(raw: bytes) -> None:
    _only_ours(lambda: cids.parse_cid(raw))
    _only_ours(lambda: cids.parse_cid(raw.decode("latin-1")))

    def verify() -> None:
        cid = cids.parse_cid(raw)
        cids.verify_block(cid, b"block")
    _only_ours(verify)


def _multiaddr(text: str) -> None:
    _only_ours(lambda: p2p_host.parse_multiaddr(text))
    _only_ours(lambda: p2p_host.peer_info_from_addr(text))


def _gateway_path(raw: bytes) -> None:
    _only_ours(lambda: gateway_request.parse_request(raw, raw, raw.decode("latin-1")))
    _only_ours(lambda: gateway_request.parse_request(raw, b"format=car&dag-scope=entity"
                                                     b"&entity-bytes=" + raw[:20], ""))


def _range(header: str) -> None:
    _only_ours(lambda: gateway_request.parse_range(header, 1000))


PROPERTIES: dict[str, tuple[Callable[[Any], None], st.SearchStrategy[Any]]] = {
    "varint": (_decode_varint, st.binary(max_size=16)),
    "car": (_read_car, car_files),
    "dag-cbor links": (_cbor_links, cbor_blocks),
    "dag-cbor path": (_resolve_cbor, cbor_blocks),
    "dag-pb": (_dagpb, dagpb_blocks),
    "unixfs": (_unixfs, unixfs_messages),
    "bitswap": (_bitswap, bitswap_messages),
    "cid": (_cid, st.one_of(st.binary(max_size=64), hostile_cids)),
    "multiaddr": (_multiaddr, multiaddrs),
    "gateway path": (_gateway_path, gateway_paths),
    "gateway range": (_range, ranges),
}
COUNTS: dict[str, int] = {}

_KECCAK_SECTION = _cid_bytes(1, 0x55, KECCAK, b"\x00" * 32) + b"block"
# The crashes fuzzing found before these decoders were bounded, kept as fixed examples.
KNOWN: list[tuple[str, Any]] = [
    ("car", _car(b"\x7b" + b"\xff" * 8, [], None)),  # OverflowError from a random header
    ("car", b"\xff" * 9 + b"\x01"),  # a 10-byte header-length varint (ValueError)
    ("car", _car(b"\x81" * 100_000 + b"\x00", [], None)),  # RecursionError
    ("car", _car(_root_header([good_root]), [_KECCAK_SECTION], None)),  # ImportError
    ("dag-cbor links", b"\x5b" + b"\xff" * 8),  # 8-byte length: OverflowError
    ("dag-cbor links", b"\x81" * 100_000 + b"\x00"),  # RecursionError
    ("dag-cbor path", b"\xa1\x61a" * 50_000 + b"\x00"),
    ("unixfs", varint_field(1, 2) + bytes_field(4, b"\x05\x80")),  # packed, cut off
    ("bitswap", bytes_field(3, bytes_field(1, b"\x01\x55\x1b\x20") + bytes_field(2, b"x"))),
    ("cid", _KECCAK_SECTION[:36]),
]


@pytest.mark.parametrize(("name", "value"), KNOWN, ids=[f"{n}-{i}" for i, (n, _) in
                                                       enumerate(KNOWN)])
def test_known_crashes_are_project_errors(name: str, value: Any) -> None:
    PROPERTIES[name][0](value)


@pytest.mark.parametrize("name", sorted(PROPERTIES))
def test_only_project_errors_escape(name: str) -> None:
    prop, strategy = PROPERTIES[name]

    def counted(value: Any) -> None:
        COUNTS[name] = COUNTS.get(name, 0) + 1
        prop(value)

    run = settings(max_examples=FUZZ_EXAMPLES if not LONG else 2000, deadline=None,
                   database=None, derandomize=not LONG,
                   suppress_health_check=list(HealthCheck))(given(strategy)(counted))
    run()
    if not LONG:
        return
    # A long session: fresh random runs until this property's share of the time is spent.
    end = time.monotonic() + LONG_SECONDS / len(PROPERTIES)
    while time.monotonic() < end:
        run()
    print(f"\nfuzz {name}: {COUNTS[name]} examples, no error outside the project's tree")
