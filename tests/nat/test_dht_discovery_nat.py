"""Two of our nodes, each behind its own NAT, meet through the DHT on a relay (see :mod:`.lab`).

A Kubo 0.43.1 in pub is both the DHT server and the relay. Our daemon A, behind cone NAT a,
joins it with ``--network public --bootstrap RELAY --relay RELAY``: it holds a slot there
and puts a provider record, carrying its circuit address, in the relay's DHT. In home b a
person runs ``ipfs-mcp get CID --network public --bootstrap RELAY``, knowing nothing of A:
the record comes from the DHT, the node dials A through the relay, DCUtR punches a direct
path, and the content arrives, every block checked against its CID. The test records the
time the record took to reach the DHT and the ``get``'s own time and rate.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from .lab import Internet, wait_until
from .test_public_preset_nat import OURS, _add_before_start

WAIT = 60.0  # seconds for each step, on a loaded 2-core machine
SIZE = 4 << 20  # past the relay's 128 KiB: only a direct connection carries it
_GET = [sys.executable, "-m", "ipfs_mcp.server.cli", "get"]

Record = Any  # pytest's record_property: figures printed at the end of the run (conftest)


def test_our_node_behind_nat_finds_another_through_the_dht_and_fetches_over_a_punched_path(
        internet: Internet, tmp_path: Path, record_property: Record) -> None:
    relay = internet.kubo(internet.add_public("relay"), relay_service=True, force_public=True,
                          autonat_service=True)
    home_a, home_b = internet.add_home("a"), internet.add_home("b")
    data = os.urandom(SIZE)
    cid = _add_before_start(internet, data)  # pinned: the daemon provides it as it starts
    a = internet.ours(home_a, "--network", "public", "--bootstrap", relay.dial_addr,
                      "--relay", relay.dial_addr, name=OURS)
    started = time.monotonic()
    wait_until(lambda: a.peer_id in relay.find_providers(cid, seconds=2), timeout=WAIT,
               what="A's provider record in the relay's DHT", interval=0.5)
    in_dht = time.monotonic() - started
    out = tmp_path / "fetched.bin"
    t = time.monotonic()
    done = internet.run(home_b, [*_GET, cid, "-o", str(out), "--network", "public",
                                 "--bootstrap", relay.dial_addr, "--json"],
                        timeout=WAIT * 3, env={"HF_HOME": str(tmp_path / "b-hf"),
                                               "HF_HUB_OFFLINE": "1"})
    took = time.monotonic() - t
    assert done.returncode == 0, (
        f"get failed ({done.returncode}): {done.stderr.decode(errors='replace')[-3000:]}")
    summary = json.loads(done.stdout.decode().strip().splitlines()[-1])
    # B was told only the relay, which holds no copy: A's id came from the DHT record.
    assert summary["providers"] == [a.peer_id], summary
    assert out.read_bytes() == data
    # The connection that carried it is direct: A's router, no relay in between.
    path = summary["provider_connections"][a.peer_id]
    assert path["direct"] and all("p2p-circuit" not in r for r in path["direct"]), path
    assert any(f"/ip4/{home_a.public_ip}/" in r for r in path["direct"]), path
    record_property("record_in_dht_s", round(in_dht, 2))
    record_property("get_s", round(float(summary["seconds"]), 2))
    record_property("get_process_s", round(took, 2))
    record_property("get_MiB_per_s", round(SIZE / (1 << 20) / float(summary["seconds"]), 2))
