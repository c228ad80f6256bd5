"""Errors as a person at the command line should read them: one line, in the CLI's words,
with a hint where one helps.

The project's errors are written for every caller (the MCP tools, the gateway, the CLI),
and some carry what only a developer can use: a decoder's complaint about base32 padding,
the repo's folder on disk. Here the CLI's commonest mistakes are said plainly: what a CID
and a peer address look like, that a block is not here and how to fetch it.
"""

from __future__ import annotations

from ipfs_mcp.backends.errors import (
    BlockNotFound,
    BlockNotFoundAnywhere,
    InvalidCID,
    InvalidInput,
    IpfsMcpError,
)

CID_LOOKS_LIKE = ("a CID looks like QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG (46 "
                  "characters) or bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi")
MULTIADDR_LOOKS_LIKE = ("a peer address is a multiaddr ending in the peer id, like "
                        "/ip4/127.0.0.1/tcp/4101/p2p/12D3KooW... (`ipfs-mcp id` on that "
                        "node prints its own)")
_CID_STARTS = ("Qm", "bafy", "bafk", "bafz", "baf", "k51", "z")


def explain(exc: IpfsMcpError) -> str:
    """``exc`` as the line the CLI prints after ``Error: ``."""
    if isinstance(exc, InvalidCID):
        return _bad_cid(str(exc.value))
    if isinstance(exc, BlockNotFound) and not isinstance(exc, BlockNotFoundAnywhere) \
            and "blockstore" in exc.where:  # only the repo was looked in (its path unsaid)
        return (f"{exc.cid} not found here (not in this repo): add --peer <multiaddr> to "
                "`ipfs-mcp get` to fetch it from a peer, or run the daemon joined to your "
                "peers (--bootstrap)")
    return str(exc)


def _bad_cid(value: str) -> str:
    text = value.strip("/").removeprefix("ipfs/").split("/")[0]
    if text.startswith(_CID_STARTS) and len(text) > 20:
        return (f"{text!r} is not a valid CID: it starts like one, but a character is wrong "
                "or missing (copy it again)")
    return f"{text!r} is not a CID: {CID_LOOKS_LIKE}"


def check_peer_address(flag: str, addr: str) -> None:
    """Refuse, before any node starts, a ``--peer`` or ``--bootstrap`` value that is not a
    peer multiaddr.

    Raises:
        InvalidInput: it is not a multiaddr, or it names no peer id.
    """
    import multiaddr

    try:
        parsed = multiaddr.Multiaddr(addr)
        names = [protocol.name for protocol in parsed.protocols()]
        peer = parsed.value_for_protocol("p2p") if "p2p" in names else None
    except Exception:  # the library raises several unrelated types for bad input
        raise InvalidInput(f"{flag} {addr}: not a multiaddr; {MULTIADDR_LOOKS_LIKE}") from None
    if "p2p-circuit" in names:  # its first /p2p/ is the relay; the peer comes after
        after = addr.split("/p2p-circuit", 1)[1]
        peer = after.removeprefix("/p2p/") if after.startswith("/p2p/") else None
    if not peer:
        raise InvalidInput(f"{flag} {addr} names no peer: add /p2p/<peer id>; "
                           f"{MULTIADDR_LOOKS_LIKE}")
