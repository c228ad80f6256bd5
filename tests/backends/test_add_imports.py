"""``ipfs-mcp add`` loads only what an add uses.

Every add is a process of its own, so each module it imports is paid on every run (the
DNS resolver stack alone cost about 0.25 s, Kubo's HTTP client and its CLI another 0.1 s).
The test runs the command's ``main`` in a fresh interpreter and lists the modules loaded
by the end, and whether the rabin chunker's tables (made in Python, a few ms) were built:
counts, not clocks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# Stacks an add never uses: DNS resolution (DNSLink), HTTP clients (Kubo's RPC, trustless
# gateways), the MCP SDK, py-libp2p and its trio loop, the HuggingFace hub client, the name
# commands (IPNS records, DNSLink).
UNUSED_BY_ADD = ("dns.resolver", "dns.asyncresolver", "dns.nameserver", "httpx", "rich",
                 "mcp", "libp2p", "trio", "huggingface_hub", "hypercorn", "dns",
                 "ipfs_mcp.tools.names", "ipfs_mcp.backends.core.ipns")

_RUN = """
import json, sys
from ipfs_mcp.server import cli
from ipfs_mcp.backends.core import chunkers
status = cli.main(["add", "-Q", sys.argv[1]])
print(json.dumps({"status": status, "modules": sorted(sys.modules),
                  "rabin_tables": chunkers._rabin_tables.cache_info().currsize}))
"""


def test_ipfs_mcp_add_imports_no_network_stack(tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(300_000))  # two leaves and a root: the whole add path
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", _RUN, str(data)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    cid, report = done.stdout.strip().splitlines()
    assert cid.startswith("Qm")
    result = json.loads(report)
    assert result["status"] == 0
    loaded = set(result["modules"])
    assert not loaded.intersection(UNUSED_BY_ADD), sorted(loaded.intersection(UNUSED_BY_ADD))
    assert result["rabin_tables"] == 0  # a size-N add never builds them
