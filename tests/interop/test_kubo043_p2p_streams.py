"""Custom protocol handlers (``register_protocol_handler``) against Kubo 0.43's libp2p stream
mounting (``Experimental.Libp2pStreamMounting``, ``ipfs p2p``): Kubo forwards a TCP
connection to our handler, and our node reaches a TCP service that Kubo mounts. Then the
rules, between two of our nodes: only ``/x/`` ids, never a built-in protocol, a bounded
number of streams per handler."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
import trio
from p2p.nodes import node_at

from ipfs_mcp.backends.errors import InvalidInput, NetworkError
from ipfs_mcp.p2p.protocols import ProtocolStream

from .kubo_daemon import KuboDaemon

pytestmark = pytest.mark.anyio

ECHO = "/x/echo/1.0"
MOUNTING = {"Experimental.Libp2pStreamMounting": True}


async def run(fn: Callable[[], object]) -> object:
    return await anyio.to_thread.run_sync(fn)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _round_trip(send: Callable[[bytes], object], receive: Callable[[], object],
                      payload: bytes) -> bytes:
    """Send ``payload`` while reading the echo (both at once: the windows are smaller than
    the payload), until as many bytes came back or the stream ended."""
    got = bytearray()

    async def sender() -> None:
        for i in range(0, len(payload), 50_000):
            await send(payload[i:i + 50_000])  # type: ignore[misc]

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender)
        for _ in range(10_000):  # bounded: each round reads at least one byte or ends
            if len(got) >= len(payload):
                break
            chunk = await receive()  # type: ignore[misc]
            if not chunk:
                break
            got += chunk
    return bytes(got)


async def test_kubo_forwards_a_connection_to_our_handler(
        kubo043_factory: Callable[..., KuboDaemon], tmp_path: Path) -> None:
    payload = os.urandom(300_000)
    seen: list[tuple[str, str]] = []

    async def echo(stream: ProtocolStream) -> None:
        seen.append((stream.peer_id, stream.protocol))
        for _ in range(10_000):
            chunk = await stream.read()
            if not chunk:
                return
            await stream.write(chunk)

    with trio.fail_after(120):
        async with node_at(tmp_path / "n") as node:
            node.register_protocol_handler(ECHO, echo)
            kubo: KuboDaemon = await run(  # type: ignore[assignment]
                lambda: kubo043_factory(config=MOUNTING))
            await run(lambda: kubo.connect(node.addrs[0]))
            port = _free_port()
            await run(lambda: kubo.cli("p2p", "forward", ECHO, f"/ip4/127.0.0.1/tcp/{port}",
                                       f"/p2p/{node.peer_id}"))
            client = await trio.open_tcp_stream("127.0.0.1", port)
            async with client:
                back = await _round_trip(client.send_all, client.receive_some, payload)
    assert back == payload
    assert seen == [(kubo.peer_id, ECHO)]
    assert node.protocols.stats[ECHO].served == 1


async def test_our_node_reaches_a_service_kubo_mounts(
        kubo043_factory: Callable[..., KuboDaemon], tmp_path: Path) -> None:
    payload = os.urandom(300_000)

    async def tcp_echo(conn: trio.SocketStream) -> None:
        async with conn:
            for _ in range(10_000):
                chunk = await conn.receive_some(1 << 16)
                if not chunk:
                    return
                await conn.send_all(chunk)

    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
            port = listeners[0].socket.getsockname()[1]
            nursery.start_soon(trio.serve_listeners, tcp_echo, listeners)
            kubo: KuboDaemon = await run(  # type: ignore[assignment]
                lambda: kubo043_factory(config=MOUNTING))
            await run(lambda: kubo.cli("p2p", "listen", ECHO, f"/ip4/127.0.0.1/tcp/{port}"))
            async with node_at(tmp_path / "n") as node:
                stream = await node.open_protocol_stream(kubo.dial_addr, ECHO)
                async with stream:
                    back = await _round_trip(stream.write, stream.read, payload)
                with pytest.raises(NetworkError):  # Kubo mounts nothing under this id
                    await node.open_protocol_stream(kubo.peer_id, "/x/nothing/1.0",
                                                    timeout=10)
            nursery.cancel_scope.cancel()
    assert back == payload


async def test_a_handler_takes_only_an_x_id_that_is_free(tmp_path: Path) -> None:
    async def handler(stream: ProtocolStream) -> None:
        return None

    async with node_at(tmp_path / "n") as node:
        for builtin in ("/ipfs/bitswap/1.2.0", "/ipfs/kad/1.0.0", "/ipfs/lan/kad/1.0.0",
                        "/ipfs/id/1.0.0", "/ipfs/ping/1.0.0"):
            with pytest.raises(InvalidInput, match="node's own protocols"):
                node.register_protocol_handler(builtin, handler)
        for bad in ("/echo/1.0", "/x/", "/x/two words", "x/echo", "/x/" + "a" * 300):
            with pytest.raises(InvalidInput, match="not a custom protocol id"):
                node.register_protocol_handler(bad, handler)
        node.register_protocol_handler(ECHO, handler)
        with pytest.raises(InvalidInput, match="already has a handler"):
            node.register_protocol_handler(ECHO, handler)
        with pytest.raises(InvalidInput, match="not a custom protocol id"):
            await node.open_protocol_stream(node.peer_id, "/ipfs/bitswap/1.2.0")
        node.unregister_protocol_handler(ECHO)
        node.register_protocol_handler(ECHO, handler)  # free again


async def test_a_handler_serves_at_most_its_bound_and_refuses_the_rest(
        tmp_path: Path) -> None:
    release = trio.Event()
    arrived: list[trio.Event] = [trio.Event() for _ in range(4)]
    count = 0

    async def hold(stream: ProtocolStream) -> None:
        nonlocal count
        await stream.read(1)
        arrived[count].set()
        count += 1
        await release.wait()
        await stream.write(b"done")

    with trio.fail_after(60):
        async with node_at(tmp_path / "a") as server, node_at(tmp_path / "b") as client:
            server.register_protocol_handler("/x/hold/1", hold, max_streams=2)
            await client.connect_peer(server.addrs[0])
            held = []
            for i in range(2):
                stream = await client.open_protocol_stream(server.peer_id, "/x/hold/1")
                await stream.write(b"?")
                await arrived[i].wait()
                held.append(stream)
            try:  # reset by the server: as the negotiation ends, or soon after
                extra = await client.open_protocol_stream(server.peer_id, "/x/hold/1")
                await extra.write(b"?")
                refused = await extra.read()
            except NetworkError:
                refused = b""
            stats = server.protocols.stats["/x/hold/1"]
            assert (refused, stats.active, stats.refused) == (b"", 2, 1)
            release.set()
            assert [await s.read() for s in held] == [b"done", b"done"]
            for _ in range(1000):  # bounded: until both handlers have returned
                if stats.active == 0:
                    break
                await trio.sleep(0.01)
            after = await client.open_protocol_stream(server.peer_id, "/x/hold/1")
            await after.write(b"?")
            assert await after.read() == b"done"  # the bound freed with the streams
            assert (stats.served, stats.refused, stats.failed) == (3, 1, 0)


async def test_a_failing_handler_is_counted_and_the_node_serves_on(tmp_path: Path) -> None:
    calls = 0

    async def flaky(stream: ProtocolStream) -> None:
        nonlocal calls
        calls += 1
        request = await stream.read()
        if calls == 1:
            raise ValueError("a bug in the handler")
        await stream.write(request.upper())

    with trio.fail_after(60):
        async with node_at(tmp_path / "a") as server, node_at(tmp_path / "b") as client:
            server.register_protocol_handler("/x/flaky/1", flaky)
            await client.connect_peer(server.addrs[0])
            first = await client.open_protocol_stream(server.peer_id, "/x/flaky/1")
            await first.write(b"one")
            try:
                answer = await first.read()  # reset: nothing comes back
            except NetworkError:
                answer = b""
            assert answer == b""
            second = await client.open_protocol_stream(server.peer_id, "/x/flaky/1")
            await second.write(b"two")
            assert await second.read() == b"TWO"
            stats = server.protocols.stats["/x/flaky/1"]
            assert (stats.served, stats.failed) == (2, 1)
            assert client.peer_id in [str(p) for p in server.connected_peers()]
