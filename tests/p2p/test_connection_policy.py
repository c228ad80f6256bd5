"""The connection policy: no dial that nobody asked for, and watermarks that prune.

Real hosts on 127.0.0.1. The policy's period is a ticker the test drives and its clock a
number the test sets, so "a minute" is a count of periods and "older than the grace
period" an advanced clock: nothing waits on time. Dials are counted where every dial
passes (the dial scope's check before a transport dials: dialing.DialPolicy.on_dial).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace

import pytest
import trio
from libp2p.abc import IHost
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.network.auto_connector import AutoConnector
from libp2p.peer.id import ID
from multiaddr import Multiaddr

from ipfs_mcp.p2p import NodeConfig
from ipfs_mcp.p2p.config import Role
from ipfs_mcp.p2p.connection_policy import ConnectionLimits, ConnectionPolicy
from ipfs_mcp.p2p.host import build_host
from tests.p2p.driven import Clock, DrivenTicker, periods

pytestmark = pytest.mark.anyio

LEECHER = NodeConfig(role=Role.LEECHER)
LOCAL = [Multiaddr("/ip4/127.0.0.1/tcp/0")]


@asynccontextmanager
async def running(host: IHost) -> AsyncIterator[IHost]:
    async with host.run(LOCAL):
        yield host


async def test_a_leecher_with_a_dozen_known_peers_dials_none_across_periods() -> None:
    dials: list[Multiaddr] = []
    ticker, clock = DrivenTicker(), Clock()
    policy = ConnectionPolicy(LEECHER.profile.connection_limits(), ticker, clock)
    dial_policy = replace(LEECHER.dial_policy(), on_dial=dials.append)
    host = build_host(create_new_key_pair(), LEECHER, dial_policy, policy)
    swarm = host.get_network()
    with trio.fail_after(60):
        async with running(host):
            # A dozen peers the peerstore learnt (as from find_providers, identify, mDNS):
            # nothing listens on these ports, so a dial would fail, but it would be counted.
            planted = {ID.from_pubkey(create_new_key_pair().public_key):
                       Multiaddr(f"/ip4/127.0.0.1/tcp/{9 + i}") for i in range(12)}
            for peer, addr in planted.items():
                host.get_peerstore().add_addrs(peer, [addr], 3600)
            # Two minutes of 30 s periods, with the swarm's own triggers between them.
            for _ in range(4):
                await swarm.auto_connector.maybe_connect()  # type: ignore[attr-defined]
                swarm._schedule_auto_connect()  # type: ignore[attr-defined]
                clock.now += 30
                await periods(policy.periods, ticker, 1)
            assert dials == []
            assert host.get_connected_peers() == []
            # The library's connector, left in place, would have dialled them.
            armed = AutoConnector(swarm)  # type: ignore[arg-type]
            await armed.start()
            await armed.maybe_connect()
            await armed.stop()
    assert dials and {Multiaddr(str(d).split("/p2p/")[0]) for d in dials} <= set(planted.values())


@asynccontextmanager
async def peers_dialling(target: IHost, count: int) -> AsyncIterator[list[IHost]]:
    async with AsyncExitStack() as stack:
        hosts = [await stack.enter_async_context(running(build_host(create_new_key_pair(),
                                                                     NodeConfig())))
                 for _ in range(count)]
        addr = target.get_addrs()[0]
        for host in hosts:
            await host.get_network().dial_addr(addr, target.get_id())
        yield hosts


async def four_peers_on(policy: ConnectionPolicy, stack: AsyncExitStack) -> IHost:
    """A host under ``policy`` with four peers that dialled it, all connected."""
    host = build_host(create_new_key_pair(), NodeConfig(), connection_policy=policy)
    await stack.enter_async_context(running(host))
    await stack.enter_async_context(peers_dialling(host, 4))
    for _ in range(1000):  # the last inbound upgrade may finish just after its dial
        if len(host.get_connected_peers()) == 4:
            break
        await trio.sleep(0.01)
    assert len(host.get_connected_peers()) == 4
    return host


class Driven:
    """A policy whose periods and clock the test drives: ``await driven.at(t)`` sets the
    clock to ``t`` and runs one period to its end."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.ticker, self.clock = DrivenTicker(), Clock()
        self.policy = ConnectionPolicy(limits, self.ticker, self.clock)

    async def at(self, now: float) -> None:
        self.clock.now = now
        await periods(self.policy.periods, self.ticker, 1)


async def test_above_the_high_mark_peers_past_their_grace_go_down_to_the_low_mark() -> None:
    driven = Driven(ConnectionLimits(low=1, high=2, grace=10.0, idle_after=1e9))
    with trio.fail_after(60):
        async with AsyncExitStack() as stack:
            host = await four_peers_on(driven.policy, stack)
            await driven.at(5.0)  # all four within their grace: above the high mark, kept
            assert len(host.get_connected_peers()) == 4 and driven.policy.pruned == 0
            await driven.at(11.0)  # past the grace: down to the low mark
            assert len(host.get_connected_peers()) == 1 and driven.policy.pruned == 3


async def test_idle_peers_go_down_to_the_low_mark_on_a_driven_clock() -> None:
    driven = Driven(ConnectionLimits(low=1, high=10, grace=10.0, idle_after=40.0))
    with trio.fail_after(60):
        async with AsyncExitStack() as stack:
            host = await four_peers_on(driven.policy, stack)
            await driven.at(11.0)
            await driven.at(39.0)  # no period can have seen one idle for 40 s yet: all kept
            assert len(host.get_connected_peers()) == 4 and driven.policy.pruned == 0
            # Their streams (identify) were opened at 0, and seen open at 11 at the latest:
            # by 52 each has had none for idle_after, and all but the low mark's one go.
            await driven.at(52.0)
            assert len(host.get_connected_peers()) == 1 and driven.policy.pruned == 3
