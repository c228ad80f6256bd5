"""Provider reputation: measured outcomes decide the order; failures back off."""

from __future__ import annotations

from ipfs_mcp.p2p.reputation import BACKOFF_MAX, NO_HISTORY_SCORE, ProviderReputation


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_no_history_never_outranks_a_good_record() -> None:
    rep = ProviderReputation()
    rep.update_provider_stats("slow-but-good", True, latency=30.0, nbytes=1)
    assert rep.score("slow-but-good") > rep.score("stranger") == NO_HISTORY_SCORE
    assert rep.get_optimal_providers(["stranger", "slow-but-good"]) == ["slow-but-good",
                                                                        "stranger"]


def test_latency_and_throughput_order_good_peers() -> None:
    rep = ProviderReputation()
    for _ in range(5):
        rep.update_provider_stats("fast", True, latency=0.01, nbytes=1_000_000)
        rep.update_provider_stats("slow", True, latency=2.0, nbytes=1_000)
    assert rep.get_optimal_providers(["slow", "fast"], count=1) == ["fast"]
    record = rep.record("fast")
    assert record.successes == 5 and record.mean_latency == 0.01
    assert record.throughput and record.throughput > 50e6


def test_failures_back_off_exponentially_and_recover() -> None:
    clock = Clock()
    rep = ProviderReputation(clock=clock)
    rep.update_provider_stats("flaky", True, latency=0.1, nbytes=10)
    delays = []
    for _ in range(4):
        rep.update_provider_stats("flaky", False)
        delays.append(rep.record("flaky").backoff_until - clock.now)
    assert delays == [1.0, 2.0, 4.0, 8.0]
    assert rep.get_optimal_providers(["flaky", "stranger"]) == ["stranger", "flaky"]
    clock.now += 9
    assert not rep.in_backoff("flaky")
    rep.update_provider_stats("flaky", True, latency=0.1, nbytes=10)
    assert rep.record("flaky").consecutive_failures == 0
    for _ in range(30):
        rep.update_provider_stats("dead", False)
    assert rep.record("dead").backoff_until - clock.now == BACKOFF_MAX


def test_a_bad_block_costs_more_than_a_long_good_record() -> None:
    rep = ProviderReputation()
    for _ in range(20):
        rep.update_provider_stats("liar", True, latency=0.01, nbytes=1_000_000)
    rep.record_bad_block("liar")
    assert rep.score("liar") < NO_HISTORY_SCORE
    assert rep.record("liar").bad_blocks == 1
    assert rep.get_optimal_providers(["liar", "stranger"])[0] == "stranger"
