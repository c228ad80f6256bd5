"""Whether peers can reach us: AutoNAT's answer (``public``, ``private`` or ``unknown``).

Each peer that says in identify that it serves AutoNAT (``/libp2p/autonat/1.0.0``, as Kubo
does by default) is asked once to dial us back on our addresses (py-libp2p's AutoNAT
client). Its answer is a vote: it reached us (public), it tried and failed (private), or it
would not try (Kubo refuses to dial back loopback and private addresses): no vote. The
status is ``public`` or ``private`` once ``confirmations`` peers agree (go-libp2p asks for
the same agreement before it changes its mind), ``unknown`` until then. On loopback it
stays ``unknown``: nobody dials back there.

Bounded: at most ``max_asked`` peers asked in the node's life, each within ``timeout``.
We do not serve dial-backs ourselves: that would be dialling addresses a stranger names.
"""

from __future__ import annotations

import logging
from typing import Literal

import trio
from libp2p.abc import IHost
from libp2p.host.autonat.autonat import AUTONAT_PROTOCOL_ID, AutoNATService
from libp2p.host.autonat.pb.autonat_pb2 import Message
from libp2p.peer.id import ID

from ._net import NET_ERRORS
from .periods import PeriodCount

log = logging.getLogger(__name__)

AUTONAT_PROTOCOL = str(AUTONAT_PROTOCOL_ID)

Status = Literal["public", "private", "unknown"]
Answer = Literal["reached", "failed", "refused", "no answer"]


class Reachability:
    """AutoNAT's verdict on this node, from the peers asked so far."""

    def __init__(self, host: IHost, *, confirmations: int = 3, max_asked: int = 16,
                 timeout: float = 30.0) -> None:
        self.client = AutoNATService(host, serve=False)  # type: ignore[arg-type]
        self.confirmations = confirmations
        self.max_asked = max_asked
        self.timeout = timeout
        self.answers: dict[str, Answer] = {}  # peer id -> what it said
        self.asked = PeriodCount()  # questions finished (answered or not)

    @property
    def status(self) -> Status:
        reached = sum(1 for a in self.answers.values() if a == "reached")
        failed = sum(1 for a in self.answers.values() if a == "failed")
        if reached >= self.confirmations and reached >= failed:
            return "public"
        if failed >= self.confirmations:
            return "private"
        return "unknown"

    def should_ask(self, peer_id: ID, protocols: list[str]) -> bool:
        """Whether ``peer_id`` (with these protocols) is one to ask: it serves AutoNAT, was
        not asked yet, and the budget of peers to ask is not spent."""
        return (AUTONAT_PROTOCOL in protocols and str(peer_id) not in self.answers
                and len(self.answers) < self.max_asked)

    async def ask(self, peer_id: ID) -> Answer:
        """Ask ``peer_id`` to dial us back; its answer, also kept in :attr:`answers`."""
        key = str(peer_id)
        self.answers[key] = "no answer"  # asked: never again, whatever happens next
        answer: Answer = "no answer"
        with trio.move_on_after(self.timeout):
            try:
                status, _ = await self.client.query_server(peer_id, timeout=self.timeout)
            except (trio.TooSlowError, *NET_ERRORS) as exc:  # type: ignore[misc]
                log.debug("autonat: asking %s failed: %r", peer_id, exc)
            else:
                answer = ("reached" if status == Message.OK
                          else "failed" if status == Message.E_DIAL_ERROR else "refused")
        self.answers[key] = answer
        self.asked.done()
        log.debug("autonat: %s says %s; reachability %s", peer_id, answer, self.status)
        return answer
