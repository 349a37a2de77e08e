"""The pure rate-limit core: waits, shares, token corrections, provider holds."""

from __future__ import annotations

import math

import pytest

from streams.core.ports.model import ChatMessage, ProviderLimits
from streams.pipeline.rate_limit import (
    HOLD,
    Bucket,
    PerMinute,
    Permit,
    RateLimits,
    TooLong,
    estimate_tokens,
    hold_from,
    shares,
)

KEY = "sim/m"


def limits(
    *, model: PerMinute | None = None, agent: PerMinute | None = None, burst_s: float = 0.0, now: float = 0.0
) -> RateLimits:
    return RateLimits.declare(
        agents={"triage": agent} if agent else {},
        models={KEY: model} if model else {},
        burst_s=burst_s,
        now=now,
    )


def starts(book: RateLimits, times: list[float], *, tokens: int = 0, agent: str = "triage") -> list[float]:
    """When calls reserved at ``times`` may start."""
    result = []
    for now in times:
        permit = book.reserve(agent, KEY, tokens=tokens, now=now, max_wait_s=math.inf)
        assert isinstance(permit, Permit)
        result.append(permit.start_at)
    return result


def test_calls_are_spaced_at_the_rate_and_a_full_bucket_allows_a_burst() -> None:
    book = limits(model=PerMinute(requests=60), burst_s=2.0, now=0.0)  # 1 a second, at most 2 at once
    # empty at first: the first call waits one interval; at t=10 the bucket is full again
    assert starts(book, [0, 0, 0]) == [1.0, 2.0, 3.0]
    assert starts(book, [10, 10, 10, 10]) == [10.0, 10.0, 11.0, 12.0]


def test_reserving_books_the_place_so_waiters_are_served_in_arrival_order() -> None:
    book = limits(model=PerMinute(requests=120), now=0.0)
    permits = [book.reserve("triage", KEY, tokens=0, now=5.0, max_wait_s=10) for _ in range(4)]
    assert [p.start_at for p in permits if isinstance(p, Permit)] == [5.0, 5.5, 6.0, 6.5]
    assert all(isinstance(p, Permit) and p.limit == "model_requests" for p in permits[1:])
    assert isinstance(permits[0], Permit) and permits[0].limit is None  # it did not wait


def test_a_wait_longer_than_the_caller_can_afford_reserves_nothing() -> None:
    book = limits(model=PerMinute(requests=60), now=0.0)
    starts(book, [100, 100, 100])  # booked until 102
    refused = book.reserve("triage", KEY, tokens=0, now=100, max_wait_s=2.5)
    assert refused == TooLong(3.0, "model_requests")
    assert starts(book, [100]) == [103.0]  # the refused call did not take a place


def test_a_cancelled_reservation_gives_its_place_back() -> None:
    book = limits(model=PerMinute(requests=60), now=0.0)
    first = book.reserve("triage", KEY, tokens=0, now=100, max_wait_s=9)
    second = book.reserve("triage", KEY, tokens=0, now=100, max_wait_s=9)
    assert isinstance(first, Permit) and isinstance(second, Permit) and second.start_at == 101
    book.cancel(second)
    assert starts(book, [100]) == [101.0]


def test_agent_and_model_limits_both_apply_and_the_tightest_one_is_named() -> None:
    book = limits(model=PerMinute(requests=600), agent=PerMinute(requests=60), now=0.0)
    permits = [book.reserve("triage", KEY, tokens=0, now=100, max_wait_s=9) for _ in range(3)]
    assert [p.start_at for p in permits if isinstance(p, Permit)] == [100.0, 101.0, 102.0]
    assert isinstance(permits[2], Permit) and permits[2].limit == "agent_requests"
    # another agent on the same model only meets the model's limit, which triage used 3 of
    other = book.reserve("invoices", KEY, tokens=0, now=100, max_wait_s=9)
    assert isinstance(other, Permit) and other.start_at == pytest.approx(100.3)


def test_tokens_are_reserved_by_estimate_and_corrected_by_real_usage() -> None:
    book = limits(model=PerMinute(tokens=6000), burst_s=1.0, now=0.0)  # 100 tokens a second, 100 at once
    big = book.reserve("triage", KEY, tokens=500, now=100, max_wait_s=60)
    assert isinstance(big, Permit) and big.start_at == 100.0  # more than the bucket holds: a full one will do
    book.correct(big, tokens_used=200)  # it used 300 fewer: 3 s of tokens come back
    assert starts(book, [100], tokens=100) == [pytest.approx(102.0)]


def test_using_more_tokens_than_reserved_delays_later_calls() -> None:
    book = limits(model=PerMinute(tokens=6000), burst_s=1.0, now=0.0)
    permit = book.reserve("triage", KEY, tokens=100, now=100, max_wait_s=60)
    assert isinstance(permit, Permit) and permit.start_at == 100.0
    book.correct(permit, tokens_used=400)
    assert starts(book, [100], tokens=100) == [pytest.approx(104.0)]


