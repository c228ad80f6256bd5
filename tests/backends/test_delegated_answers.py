"""A hostile delegated router's answers are bounded: in bytes, and in records taken.

The routers are tiny HTTP servers of the test's own on 127.0.0.1, deliberately oversized.
"""

from __future__ import annotations

import json

from ipfs_mcp.backends.core.cids import parse_cid
from ipfs_mcp.backends.retrieval.delegated_routing import MAX_ANSWER, MAX_RECORDS, DelegatedRouting

CID_TEXT = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
PEER = "12D3KooWGRUVh7cFyJxsdDuAqwsKL7hbjb3ozGzs3PWTb5cYigd5"


def _line(n: int) -> bytes:
    return (json.dumps({"Schema": "peer", "ID": f"{PEER}{n}", "Protocols": ["transport-bitswap"],
                        "Addrs": [f"/ip4/127.0.0.1/tcp/{4000 + n % 1000}"]}) + "\n").encode()


def test_an_oversized_router_answer_is_cut_off_and_reported(http_server_of_own) -> None:
    body = b"".join(_line(n) for n in range(MAX_ANSWER // 100 + 10))
    assert len(body) > MAX_ANSWER
    url = http_server_of_own(lambda path: (200, {"Content-Type": "application/x-ndjson"}, body))
    routing = DelegatedRouting([url])
    try:
        found, errors = routing.providers(parse_cid(CID_TEXT))
    finally:
        routing.close()
    assert found == []
    assert f"more than {MAX_ANSWER} bytes" in errors[url]


def test_a_router_answer_with_too_many_records_is_taken_only_up_to_the_bound(
        http_server_of_own) -> None:
    body = b"".join(_line(n) for n in range(MAX_RECORDS + 500))
    assert len(body) < MAX_ANSWER
    url = http_server_of_own(lambda path: (200, {"Content-Type": "application/x-ndjson"}, body))
    routing = DelegatedRouting([url])
    try:
        found, errors = routing.providers(parse_cid(CID_TEXT), limit=10 * MAX_RECORDS)
    finally:
        routing.close()
    assert errors == {}
    assert len(found) == MAX_RECORDS
    assert found[0].peer_id == f"{PEER}0" and found[-1].peer_id == f"{PEER}{MAX_RECORDS - 1}"
