"""Hole punching through NATs on the lab's internet (see :mod:`.lab`).

A Kubo 0.43.1 in pub is the relay. Our daemon A sits behind a cone NAT with a slot on it;
our node B, behind another NAT, runs in its namespace (a short program, :data:`_PEER`, so
it can report its connections and times), reaches A through the relay, and DCUtR punches a
direct path: the connection's remote address has no ``/p2p-circuit``, and a 64 MiB DAG
moves over it, verified block by block against its CID. With B behind a symmetric NAT (a
random port per flow) no punch can work: a small file still arrives over the relay, and a
large one fails saying why. Our node behind one NAT and Kubo behind another swap a file
both ways. Each test records its figures (printed at the end of the run): time to the
relayed connection, to the direct one, and the transfer rate over each.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from .lab import Home, Internet, LabKubo, OurNode, wait_until

WAIT = 60.0  # seconds for each step, on a loaded 2-core machine
BIG = 64 << 20
# The relay's limit (Kubo's default): 128 KiB each way per relayed connection.
SMALL = 48 << 10

# Our node B in its home: it connects to A through the relay, waits (bounded) for a direct
# connection, fetches what it is asked, and prints one JSON line of what it saw.
_PEER = r"""
import json, sys, time, trio
from multiformats import CID
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.p2p import NodeConfig, open_node
from ipfs_mcp.p2p.relay.limits import direct_connections, wait_direct
from ipfs_mcp.backends.errors import IpfsMcpError

args = json.loads(sys.argv[1])

async def main():
    out = {}
    config = NodeConfig(listen_addrs=(f"/ip4/{args['ip']}/tcp/{args['port']}",),
                        bootstrap=(args["relay"],), named_peers=(args["circuit"],),
                        relay_direct_wait=args["direct_wait"], fetch_dag_timeout=300.0)
    async with open_node(Repo(args["repo"], fsync=False), config) as node:
        started = time.monotonic()
        with trio.fail_after(60):
            for _ in range(120):  # until A's reservation is in place
                try:
                    a = await node.connect_peer(args["circuit"], timeout=10)
                    break
                except IpfsMcpError as exc:
                    out["retry"] = str(exc)
                    await trio.sleep(0.5)
        out["relayed_s"] = time.monotonic() - started
        a_id = next(p for p in node.connected_peers() if str(p) == a)
        for cid in args["small"]:
            t = time.monotonic()
            report = await node.fetch_dag(cid, providers=[a])
            out.setdefault("small", []).append(
                {"cid": cid, "s": time.monotonic() - t,
                 "direct": bool(direct_connections(node.host, a_id))})
        if await wait_direct(node.host, a_id, args["direct_wait"]):
            out["direct_s"] = time.monotonic() - started
            out["direct_remote"] = [str(x) for c in direct_connections(node.host, a_id)
                                    for x in c.get_transport_addresses()]
        out["punches"] = [p.__dict__ for p in node.holepunch.punches]
        for cid in args["big"]:
            t = time.monotonic()
            try:
                report = await node.fetch_dag(cid, providers=[a])
            except IpfsMcpError as exc:
                out.setdefault("big", []).append({"cid": cid, "error": str(exc),
                                                  "type": type(exc).__name__})
                continue
            out.setdefault("big", []).append(
                {"cid": cid, "bytes": report.bytes_fetched, "s": time.monotonic() - t})
        # What we hold is what was asked for: every block was checked against its CID.
        out["local"] = {c: node.blockstore.has(CID.decode(c))
                        for c in args["small"] + args["big"]}
    print(json.dumps(out, default=str), flush=True)

