"""One of our nodes with mDNS on, as a process: the mDNS test runs two of these inside a
network namespace of its own.

    python mdns_peer.py --repo DIR --listen MULTIADDR --add FILE
    python mdns_peer.py --repo DIR --listen MULTIADDR --fetch CID --peer PEER_ID --out FILE

Neither is given the other's address. Each prints, one line at a time on stdout:
``ready <peer id>``, then ``added <cid>`` (adder), ``connected <peer id>`` once a peer
found by mDNS is connected and identified, and ``fetched <bytes>`` (fetcher, after
writing the content to ``--out``). The adder then serves until its stdin closes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import trio

from ipfs_mcp.backends.core.cids import cid_str, parse_cid
from ipfs_mcp.backends.core.exporter import Exporter
from ipfs_mcp.backends.core.importer import Importer, ImportOptions
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.p2p import NodeConfig, open_node

# Each step waits at most this long; the test bounds the whole exchange as well.
STEP_TIMEOUT = 60.0


def say(*words: object) -> None:
    print(*words, flush=True)


async def run(args: argparse.Namespace) -> None:
    repo = Repo(Path(args.repo), fsync=False)
    config = NodeConfig(listen_addrs=(args.listen,), mdns=True)
    async with open_node(repo, config) as node:
        say("ready", node.peer_id)
        if args.add:
            data = Path(args.add).read_bytes()
            cid = Importer(sink=repo.blocks, options=ImportOptions(cid_version=1)
                           ).add_bytes(data).cid_obj
            say("added", cid_str(cid))
            say("connected", await node.wait_for_peer(timeout=STEP_TIMEOUT))
            await trio.to_thread.run_sync(sys.stdin.buffer.read)  # serve until stdin closes
            return
        say("connected", await node.wait_for_peer(args.peer, timeout=STEP_TIMEOUT))
        root = parse_cid(args.fetch)
        with trio.fail_after(STEP_TIMEOUT):
            await node.fetch_dag(root)
        data = Exporter(repo.blocks.get).read(root)
        Path(args.out).write_bytes(data)
        say("fetched", len(data))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repo", required=True)
    parser.add_argument("--listen", required=True)
    parser.add_argument("--add")
    parser.add_argument("--fetch")
    parser.add_argument("--peer")
    parser.add_argument("--out")
    trio.run(run, parser.parse_args())


if __name__ == "__main__":
    main()
