"""``--network public`` on the lab's internet: our daemon joins the DHT through a Kubo 0.43.1
DHT server there (its bootstrap peer, in place of the real network's), which lands in our
WAN routing table (the LAN one stays empty), puts a provider record in that Kubo's WAN DHT,
and a Kubo behind a home NAT finds the record and fetches the content from us.

The daemon also listens on its namespace's loopback: the WAN record must not carry that
address. Every address lives in the lab's namespaces; nothing leaves the machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

from .lab import Internet, Public, seconds_until

WAIT = 60.0  # seconds for each step, on a loaded 2-core machine
OURS = "ours-public"


def _until(what: str, ready: Callable[[], object], timeout: float = WAIT) -> float:
    return seconds_until(what, ready, timeout, interval=0.2)


def _add_before_start(net: Internet, data: bytes) -> str:
    """Add ``data`` to the repo the daemon named :data:`OURS` will run on (pinned, so the
    daemon provides it when it starts, as Kubo's reprovider does); its CID."""
    home = net.base_dir / OURS / "hf"
    home.mkdir(parents=True)
    path = net.base_dir / "shared.txt"
    path.write_bytes(data)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("IPFS_MCP_")},
           "HF_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "ipfs_mcp.server.cli", "add", "-Q",
                           str(path)], env=env, capture_output=True, timeout=WAIT,
                          check=True)
    return done.stdout.decode().strip()


def _metrics(net: Internet, where: Public, url: str) -> dict[str, float]:
    """The daemon's Prometheus numbers (read inside its namespace, where it serves them)."""
    read = "import sys, httpx; print(httpx.get(sys.argv[1], timeout=20).text)"
    done = net.run(where, [sys.executable, "-c", read, url], timeout=WAIT)
    assert done.returncode == 0, done.stderr
    numbers: dict[str, float] = {}
    for line in done.stdout.decode().splitlines():
        name, _, value = line.partition(" ")
        if name.startswith("ipfs_mcp_dht_"):
            numbers[name] = float(value)
    return numbers


def test_a_public_node_provides_through_the_wan_to_a_kubo_behind_nat(
        internet: Internet) -> None:
    data = b"a model card, shared from one network to another\n" * 100
    cid = _add_before_start(internet, data)
    server = internet.kubo(internet.add_public("dht"), autonat_service=True,
                           force_public=True)
    ours_at = internet.add_public("ours")
    started = time.monotonic()
    ours = internet.ours(ours_at, "--network", "public", "--bootstrap", server.dial_addr,
                         "--listen", "/ip4/127.0.0.1/tcp/4002", name=OURS)
    card = ours.card()
    assert card["network"] == "public"
    # Our daemon reached its bootstrap peer and put the record in the server's WAN DHT.
    joined = _until("our record in the Kubo server's DHT", lambda: ours.peer_id in
                    server.find_providers(cid, seconds=2))
    # The Kubo, at a public address, sits in our WAN table; the LAN table holds no one.
    tables = _metrics(internet, ours_at, card["metrics"])
    assert tables["ipfs_mcp_dht_wan_table_size"] >= 1, tables
    assert tables["ipfs_mcp_dht_lan_table_size"] == 0, tables
    home = internet.add_home("friend")
    friend = internet.kubo(home, bootstrap=[server.dial_addr])
    friend.wait_for_dht_peer(server.peer_id, table="wan", timeout=WAIT)
    found = _until("the record, from behind NAT", lambda: ours.peer_id in
                   friend.find_providers(cid, seconds=5))
    # What the friend's Kubo learnt of us holds no loopback or private address.
    answer = friend.rpc("routing/findprovs", arg=cid, num_providers=1, timeout=WAIT)
    ours_addrs = [a for r in (answer if isinstance(answer, list) else [answer])
                  for p in (r.get("Responses") or []) if p.get("ID") == ours.peer_id
                  for a in (p.get("Addrs") or [])]
    assert ours_addrs and not any("/127.0.0.1/" in a for a in ours_addrs), ours_addrs
    fetched = friend.cli("cat", cid, timeout=WAIT)
    assert fetched == data
    print(f"\nrecord in the WAN DHT {joined:.2f} s after the daemon was up "
          f"({time.monotonic() - started:.2f} s since its start); found from behind NAT in "
          f"{found:.2f} s; addresses: {ours_addrs}")
