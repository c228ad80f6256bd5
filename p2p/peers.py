"""Peers: dialling, identifying, and telling the DHT about the peers we meet.

Every new connection, whoever opened it (our dial, theirs, mDNS, a bootstrap peer), is
identified once: the peer's agent and protocols are learnt, and a DHT server among them joins
the routing table. Waiting for a peer means waiting for that identify to finish, so a caller
that connected can use the peer's protocols at once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio
from libp2p.abc import IHost
from libp2p.custom_types import TProtocol
from libp2p.identity.identify.pb.identify_pb2 import Identify as IdentifyMsg
from libp2p.identity.update import update_peerstore_from_identify
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from multiaddr import Multiaddr

from ipfs_mcp.backends.errors import NetworkError, RelayError

from ._net import NET_ERRORS, ConnectionEvents, FrameReader, close_quietly
from .dialing import DialPolicy
from .host import peer_info_from_addr
from .loop import NodeLoop
from .observed_addrs import ObservedAddrs
from .reachability import Reachability
from .relay.circuit_dial import is_circuit
from .routing import ContentRouting

log = logging.getLogger(__name__)

IDENTIFY_PROTOCOL = "/ipfs/id/1.0.0"

CircuitDialer = Callable[[Multiaddr, ID], Awaitable[object]]
# The head start direct addresses get over relayed ones (go-libp2p's dial ranker: 500 ms).
RELAY_DELAY = 0.5


class Peers:
    """The peers of one host: connect, wait for, identify. Components come in built."""

    def __init__(self, host: IHost, routing: ContentRouting, loop: NodeLoop,
                 dial_policy: DialPolicy, reachability: Reachability | None = None,
                 dial_circuit: CircuitDialer | None = None) -> None:
        self.host = host
        # Dials ``<relay>/p2p-circuit`` addresses (relay/client.py); None: they are skipped.
        self.dial_circuit = dial_circuit
        # AutoNAT: identified peers that serve it are asked whether they can reach us.
        self.reachability = reachability or Reachability(host)
        # Where identify says peers see us (our public address behind a NAT).
        self.observed = ObservedAddrs(reachability=lambda: self.reachability.status)
        self.routing = routing
        self.loop = loop
        self.dial_policy = dial_policy
        self.watcher = ConnectionEvents(self.on_connected)
        self._agents: dict[str, str] = {}
        self._protocols: dict[str, list[str]] = {}
        self._identified: dict[str, trio.Event] = {}
        self._peers_changed = trio.Event()  # set (and replaced) whenever a peer is identified

    def agent(self, peer_id: str) -> str | None:
        """The agent the peer named in its identify, if it did."""
        return self._agents.get(peer_id)

    def connected(self) -> list[ID]:
        return list(self.host.get_connected_peers())

    async def connect_peer(self, addr: str | Multiaddr, *, timeout: float = 15.0) -> str:
        """Dial ``/ip4/.../tcp/.../p2p/<id>`` and wait until it is identified.

        The address is checked against the dial scope before anything is dialled (the host
        checks every dial again, on the address it resolved: dialing.gate_dials).

        Raises:
            InvalidInput: not a peer multiaddr.
            DialRefused: the address is outside the dial scope.
            NetworkError: the dial failed or timed out, or a name does not resolve.
            BackendUnavailable: the node is not running.
        """
        self.loop.nursery()
        info = peer_info_from_addr(addr)
        for transport in info.addrs:
            await self.dial_policy.resolved(transport)
        await self.connect(info, timeout)
        return str(info.peer_id)

    async def connect(self, info: PeerInfo, timeout: float) -> None:
        """Connect to ``info`` (unless connected) and wait until it is identified.

        A failure says only that it failed: whether the port was closed, open to something
        else, filtered or slow goes to the debug log, so a caller cannot use connecting as
        a port scanner (what it learns is what any failed dial tells).

        Raises:
            NetworkError: the dial failed or timed out.
        """
        try:
            with trio.fail_after(timeout):
                known = self._identified.get(str(info.peer_id))
                was_connected = info.peer_id in self.host.get_connected_peers()
                if not was_connected:
                    await self._dial(info)
                if was_connected and known is not None:
                    identified = known
                else:
                    identified = self.on_connected(info.peer_id)
                await identified.wait()
        except RelayError as exc:  # what the relay said is the reason, not a port's state
            raise RelayError(f"could not connect to {info.peer_id}: {exc}", exc.status
                             ) from None
        except (trio.TooSlowError, NetworkError, *NET_ERRORS) as exc:
            log.debug("p2p: connecting to %s failed: %r", info.peer_id, exc)
            raise NetworkError(f"could not connect to {info.peer_id}") from None

    async def _dial(self, info: PeerInfo) -> None:
        """Dial the peer's addresses one after the other.

        ``host.connect`` would do this too, but py-libp2p's happy-eyeballs loop waits its
        full 250 ms head start even after the first dial succeeded; dialling the swarm
        address by address costs only the handshake.

        Relayed addresses (``/p2p-circuit``) are dialled beside the direct ones once these
        have had :data:`RELAY_DELAY` to connect, as go-libp2p ranks them: a direct address
        behind a NAT that drops the dial would otherwise use up the whole timeout.

        Raises:
            RelayError: no direct address worked, and the last relay failed.
            NetworkError: no address worked.
        """
        self.host.get_peerstore().add_addrs(info.peer_id, info.addrs, 3600)
        direct = [a for a in info.addrs if not is_circuit(a)]
        relayed = [a for a in info.addrs if is_circuit(a)] if self.dial_circuit else []
        failures: list[str] = []
        relay_errors: list[RelayError] = []
        connected, direct_failed = trio.Event(), trio.Event()
        async with trio.open_nursery() as nursery:
            async def won() -> None:
                connected.set()
                nursery.cancel_scope.cancel()  # the other dials are not needed now

            nursery.start_soon(self._dial_direct, info.peer_id, direct, failures, won,
                               direct_failed)
            if relayed:
                nursery.start_soon(self._dial_relayed, info.peer_id, relayed, direct_failed,
                                   relay_errors, won)
        if connected.is_set():
            return
        if relay_errors:
            raise relay_errors[-1]
        raise NetworkError("; ".join(failures) or "no addresses")  # the detail, for the log

    async def _dial_direct(self, peer: ID, addrs: list[Multiaddr], failures: list[str],
                           won: Callable[[], Awaitable[None]], failed: trio.Event) -> None:
        network = self.host.get_network()
        for addr in addrs:
            try:
                conn = await network.dial_addr(addr, peer)
            except NET_ERRORS as exc:
                failures.append(f"{addr}: {exc!r}")
                continue
            started = getattr(conn, "event_started", None)
            if started is not None:
                await started.wait()
            await won()
            return
        failed.set()

    async def _dial_relayed(self, peer: ID, addrs: list[Multiaddr], direct_failed: trio.Event,
                            errors: list[RelayError], won: Callable[[], Awaitable[None]]
                            ) -> None:
        # The direct dials' head start: over when they have all failed, or after the delay.
        with trio.move_on_after(RELAY_DELAY):
            await direct_failed.wait()
        for addr in addrs:
            try:
                await self.dial_circuit(addr, peer)  # type: ignore[misc]
            except RelayError as exc:
                errors.append(exc)
                continue
            await won()
            return

    async def wait_for_peer(self, peer_id: str | None = None, *, timeout: float = 30.0
                            ) -> str:
        """Wait until ``peer_id`` (or, if None, any peer) is connected and identified,
        however it came (our dial, theirs, mDNS, bootstrap); its id.

        Raises:
            NetworkError: no such peer within ``timeout`` seconds.
            BackendUnavailable: the node is not running.
        """
        self.loop.nursery()
        with trio.move_on_after(timeout):
            while True:
                changed = self._peers_changed
                for peer in self.host.get_connected_peers():
                    key = str(peer)
                    done = self._identified.get(key)
                    if (peer_id is None or key == peer_id) and done is not None and done.is_set():
                        return key
                await changed.wait()
        raise NetworkError(f"{peer_id or 'no peer'} did not connect within {timeout}s")

    def on_connected(self, peer_id: ID) -> trio.Event:
        """Identify a newly connected peer (once at a time); the event is set when done."""
        key = str(peer_id)
        event = self._identified.get(key)
        if event is not None and not event.is_set():
            return event
        event = self._identified[key] = trio.Event()
        if not self.loop.spawn(self._identify, peer_id):
            event.set()
        return event

    async def _identify(self, peer_id: ID) -> None:
        """Learn the peer's agent and protocols, then add DHT servers to the routing table.

        The host runs identify too, but it keeps neither the agent nor a signal for when
        it is done; this one does both and gates the routing-table insert on it. Peers may
        allow one identify stream at a time (js-libp2p does), and the host's own may be
        in flight, so a refused stream is retried a few times before giving up; then the
        protocols the host's identify left in the peerstore are used, if any.
        """
        key = str(peer_id)
        msg: IdentifyMsg | None = None
        try:
            with trio.move_on_after(10):
                for delay in (0.05, 0.1, 0.2, 0.4, None):
                    try:
                        msg = await self._identify_once(peer_id)
                        break
                    except (NetworkError, *NET_ERRORS) as exc:
                        log.debug("p2p: identify %s failed: %r", peer_id, exc)
                        if delay is None or not self.host.get_network().get_connections(
                                peer_id):
                            break
                        await trio.sleep(delay)
            if msg is not None:
                if msg.agent_version:
                    self._agents[key] = msg.agent_version
                protocols = list(msg.protocols)
                await update_peerstore_from_identify(self.host.get_peerstore(), peer_id, msg)
                if msg.HasField("observed_addr"):
                    self.observed.record(key, msg.observed_addr)
            else:
                try:
                    protocols = list(self.host.get_peerstore().get_protocols(peer_id))
                except Exception:  # the peerstore raises for peers it never saw
                    protocols = []
            self._protocols[key] = protocols
            if self.reachability.should_ask(peer_id, protocols):
                self.loop.spawn(self.reachability.ask, peer_id)
            with trio.move_on_after(10):
                await self.routing.add_peer(peer_id, protocols)
        except Exception as exc:  # a malformed identify message (protobuf DecodeError)
            log.info("p2p: identify %s: bad message: %r", peer_id, exc)
        finally:
            self._identified[key].set()
            self._peers_changed.set()
            self._peers_changed = trio.Event()

    async def _identify_once(self, peer_id: ID) -> IdentifyMsg:
        stream = await self.host.new_stream(peer_id, [TProtocol(IDENTIFY_PROTOCOL)])
        msg = IdentifyMsg()
        reader = FrameReader(stream, 1 << 20)
        frames = 0
        try:
            while (body := await reader.next()) is not None:
                msg.MergeFromString(body)
                frames += 1
            if not frames:  # the peer closed without answering (busy with another identify)
                raise NetworkError(f"{peer_id} sent an empty identify")
        finally:
            await close_quietly(stream)
        return msg