trio.run(main)
"""


def _daemon_with_slot(internet: Internet, home: Home, relay: LabKubo) -> OurNode:
    return internet.ours(home, "--relay", relay.dial_addr)


def _add(node: OurNode, path: Path, size: int) -> str:
    path.write_bytes(os.urandom(size))
    return node.cli("add", "-Q", str(path)).decode().strip()


def _run_b(internet: Internet, home: Home, relay: LabKubo, peer_id: str, tmp: Path, *,
           small: list[str], big: list[str], direct_wait: float, port: int = 4001
           ) -> dict[str, Any]:
    """Run :data:`_PEER` in ``home``: our node reaches ``peer_id`` through the relay."""
    args = {"ip": home.ip, "port": port, "relay": relay.dial_addr,
            "repo": str(tmp / f"repo-{home.name}-{port}"),
            "circuit": f"{relay.dial_addr}/p2p-circuit/p2p/{peer_id}",
            "small": small, "big": big, "direct_wait": direct_wait}
    done = internet.run(home, [sys.executable, "-c", _PEER, json.dumps(args)],
                        timeout=WAIT * 6, env={"HF_HUB_OFFLINE": "1"})
    lines = done.stdout.decode().strip().splitlines()
    assert done.returncode == 0 and lines, (
        f"B failed ({done.returncode}): {done.stderr.decode(errors='replace')[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _mib_s(entry: dict[str, Any], size: int) -> float:
    return round(size / (1 << 20) / float(entry["s"]), 2)


Record = Any  # pytest's record_property: figures printed at the end of the run (conftest)


def test_two_of_our_nodes_behind_cone_nats_punch_through_and_move_64_mib_direct(
        internet: Internet, tmp_path: Path, record_property: Record) -> None:
    relay = internet.kubo(internet.add_public("relay"), relay_service=True, force_public=True)
    home_a, home_b = internet.add_home("a"), internet.add_home("b")
    a = _daemon_with_slot(internet, home_a, relay)
    small = _add(a, tmp_path / "small.bin", SMALL)
    big = _add(a, tmp_path / "big.bin", BIG)
    seen = _run_b(internet, home_b, relay, a.peer_id, tmp_path, small=[small], big=[big],
                  direct_wait=WAIT)
    assert "direct_s" in seen, f"no direct connection: {seen}"
    remote = seen["direct_remote"]
    assert remote and all("p2p-circuit" not in r for r in remote)
    assert any(home_a.public_ip in r for r in remote)
    (fetched,) = seen["big"]
    assert "error" not in fetched and fetched["bytes"] >= BIG, fetched
    assert all(seen["local"].values())
    first = seen["small"][0]
    # The small file is one block, held whole (its root is fetched and checked first).
    record_property("relayed_connection_s", round(float(seen["relayed_s"]), 2))
    record_property("direct_connection_s", round(float(seen["direct_s"]), 2))
    record_property("small_fetch_was_direct", bool(first["direct"]))
    record_property("direct_64MiB_MiB_per_s", _mib_s(fetched, BIG))


def test_behind_a_symmetric_nat_small_content_comes_over_the_relay_and_large_fails_clearly(
        internet: Internet, tmp_path: Path, record_property: Record) -> None:
    relay = internet.kubo(internet.add_public("relay"), relay_service=True, force_public=True)
    home_a, home_b = internet.add_home("a"), internet.add_home("b", symmetric=True)
    a = _daemon_with_slot(internet, home_a, relay)
    small = _add(a, tmp_path / "small.bin", SMALL)
    large = _add(a, tmp_path / "large.bin", 1 << 20)
    seen = _run_b(internet, home_b, relay, a.peer_id, tmp_path, small=[small], big=[large],
                  direct_wait=8.0)
    (over_relay,) = seen["small"]
    assert seen["local"][small] and not over_relay["direct"], seen
    assert "direct_s" not in seen, f"a direct connection through a symmetric NAT: {seen}"
    (refused,) = seen["big"]
    assert refused.get("type") == "RelayLimitExceeded", refused
    assert "relay" in refused["error"] and "hole punching" in refused["error"], refused
    record_property("relayed_connection_s", round(float(seen["relayed_s"]), 2))
    record_property("relay_48KiB_MiB_per_s", _mib_s(over_relay, SMALL))


# Behind NAT with nobody to ask (no AutoNAT server in the lab): Kubo must be told it is
# unreachable, or it never wants a reservation. And with no DHT in the lab to find
# providers, its bitswap must ask every connected peer (as Kubo before 0.36 did), not only
# those its broadcast control picks.
_PRIVATE = {"Internal.Libp2pForceReachability": "private",
            "Internal.Bitswap.BroadcastControl.Enable": False}


def test_our_node_and_kubo_behind_separate_nats_punch_through_and_swap_files(
        internet: Internet, tmp_path: Path, record_property: Record) -> None:
    relay = internet.kubo(internet.add_public("relay"), relay_service=True, force_public=True)
    home_a, home_b = internet.add_home("a"), internet.add_home("b")
    a = _daemon_with_slot(internet, home_a, relay)
    kb = internet.kubo(home_b, relays=[relay.dial_addr], config=_PRIVATE)
    circuit = f"{relay.dial_addr}/p2p-circuit/p2p/{a.peer_id}"
    # Kubo answers hole punching only once it holds an address to offer (behind its NAT, its
    # relayed one); our node starts DCUtR the moment Kubo's relayed connection lands.
    wait_until(lambda: any("/p2p-circuit" in x for x in kb.rpc("id")["Addresses"]),
               timeout=WAIT, what="Kubo's relay reservation")
    started = time.monotonic()

    def connected() -> bool:
        try:
            return "success" in kb.rpc("swarm/connect", arg=circuit)["Strings"][0]
        except Exception:  # NO_RESERVATION until A's slot is in place: asked again
            return False

    wait_until(connected, timeout=WAIT, what="Kubo reaching our node through the relay",
               interval=0.5)
    relayed = time.monotonic() - started
    direct = wait_until(
        lambda: [c for c in kb.connections(a.peer_id) if "/p2p-circuit" not in c],
        timeout=WAIT, what="a direct connection between Kubo and our node")
    punched = time.monotonic() - started
    assert any(home_a.public_ip in c for c in direct), direct
    # Kubo takes a file from us (Kubo runs bitswap on no limited connection: this is direct).
    ours = tmp_path / "ours.bin"
    cid_a = _add(a, ours, 1 << 20)
    t = time.monotonic()
    assert kb.cli("cat", cid_a, timeout=WAIT) == ours.read_bytes()
    kubo_took = time.monotonic() - t
    # And our node behind the same NAT takes one from Kubo: through the relay to Kubo, whose
    # DCUtR (Kubo initiates now) gives the direct path the 1 MiB needs.
    theirs = tmp_path / "theirs.bin"
    theirs.write_bytes(os.urandom(1 << 20))
    cid_k = kb.cli("add", "-Q", str(theirs)).decode().strip()
    seen = _run_b(internet, home_a, relay, kb.peer_id, tmp_path, small=[], big=[cid_k],
                  direct_wait=WAIT, port=4002)
    (took,) = seen["big"]
    assert "error" not in took and seen["local"][cid_k], seen
    assert any(home_b.public_ip in r for r in seen["direct_remote"])
    record_property("kubo_to_us_relayed_s", round(relayed, 2))
    record_property("kubo_to_us_direct_s", round(punched, 2))
    record_property("1MiB_to_kubo_s", round(kubo_took, 2))
    record_property("us_to_kubo_relayed_s", round(float(seen["relayed_s"]), 2))
    record_property("us_to_kubo_direct_s", round(float(seen["direct_s"]), 2))
    record_property("1MiB_from_kubo_MiB_per_s", _mib_s(took, 1 << 20))
