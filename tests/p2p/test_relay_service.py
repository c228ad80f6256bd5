"""The Circuit Relay v2 service (hop side) of our node, on 127.0.0.1.

Our node runs the service (the ``master`` role, or ``relay_service=True``). The peers
around it are real libp2p hosts speaking the relay wire (reserving, answering ``stop``),
and real Kubo 0.43.1 daemons: one reserves a slot on our relay as its static relay, and
another connects to it through our relay.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
import trio
from interop.kubo_daemon import InteropError, KuboDaemon, kubo_daemon_binary
from libp2p.abc import IHost, INetStream
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.envelope import unmarshal_envelope
from libp2p.peer.id import ID
from libp2p.relay.circuit_v2.pb.circuit_pb2 import Voucher
from multiaddr import Multiaddr

from ipfs_mcp.p2p import NodeConfig, P2PNode, Role
from ipfs_mcp.p2p._net import NET_ERRORS
from ipfs_mcp.p2p.host import build_host, peer_info_from_addr
from ipfs_mcp.p2p.relay.accounting import RelayAccounting, RelayCounts, RelayResources
from ipfs_mcp.p2p.relay.service import (
    PROTECT_TAG,
    VOUCHER_DOMAIN,
    VOUCHER_PAYLOAD_TYPE,
    RelayService,
    reservation_addrs,
)
from ipfs_mcp.p2p.relay.wire import (
    HOP_PROTOCOL,
    STOP_PROTOCOL,
    HopMessage,
    Status,
    StopMessage,
    hop_connect,
    hop_reserve,
    limit_of,
    read_hop,
    read_stop,
    stop_status,
    write_message,
)
from ipfs_mcp.server.config import ServerSettings
from ipfs_mcp.server.node_network import NodeNetwork
from ipfs_mcp.server.serve import add_arguments
from ipfs_mcp.server.state import _node_config
from ipfs_mcp.tools.network import network_stats

from .nodes import FAST, RunningSlot, config, node_at

pytestmark = pytest.mark.anyio

BUDGET = 128 * 1024  # Kubo's default: bytes each way per relayed connection


@asynccontextmanager
async def relay_at(path: Path) -> AsyncIterator[P2PNode]:
    """Our node as a ``master``: the role runs the relay service."""
    async with node_at(path, config(role=Role.MASTER)) as node:
        assert node.relay_service is not None
        yield node


class Peer:
    """A bare libp2p host that speaks the relay wire as a client would; the circuits it
    accepts (``stop`` CONNECTs, answered OK) arrive on :attr:`accepted`."""

    def __init__(self, host: IHost, answer: int = Status.OK) -> None:
        self.host = host
        self.id: ID = host.get_id()
        self._answer = answer  # what it says to a stop CONNECT
        self._send, self.accepted = trio.open_memory_channel[tuple[StopMessage, INetStream]](4)
        host.set_stream_handler(STOP_PROTOCOL, self._stop)

    async def _stop(self, stream: INetStream) -> None:
        msg = await read_stop(stream)
        await write_message(stream, stop_status(self._answer))
        await self._send.send((msg, stream))

    async def hop(self, relay: P2PNode | str, msg: HopMessage
                  ) -> tuple[HopMessage, INetStream]:
        """Send ``msg`` on a hop stream to ``relay`` (our node, or a relay's address)."""
        info = peer_info_from_addr(relay if isinstance(relay, str) else relay.addrs[0])
        await self.host.connect(info)
        stream = await self.host.new_stream(info.peer_id, [HOP_PROTOCOL])
        await write_message(stream, msg)
        return await read_hop(stream), stream


@asynccontextmanager
async def peer(answer: int = Status.OK) -> AsyncIterator[Peer]:
    host = build_host(create_new_key_pair(), FAST)
    async with host.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        try:
            yield Peer(host, answer)
        finally:
            with trio.CancelScope(shield=True):
                await host.close()


@asynccontextmanager
async def bare_relay(resources: RelayResources) -> AsyncIterator[tuple[RelayService, str]]:
    """The relay service with ``resources`` on a bare host; and its address."""
    host = build_host(create_new_key_pair(), FAST)
    service = RelayService(host, RelayAccounting(resources))
    async with host.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]), \
            anyio.create_task_group() as run:
        try:
            await run.start(service.run)
            yield service, str(host.get_addrs()[0])
            run.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await host.close()


async def counts_become(relay: P2PNode | RelayService, wanted: RelayCounts) -> None:
    """Until the relay holds ``wanted`` (the caller bounds the wait)."""
    service = relay if isinstance(relay, RelayService) else relay.relay_service
    assert service is not None
    while service.counts() != wanted:
        await trio.sleep(0.02)