def test_a_share_divides_the_rate_and_no_share_means_no_calls() -> None:
    book = limits(model=PerMinute(requests=60), now=0.0)
    book.reshare({}, {KEY: 0.5}, now=0.0)
    assert starts(book, [100, 100, 100]) == [100.0, 102.0, 104.0]
    book.reshare({}, {KEY: 0.0}, now=100)
    refused = book.reserve("triage", KEY, tokens=0, now=200, max_wait_s=1e9)
    assert isinstance(refused, TooLong) and math.isinf(refused.wait_s)


def test_a_share_that_grows_is_earned_at_the_refill_rate_not_granted_as_a_burst() -> None:
    bucket = Bucket("model_requests", "requests", per_minute=60, burst_s=10, share=0.5, full_at=0.0)
    assert bucket.level(100) == pytest.approx(5.0)  # full: 10 s of 0.5 a second
    bucket.reshare(1.0, now=100)
    assert bucket.level(100) == pytest.approx(5.0)  # the bucket is bigger, not fuller
    assert bucket.level(105) == pytest.approx(10.0)  # and fills at the new rate
    bucket.reshare(0.25, now=105)
    assert bucket.level(105) == pytest.approx(2.5)  # a smaller share keeps at most its new size


def test_a_share_keeps_calls_booked_ahead() -> None:
    bucket = Bucket("model_requests", "requests", per_minute=60, burst_s=0, share=1.0, full_at=0.0)
    for _ in range(4):
        bucket.take(1, now=100)  # booked until 104: 4 calls ahead
    bucket.reshare(0.5, now=100)
    assert bucket.wait_s(1, now=100) == pytest.approx(8.0)  # the 4 booked, at 0.5 a second


def test_shares_follow_the_partitions_owned_of_the_topics_read() -> None:
    reads = {"triage": ["tickets", "triage.retry.1"], "sim/m": ["tickets", "triage.retry.1", "invoices"]}
    owned = [("tickets", 0), ("tickets", 1), ("triage.retry.1", 0), ("triage.retry.1", 1), ("other", 3)]
    assert shares(owned, reads, partitions=4) == {"triage": 0.5, "sim/m": pytest.approx(4 / 12)}
    assert shares([], reads, partitions=4) == {"triage": 0.0, "sim/m": 0.0}
    everything = [(topic, p) for topic in ("tickets", "triage.retry.1", "invoices") for p in range(4)]
    assert shares(everything, reads, partitions=4) == {"triage": 1.0, "sim/m": 1.0}


def test_two_workers_shares_add_up_to_the_whole_limit() -> None:
    reads = {"sim/m": ["tickets", "invoices"]}
    first = [("tickets", 0), ("tickets", 1), ("tickets", 2), ("invoices", 0)]
    second = [("tickets", 3), ("invoices", 1), ("invoices", 2), ("invoices", 3)]
    assert shares(first, reads, partitions=4)["sim/m"] + shares(second, reads, partitions=4)["sim/m"] == 1.0


def test_a_hold_stops_calls_to_its_model_only() -> None:
    book = limits(now=0.0)
    book.hold(KEY, until=105.0)
    held = book.reserve("triage", KEY, tokens=0, now=100, max_wait_s=10)
    assert isinstance(held, Permit) and (held.start_at, held.limit) == (105.0, HOLD)
    other = book.reserve("triage", "sim/other", tokens=0, now=100, max_wait_s=10)
    assert isinstance(other, Permit) and other.start_at == 100.0
    assert book.reserve("triage", KEY, tokens=0, now=100, max_wait_s=4) == TooLong(5.0, HOLD)


def test_holds_only_grow_and_expire() -> None:
    book = limits(now=0.0)
    book.hold(KEY, until=105.0)
    book.hold(KEY, until=103.0)
    assert book.held_until(KEY, now=100) == 105.0
    assert book.pending(now=100)
    assert book.held_until(KEY, now=106) is None
    book.recovering.discard(KEY)
    assert not book.pending(now=106)


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        (ProviderLimits(retry_after_s=2.0), (102.0, "retry_after")),
        (ProviderLimits(remaining_requests=0, reset_requests_s=6.0), (106.0, "exhausted")),
        (ProviderLimits(remaining_tokens=0, reset_tokens_s=0.5, retry_after_s=0.2), (100.5, "exhausted")),
        (ProviderLimits(retry_after_s=9.0, remaining_requests=0, reset_requests_s=1.0), (109.0, "retry_after")),
        (ProviderLimits(remaining_requests=3, reset_requests_s=6.0), None),
        (ProviderLimits(remaining_requests=0), None),  # no reset: nothing to hold until
        (ProviderLimits(limit_requests=60), None),
    ],
)
def test_what_a_provider_says_holds_its_model(said: ProviderLimits, expected: tuple[float, str] | None) -> None:
    assert hold_from(said, now=100.0) == expected


def test_token_estimate_is_prompt_chars_over_four_plus_max_tokens() -> None:
    messages = [ChatMessage("system", "x" * 400), ChatMessage("user", "y" * 99)]
    assert estimate_tokens(messages, {"max_tokens": 256}) == 124 + 256
    assert estimate_tokens(messages, {"max_completion_tokens": 10}) == 134
    assert estimate_tokens(messages, {}) == 124
    assert estimate_tokens(messages, {"max_tokens": "lots"}) == 124
