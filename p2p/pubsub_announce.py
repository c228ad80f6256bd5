"""An opt-in announcement topic: "I now provide this root", and a prefetcher that acts on it.

A node that announces a root in the DHT also says so on the topic (the message is the root's
CID as text, signed like every message: its author is the provider). A ``master`` listening
on the topic fetches what others announce, from the author first, through the node's normal
fetch (every block verified, the role's cache budget applied). Bounded: at most
``queue_size`` announcements wait; past that, new ones are dropped and counted; a root
fetched or failed recently is not fetched again; each fetch has the node's DAG deadline.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
import anyio.abc
import trio
from multiformats import CID

from ipfs_mcp.backends.core.cids import cid_str, parse_cid
from ipfs_mcp.backends.errors import IpfsMcpError

from .pubsub import PubSub, PubSubMessage

log = logging.getLogger(__name__)

# A fetch of ``root`` with ``provider`` asked first; raises the project's errors.
Prefetch = Callable[[CID, str], Awaitable[object]]


@dataclass
class AnnounceCounters:
    said: int = 0  # roots we announced on the topic
    heard: int = 0  # well-formed announcements from others
    malformed: int = 0  # messages that are not one CID
    dropped: int = 0  # announcements past the full queue
    fetched: int = 0
    failed: int = 0


class Announcements:
    """Say and hear "now providing" on ``topic``; prefetch what is heard if ``prefetch``."""

    def __init__(self, pubsub: PubSub, topic: str, prefetch: Prefetch | None = None, *,
                 queue_size: int = 64, remember: int = 1024) -> None:
        self.pubsub = pubsub
        self.topic = topic
        self.prefetch = prefetch
        self.counters = AnnounceCounters()
        self._send, self._receive = trio.open_memory_channel[tuple[CID, str]](queue_size)
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._remember = remember
        self._me = str(pubsub.host.get_id())
        self._done = trio.Event()

    async def run(self, *,
                  task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
                  ) -> None:
        """Join the topic, then fetch what is announced until cancelled."""
        await self.pubsub.subscribe(self.topic)
        self.pubsub.add_listener(self._heard)
        task_status.started()
        async for root, author in self._receive:
            await self._fetch(root, author)

    async def say(self, root: CID | str) -> None:
        """Announce ``root`` on the topic.

        Raises: TooLarge, InvalidInput (never for a CID), BackendUnavailable.
        """
        await self.pubsub.publish(self.topic, cid_str(parse_cid(root)).encode())
        self.counters.said += 1

    async def wait_settled(self, count: int) -> None:
        """Until ``count`` prefetches ended, fetched or failed (the caller bounds it)."""
        while self.counters.fetched + self.counters.failed < count:
            await self._done.wait()

    async def _heard(self, msg: PubSubMessage) -> None:
        if msg.topic != self.topic or msg.author == self._me:
            return
        try:
            root = parse_cid(msg.data.decode())
        except (UnicodeDecodeError, IpfsMcpError):
            self.counters.malformed += 1
            return
        self.counters.heard += 1
        if self.prefetch is None or cid_str(root) in self._recent:
            return
        self._remember_root(cid_str(root))
        try:
            self._send.send_nowait((root, msg.author))
        except trio.WouldBlock:
            self.counters.dropped += 1

    def _remember_root(self, key: str) -> None:
        self._recent[key] = None
        while len(self._recent) > self._remember:
            self._recent.popitem(last=False)

    async def _fetch(self, root: CID, author: str) -> None:
        assert self.prefetch is not None
        try:
            await self.prefetch(root, author)
            self.counters.fetched += 1
        except IpfsMcpError as exc:  # a lying or gone provider costs this root only
            log.info("prefetch of %s announced by %s failed: %s", cid_str(root), author, exc)
            self.counters.failed += 1
        self._done.set()
        self._done = trio.Event()