def test_relay_service_on_for_a_master_unless_told_otherwise() -> None:
    assert NodeConfig(role=Role.MASTER).serves_relay
    assert not NodeConfig().serves_relay and not NodeConfig(role=Role.LEECHER).serves_relay
    assert NodeConfig(relay_service=True).serves_relay
    assert not NodeConfig(role=Role.MASTER, relay_service=False).serves_relay

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    for argv, env, serves in (
            ([], {}, False),
            (["--relay-service"], {}, True),
            (["--role", "master"], {}, True),
            (["--role", "master", "--no-relay-service"], {}, False),
            ([], {"IPFS_MCP_RELAY_SERVICE": "1"}, True),
            (["--role", "master"], {"IPFS_MCP_RELAY_SERVICE": "0"}, False),
            (["--no-relay-service"], {"IPFS_MCP_RELAY_SERVICE": "1"}, False)):
        args = parser.parse_args(argv)
        settings = ServerSettings.load(env, role=args.role, relay_service=args.relay_service)
        assert _node_config(settings).serves_relay is serves, (argv, env)


def test_reservation_addresses_public_first_never_http_unspecified_or_another_s() -> None:
    relay = ID.from_pubkey(create_new_key_pair().public_key)
    other = ID.from_pubkey(create_new_key_pair().public_key)
    lan = [Multiaddr("/ip4/127.0.0.1/tcp/1"), Multiaddr("/ip4/192.168.1.2/tcp/4001"),
           Multiaddr("/ip4/0.0.0.0/tcp/4001"), Multiaddr("/ip4/192.168.1.2/tcp/8080/http"),
           Multiaddr(f"/ip4/192.168.1.3/tcp/4001/p2p/{other}")]
    assert [str(a) for a in reservation_addrs(lan, relay)] == [
        f"/ip4/127.0.0.1/tcp/1/p2p/{relay}", f"/ip4/192.168.1.2/tcp/4001/p2p/{relay}"]
    public = [*lan, Multiaddr(f"/ip4/11.77.0.2/tcp/4001/p2p/{relay}"),
              Multiaddr("/ip4/11.77.0.2/tcp/8080/http")]
    assert [str(a) for a in reservation_addrs(public, relay)] == [
        f"/ip4/11.77.0.2/tcp/4001/p2p/{relay}"]


