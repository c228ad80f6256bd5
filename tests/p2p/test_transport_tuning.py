"""The yamux tuning of p2p/transport_tuning.py takes effect on real hosts, on the wire."""

from __future__ import annotations

import hashlib
import os

import pytest
import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.custom_types import TProtocol
from libp2p.security.noise.io import MAX_PLAINTEXT_LENGTH
from libp2p.stream_muxer.yamux.yamux import HEADER_SIZE
from multiaddr import Multiaddr

from ipfs_mcp.p2p.host import build_host, peer_info_from_addr
from ipfs_mcp.p2p.transport_tuning import (
    RELEASE_ON_READ_ENV,
    YAMUX_FRAME_SIZE,
    apply_transport_tuning,
    current_tuning,
)

from .nodes import FAST

pytestmark = pytest.mark.anyio

PROTOCOL = TProtocol("/test/bulk/1.0.0")
SIZE = 4 << 20
SMALL_READ = 16 << 10  # small reads: one WINDOW_UPDATE each unless updates are batched


def test_building_a_host_applies_the_tuning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RELEASE_ON_READ_ENV, raising=False)
    build_host(create_new_key_pair(), FAST)
    tuning = current_tuning()
    assert tuning.yamux_frame_size == YAMUX_FRAME_SIZE == MAX_PLAINTEXT_LENGTH == 65519
    assert tuning.release_on_read is False


def test_a_value_the_user_set_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RELEASE_ON_READ_ENV, "1")
    assert apply_transport_tuning().release_on_read is True


async def test_frames_fit_one_noise_message_and_window_updates_are_batched(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RELEASE_ON_READ_ENV, raising=False)
    sender = build_host(create_new_key_pair(), FAST)
    receiver = build_host(create_new_key_pair(), FAST)
    data = os.urandom(SIZE)
    got = bytearray()
    done = trio.Event()
    updates: dict[str, int] = {}
    reads = 0

    async def handler(stream: object) -> None:
        nonlocal reads
        while len(got) < SIZE:
            reads += 1
            got.extend(await stream.read(SMALL_READ))  # type: ignore[attr-defined]
        muxed = stream.muxed_stream  # type: ignore[attr-defined]
        # The library counts each WINDOW_UPDATE it sends, by the branch that sent it.
        updates["per_read"] = muxed._window_update_bytes_read_only
        done.set()

    receiver.set_stream_handler(PROTOCOL, handler)
    listen = [Multiaddr("/ip4/127.0.0.1/tcp/0")]
    with trio.fail_after(30):
        async with receiver.run(listen), sender.run(listen):
            addr = f"{receiver.get_addrs()[0]}"
            info = peer_info_from_addr(addr)
            await sender.connect(info)
            stream = await sender.new_stream(info.peer_id, [PROTOCOL])
            # Observe (not replace) what the sender's muxer hands to noise: one frame a call.
            secured = stream.muxed_conn.secured_conn  # type: ignore[attr-defined]
            written: list[int] = []
            write = secured.write

            async def observed_write(frame: bytes) -> None:
                written.append(len(frame))
                await write(frame)

            secured.write = observed_write
            await stream.write(data)
            await done.wait()
            await stream.close()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    data_frames = [n for n in written if n > HEADER_SIZE]
    assert max(data_frames) == YAMUX_FRAME_SIZE  # one noise message, never two
    assert sum(n - HEADER_SIZE for n in data_frames) == SIZE
    # At the library's default every small read that its hysteresis defers sends its own
    # WINDOW_UPDATE (about one per read here); with the knob off that branch never runs.
    assert reads >= SIZE // SMALL_READ
    assert updates["per_read"] == 0
