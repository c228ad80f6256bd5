"""Provider reputation: which peers (or gateways) to ask first, and which to leave alone.

One scorer for every retrieval source: bitswap peers (keyed by peer id, in ``p2p``) and
trustless HTTP gateways (keyed by URL, in :mod:`.trustless_gateway`).

Every exchange with a provider is recorded with :meth:`ProviderReputation.update_provider_stats`
(success or failure, latency, bytes). The score combines

- the success rate, with a Beta(1, 1) prior: ``(successes + 1) / (attempts + 2)``;
- latency: ``1 / (1 + mean_latency / LATENCY_REF)``;
- throughput: ``tput / (tput + THROUGHPUT_REF)``;

as ``rate * (0.6 + 0.2 * latency_factor + 0.2 * throughput_factor)``. A peer with no history
scores :data:`NO_HISTORY_SCORE` (0.3), which equals the lowest score a peer with a success rate
of one half can reach: so any peer with more successes than failures outranks a stranger, and
a stranger outranks a peer that has failed and never succeeded.

Consecutive failures back off exponentially (``BACKOFF_BASE * 2**(n-1)``, capped at
``BACKOFF_MAX``); a peer in back-off sorts after every peer that is not. A peer that sends a
block that does not match what we asked for counts as :data:`BAD_BLOCK_WEIGHT` failures,
and each such block also quarters its score (:data:`BAD_BLOCK_FACTOR`): bytes that fail
their hash are evidence of a broken or hostile peer, and since no score exceeds 1, one lie
puts even a peer with a perfect record below a stranger.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

LATENCY_REF = 0.5  # seconds: a provider answering in 0.5 s gets half the latency credit
THROUGHPUT_REF = 10e6  # bytes/s: 10 MB/s gets half the throughput credit
NO_HISTORY_SCORE = 0.3
BACKOFF_BASE = 1.0
BACKOFF_MAX = 300.0
BAD_BLOCK_WEIGHT = 3
BAD_BLOCK_FACTOR = 0.25


@dataclass(frozen=True)
class ProviderRecord:
    """What we know about one provider, as a snapshot."""

    peer_id: str
    successes: int
    failures: int
    bad_blocks: int
    bytes_received: int
    mean_latency: float | None
    throughput: float | None  # bytes per second over successful transfers
    consecutive_failures: int
    backoff_until: float  # monotonic clock; 0 when not backing off
    score: float


class _Stats:
    __slots__ = ("successes", "failures", "bad_blocks", "latency_sum", "latency_n",
                 "bytes", "busy_time", "consecutive", "backoff_until")

    def __init__(self) -> None:
        self.successes = self.failures = self.bad_blocks = 0
        self.latency_sum = 0.0
        self.latency_n = 0
        self.bytes = 0
        self.busy_time = 0.0
        self.consecutive = 0
        self.backoff_until = 0.0


class ProviderReputation:
    """Scores providers from measured outcomes; not thread-safe (lives on the event loop)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._stats: dict[str, _Stats] = {}

    def update_provider_stats(self, peer: object, success: bool, latency: float | None = None,
                              nbytes: int = 0) -> None:
        """Record one exchange with ``peer`` (a peer ID or its string form).

        ``latency`` is the time from asking to the answer (seconds); ``nbytes`` what it sent.
        """
        st = self._stats.setdefault(str(peer), _Stats())
        if success:
            st.successes += 1
            st.consecutive = 0
            st.backoff_until = 0.0
            if latency is not None and latency >= 0:
                st.latency_sum += latency
                st.latency_n += 1
                if nbytes:
                    st.bytes += nbytes
                    st.busy_time += max(latency, 1e-6)
        else:
            self._fail(st, 1)

    def record_bad_block(self, peer: object) -> None:
        """``peer`` sent bytes that do not hash to anything we asked it for."""
        st = self._stats.setdefault(str(peer), _Stats())
        st.bad_blocks += 1
        self._fail(st, BAD_BLOCK_WEIGHT)

    def _fail(self, st: _Stats, weight: int) -> None:
        st.failures += weight
        st.consecutive += weight
        delay = min(BACKOFF_BASE * 2 ** (st.consecutive - 1), BACKOFF_MAX)
        st.backoff_until = self._clock() + delay

    def back_off(self, peer: object, seconds: float) -> None:
        """Leave ``peer`` aside for at least ``seconds`` (it asked us to: HTTP 429)."""
        st = self._stats.setdefault(str(peer), _Stats())
        st.backoff_until = max(st.backoff_until, self._clock() + seconds)

    def score(self, peer: object) -> float:
        st = self._stats.get(str(peer))
        if st is None or st.successes + st.failures == 0:
            return NO_HISTORY_SCORE
        rate = (st.successes + 1) / (st.successes + st.failures + 2)
        lat = (1 / (1 + (st.latency_sum / st.latency_n) / LATENCY_REF)
               if st.latency_n else 0.5)
        tput = st.bytes / st.busy_time if st.busy_time > 0 else None
        tput_factor = tput / (tput + THROUGHPUT_REF) if tput is not None else 0.5
        return rate * (0.6 + 0.2 * lat + 0.2 * tput_factor) * BAD_BLOCK_FACTOR ** st.bad_blocks

    def in_backoff(self, peer: object) -> bool:
        st = self._stats.get(str(peer))
        return st is not None and st.backoff_until > self._clock()

    def get_optimal_providers(self, candidates: Iterable[object], count: int | None = None
                              ) -> list[object]:
        """``candidates`` best first: peers not backing off, by score; then those that are.

        Duplicates (by string form) are dropped; the objects themselves are returned.
        """
        unique: dict[str, object] = {}
        for peer in candidates:
            unique.setdefault(str(peer), peer)
        ranked = sorted(unique.items(),
                        key=lambda kv: (self.in_backoff(kv[0]), -self.score(kv[0])))
        peers = [peer for _, peer in ranked]
        return peers if count is None else peers[:count]

    def record(self, peer: object) -> ProviderRecord:
        key = str(peer)
        st = self._stats.get(key) or _Stats()
        return ProviderRecord(
            peer_id=key,
            successes=st.successes,
            failures=st.failures,
            bad_blocks=st.bad_blocks,
            bytes_received=st.bytes,
            mean_latency=st.latency_sum / st.latency_n if st.latency_n else None,
            throughput=st.bytes / st.busy_time if st.busy_time > 0 else None,
            consecutive_failures=st.consecutive,
            backoff_until=st.backoff_until if st.backoff_until > self._clock() else 0.0,
            score=self.score(key),
        )

    def known(self) -> list[str]:
        return list(self._stats)