async def test_reservation_granted_with_expiry_addrs_limit_and_signed_voucher(
        tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with relay_at(tmp_path / "relay") as relay, peer() as target:
            before = int(time.time())
            answer, _ = await target.hop(relay, hop_reserve())
            assert answer.type == HopMessage.STATUS and answer.status == Status.OK
            rsvp = answer.reservation
            assert rsvp.expire >= before + 3600 - 1
            assert {str(Multiaddr(a)) for a in rsvp.addrs} == set(relay.addrs)
            limit = limit_of(answer)
            assert (limit.duration_s, limit.data_bytes) == (120, BUDGET)
            envelope = unmarshal_envelope(rsvp.voucher)
            envelope.validate(VOUCHER_DOMAIN)  # the relay's signature, in its domain
            assert envelope.payload_type == VOUCHER_PAYLOAD_TYPE
            assert ID.from_pubkey(envelope.public_key).to_base58() == relay.peer_id
            voucher = Voucher.FromString(envelope.raw_payload)
            assert (ID(voucher.relay), ID(voucher.peer), voucher.expiration) == (
                ID.from_base58(relay.peer_id), target.id, rsvp.expire)
            assert relay.relay_service is not None
            assert relay.relay_service.counts() == RelayCounts(1, 0)
            # Its connection is never pruned while the slot lasts.
            assert relay.host.get_network().is_protected(target.id, PROTECT_TAG)
            # What peer_stats and health show of it.
            snapshot = await NodeNetwork(RunningSlot(relay)).snapshot()
            shown = network_stats(snapshot)
            assert (shown.relay_reservations, shown.relay_circuits) == (1, 0)


async def test_a_worker_does_not_relay(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with node_at(tmp_path / "worker") as worker, \
                relay_at(tmp_path / "master") as master:
            assert worker.relay_service is None
            assert HOP_PROTOCOL not in worker.host.get_mux().handlers
            assert HOP_PROTOCOL in master.host.get_mux().handlers  # offered (identify)
            stats = worker.stats()
            assert (stats.relay_reservations, stats.relay_circuits) == (None, None)


async def test_connect_to_a_peer_without_reservation_is_no_reservation(tmp_path: Path
                                                                       ) -> None:
    with trio.fail_after(30):
        async with relay_at(tmp_path / "relay") as relay, peer() as source, \
                peer() as target:
            await target.host.connect(peer_info_from_addr(relay.addrs[0]))  # connected,
            answer, _ = await source.hop(relay, hop_connect(target.id))  # not reserved
            assert answer.type == HopMessage.STATUS
            assert answer.status == Status.NO_RESERVATION
            assert relay.relay_service is not None
            assert relay.relay_service.counts() == RelayCounts(0, 0)


async def test_greedy_source_is_cut_at_the_byte_budget(tmp_path: Path) -> None:
    """A deliberately greedy source sends three budgets' worth through the relay: the
    destination receives exactly the budget, then the end of the stream."""
    with trio.fail_after(60):
        async with relay_at(tmp_path / "relay") as relay, peer() as greedy, \
                peer() as target:
            reserved, _ = await target.hop(relay, hop_reserve())
            assert reserved.status == Status.OK
            answer, circuit = await greedy.hop(relay, hop_connect(target.id))
            assert answer.status == Status.OK
            assert (limit_of(answer).duration_s, limit_of(answer).data_bytes) == (120, BUDGET)
            stop, inbound = await target.accepted.receive()
            assert ID(stop.peer.id) == greedy.id  # the relay names the source
            assert limit_of(stop).data_bytes == BUDGET
            assert relay.relay_service is not None
            assert relay.relay_service.counts() == RelayCounts(1, 1)

            await inbound.write(b"hello through the relay")  # the other way works too
            assert await circuit.read(23) == b"hello through the relay"

            payload = bytes(range(256)) * (3 * BUDGET // 256)
            received = bytearray()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_send_all, circuit, payload)
                while True:
                    try:
                        chunk = await inbound.read(65536)
                    except EOFError:
                        break
                    if not chunk:
                        break
                    received += chunk
                nursery.cancel_scope.cancel()
            assert len(received) == BUDGET
            assert bytes(received) == payload[:BUDGET]
            await inbound.close()  # the destination hangs up: the circuit ends
            await counts_become(relay, RelayCounts(1, 0))


async def test_our_nodes_through_our_relay_and_no_hop_over_a_relayed_connection(
        tmp_path: Path) -> None:
    """Our node B dials our node A through our relay R (A holds a slot there, with the
    relay client); A is a master too, but a RESERVE sent to it over that relayed
    connection is PERMISSION_DENIED (the spec: no relaying over relayed connections)."""
    with trio.fail_after(60):
        async with relay_at(tmp_path / "r") as relay:
            r_addr = relay.addrs[0]
            async with node_at(tmp_path / "a", config(role=Role.MASTER, relays=(r_addr,))
                               ) as a_node, node_at(tmp_path / "b") as b_node:
                await counts_become(relay, RelayCounts(1, 0))
                await b_node.connect_peer(f"{r_addr}/p2p-circuit/p2p/{a_node.peer_id}")
                assert relay.relay_service is not None
                assert relay.relay_service.counts() == RelayCounts(1, 1)
                a_id = ID.from_base58(a_node.peer_id)
                conns = b_node.host.get_network().get_connections(a_id)
                assert conns and all("/p2p-circuit" in str(addr) for c in conns
                                     for addr in c.muxed_conn.get_transport_addresses())
                stream = await b_node.host.new_stream(a_id, [HOP_PROTOCOL])
                await write_message(stream, hop_reserve())
                answer = await read_hop(stream)
                assert answer.status == Status.PERMISSION_DENIED
                assert a_node.relay_service is not None
                assert a_node.relay_service.counts() == RelayCounts(0, 0)


async def test_circuit_reset_when_its_duration_ends(tmp_path: Path) -> None:
    """A relay whose circuits may last one second resets one that is still open then."""
    with trio.fail_after(30):
        async with bare_relay(RelayResources(limit_duration=1.0)) as (service, relay_addr), \
                peer() as source, peer() as target:
            assert (await target.hop(relay_addr, hop_reserve()))[0].status == Status.OK
            answer, circuit = await source.hop(relay_addr, hop_connect(target.id))
            assert answer.status == Status.OK and limit_of(answer).duration_s == 1
            _, inbound = await target.accepted.receive()
            await circuit.write(b"ping")
            assert await inbound.read(4) == b"ping"
            with pytest.raises(Exception) as ended:  # noqa: PT011  # reset: any kind
                while await circuit.read(1024):  # nothing comes; the relay resets
                    pass
            assert isinstance(ended.value, (EOFError, *NET_ERRORS))
            await counts_become(service, RelayCounts(1, 0))


async def test_reservations_per_ip_refused_on_the_wire(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with bare_relay(RelayResources(max_reservations_per_ip=1)) as (service, addr), \
                peer() as first, peer() as second:
            assert (await first.hop(addr, hop_reserve()))[0].status == Status.OK
            assert (await first.hop(addr, hop_reserve()))[0].status == Status.OK  # refresh
            refused, _ = await second.hop(addr, hop_reserve())  # also from 127.0.0.1
            assert refused.status == Status.RESERVATION_REFUSED
            assert not refused.HasField("reservation")
            assert service.counts() == RelayCounts(1, 0)


async def test_destination_refusing_the_stop_is_connection_failed(tmp_path: Path) -> None:
    """A deliberately refusing destination: its stop answer is not OK, so the source hears
    CONNECTION_FAILED and no circuit is counted."""
    with trio.fail_after(30):
        async with bare_relay(RelayResources()) as (service, addr), peer() as source, \
                peer(answer=Status.PERMISSION_DENIED) as refusing:
            assert (await refusing.hop(addr, hop_reserve()))[0].status == Status.OK
            answer, _ = await source.hop(addr, hop_connect(refusing.id))
            assert answer.status == Status.CONNECTION_FAILED
            assert service.counts() == RelayCounts(1, 0)


async def _send_all(stream: INetStream, data: bytes) -> None:
    try:
        for start in range(0, len(data), 16384):
            await stream.write(data[start:start + 16384])
    except Exception:  # the relay stops reading past the budget, or the stream is reset
        return


def _kubo(folder: Path, env: dict[str, str] | None = None, **config: object) -> KuboDaemon:
    return KuboDaemon(folder, binary=kubo_daemon_binary(), env=env, config={
        "Swarm.RelayClient.Enabled": True,  # also what lets Kubo dial /p2p-circuit
        "Swarm.EnableHolePunching": False,  # loopback: nothing to punch
        **config})


async def logged(kubo: KuboDaemon, text: str) -> None:
    """Until Kubo's log holds ``text`` (the caller bounds the wait)."""
    while text not in kubo.log_path.read_text(errors="replace"):
        await trio.sleep(0.05)


async def test_kubo_reserves_on_our_relay_and_another_kubo_connects_through_it(
        tmp_path: Path) -> None:
    """Kubo A, told it is behind NAT, takes our relay as its static relay and reserves a
    slot (it verifies our voucher to accept it); Kubo B dials A by its circuit address and
    both see the relayed connection; a CONNECT to a peer that holds no slot is refused
    with NO_RESERVATION, which Kubo reports."""
    with trio.fail_after(120):
        async with relay_at(tmp_path / "relay") as relay:
            assert relay.relay_service is not None
            relay_addr = relay.addrs[0]
            kubo_a = await anyio.to_thread.run_sync(lambda: _kubo(
                tmp_path / "kubo-a", **{
                    "Swarm.RelayClient.StaticRelays": [relay_addr],
                    # Kubo wants a reservation only when it believes itself unreachable.
                    "Internal.Libp2pForceReachability": "private"},
                env={"GOLOG_LOG_LEVEL": "error,autorelay=debug"}))
            try:
                await counts_become(relay, RelayCounts(1, 0))
                # Kubo took the reservation: it checked our answer and our signed voucher
                # (a voucher for another peer makes it log "failed to connect to relay").
                await logged(kubo_a, "adding new relay")
                kubo_b = await anyio.to_thread.run_sync(lambda: _kubo(tmp_path / "kubo-b"))
                try:
                    circuit = f"{relay_addr}/p2p-circuit/p2p/{kubo_a.peer_id}"
                    answer = await anyio.to_thread.run_sync(
                        lambda: kubo_b.rpc("swarm/connect", arg=circuit))
                    assert "success" in answer["Strings"][0]
                    assert relay.relay_service.counts() == RelayCounts(1, 1)
                    seen_by_b = await anyio.to_thread.run_sync(
                        lambda: kubo_b.rpc("swarm/peers"))
                    assert {"Addr": f"{relay_addr}/p2p-circuit", "Peer": kubo_a.peer_id} in [
                        {"Addr": p["Addr"], "Peer": p["Peer"]} for p in seen_by_b["Peers"]]
                    seen_by_a = await anyio.to_thread.run_sync(
                        lambda: kubo_a.rpc("swarm/peers"))
                    assert {"Addr": f"{relay_addr}/p2p-circuit", "Peer": kubo_b.peer_id} in [
                        {"Addr": p["Addr"], "Peer": p["Peer"]} for p in seen_by_a["Peers"]]

                    # B hangs up: the circuit ends and frees its slot.
                    await anyio.to_thread.run_sync(
                        lambda: kubo_b.rpc("swarm/disconnect", arg=circuit))
                    await counts_become(relay, RelayCounts(1, 0))

                    unreserved = ID.from_pubkey(create_new_key_pair().public_key)
                    with pytest.raises(InteropError, match="NO_RESERVATION"):
                        await anyio.to_thread.run_sync(lambda: kubo_b.rpc(
                            "swarm/connect",
                            arg=f"{relay_addr}/p2p-circuit/p2p/{unreserved}"))
                finally:
                    await anyio.to_thread.run_sync(kubo_b.close)
            finally:
                await anyio.to_thread.run_sync(kubo_a.close)
            # A gone: its reservation goes with its connection.
            await counts_become(relay, RelayCounts(0, 0))
