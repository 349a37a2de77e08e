"""The limiter shell: it sleeps what the core says, honours holds, probes after them, follows shares."""

from __future__ import annotations

import asyncio
import math

import pytest
from fakes import FakeClock, RecordingObserver

from streams.core.ports.model import ProviderLimits
from streams.pipeline.limiter import NO_LIMITS, Limiter
from streams.pipeline.rate_limit import HOLD, PerMinute, Permit, RateLimits, TooLong

KEY = "sim/m"


def make_limiter(
    clock: FakeClock, *, model: PerMinute | None = None, agent: PerMinute | None = None, burst_s: float = 0.0
) -> tuple[Limiter, RecordingObserver]:
    limits = RateLimits.declare(
        agents={"triage": agent} if agent else {},
        models={KEY: model} if model else {},
        burst_s=burst_s,
        now=clock.monotonic(),
    )
    reads = {"triage": frozenset({"tickets"}), KEY: frozenset({"tickets", "invoices"})}
    limiter = Limiter(limits, clock, reads=reads, partitions=4)
    limiter.observer = observer = RecordingObserver()
    return limiter, observer


async def acquire(limiter: Limiter, *, tokens: int = 0, max_wait_s: float = 60.0) -> Permit | TooLong:
    return await limiter.acquire("triage", KEY, tokens=tokens, max_wait_s=max_wait_s)


async def test_calls_over_a_declared_limit_sleep_until_their_turn() -> None:
    clock = FakeClock()
    limiter, observer = make_limiter(clock, model=PerMinute(requests=60))
    assert not limiter.idle
    permits = [await acquire(limiter) for _ in range(3)]
    assert all(isinstance(p, Permit) for p in permits)
    assert clock.sleeps == [pytest.approx(1.0, abs=0.05)] * 2  # the first went at once
    assert [(limit, round(s, 1)) for _, limit, s in observer.waits] == [("model_requests", 1.0)] * 2
    assert isinstance(permits[2], Permit) and permits[2].waited_s == pytest.approx(1.0, abs=0.05)


async def test_a_wait_past_what_the_caller_can_afford_is_refused_at_once() -> None:
    clock = FakeClock()
    limiter, observer = make_limiter(clock, model=PerMinute(requests=6))
    await acquire(limiter)
    refused = await acquire(limiter, max_wait_s=5)
    assert isinstance(refused, TooLong) and refused.limit == "model_requests" and refused.wait_s > 9
    assert clock.sleeps == [] and observer.refusals == [(KEY, "model_requests")]


async def test_without_limits_the_limiter_is_idle_until_a_provider_asks_to_hold() -> None:
    clock = FakeClock()
    limiter, observer = make_limiter(clock)
    assert limiter.idle
    limiter.settle(None, KEY, tokens_used=None, limits=ProviderLimits(remaining_requests=5, reset_requests_s=1))
    assert limiter.idle  # remaining above 0: nothing to hold
    limiter.settle(None, KEY, tokens_used=None, limits=ProviderLimits(retry_after_s=3.0))
    assert not limiter.idle and observer.holds == [(KEY, "retry_after")]
    probe = await acquire(limiter)
    assert isinstance(probe, Permit) and probe.probe and probe.limit == HOLD
    assert clock.sleeps == [pytest.approx(3.0, abs=0.05)]
    limiter.settle(probe, KEY, tokens_used=30, limits=None)  # it got through
    assert limiter.idle


async def test_after_a_hold_one_call_probes_and_the_others_wait_for_its_answer() -> None:
    clock = FakeClock()
    limiter, _ = make_limiter(clock)
    limiter.settle(None, KEY, tokens_used=None, limits=ProviderLimits(retry_after_s=1.0))
    probe = await acquire(limiter)
    assert isinstance(probe, Permit) and probe.probe
    waiting = [asyncio.create_task(acquire(limiter)) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(task.done() for task in waiting)
    # the probe is told to hold again: the waiters wait for that hold, then one of them probes
    limiter.settle(probe, KEY, tokens_used=None, limits=ProviderLimits(remaining_requests=0, reset_requests_s=5.0))
    await asyncio.sleep(0)
    done = [task for task in waiting if task.done()]
    assert len(done) == 1
    second = done[0].result()
    assert isinstance(second, Permit) and second.probe
    assert clock.sleeps[-1] == pytest.approx(5.0, abs=0.05)
    limiter.settle(second, KEY, tokens_used=None, limits=None)
    rest = await asyncio.gather(*(task for task in waiting if task not in done))
    assert all(isinstance(p, Permit) and not p.probe for p in rest)
    assert limiter.idle


async def test_a_hold_longer_than_the_caller_can_afford_is_refused() -> None:
    clock = FakeClock()
    limiter, observer = make_limiter(clock)
    limiter.settle(None, KEY, tokens_used=None, limits=ProviderLimits(remaining_tokens=0, reset_tokens_s=30.0))
    refused = await acquire(limiter, max_wait_s=10)
    assert isinstance(refused, TooLong) and refused.limit == HOLD and 29 < refused.wait_s <= 30
    assert observer.refusals == [(KEY, HOLD)] and observer.holds == [(KEY, "exhausted")]


async def test_a_hold_placed_while_a_call_waits_for_its_turn_holds_it_too() -> None:
    clock = FakeClock()
    limiter, _ = make_limiter(clock, model=PerMinute(requests=60))
    await acquire(limiter)

    async def sleep_then_hold(seconds: float) -> None:
        clock.sleeps.append(seconds)
        clock.t += seconds
        if len(clock.sleeps) == 1:  # meanwhile another call's answer asks to hold for 4 s
            limiter.settle(None, KEY, tokens_used=None, limits=ProviderLimits(retry_after_s=4.0))

    clock.sleep = sleep_then_hold  # type: ignore[method-assign]
    permit = await acquire(limiter)
    assert isinstance(permit, Permit) and permit.probe
    assert [round(s, 1) for s in clock.sleeps] == [1.0, 4.0]


async def test_a_call_cancelled_while_it_waits_gives_its_place_back() -> None:
    clock = FakeClock()
    limiter, _ = make_limiter(clock, model=PerMinute(requests=60))
    await acquire(limiter)
    forever = asyncio.Event()

    async def sleep_forever(seconds: float) -> None:
        await forever.wait()

    clock.sleep = sleep_forever  # type: ignore[method-assign]
    waiting = asyncio.create_task(acquire(limiter))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    clock.sleep = FakeClock.sleep.__get__(clock)  # type: ignore[method-assign]
    await acquire(limiter)
    assert clock.sleeps == [pytest.approx(1.0, abs=0.1)]  # one interval after the first, not two


async def test_settling_corrects_the_token_reservation() -> None:
    clock = FakeClock()
    limiter, _ = make_limiter(clock, model=PerMinute(tokens=6000), burst_s=1.0)  # 100 tokens a second
    clock.t += 10  # the bucket fills
    first = await acquire(limiter, tokens=1000)
    assert isinstance(first, Permit) and clock.sleeps == []
    limiter.settle(first, KEY, tokens_used=100, limits=None)  # 900 tokens back: 9 s sooner
    await acquire(limiter, tokens=100)
    assert clock.sleeps == [pytest.approx(1.0, abs=0.1)]  # the 100 it used refill in 1 s (not 10)


async def test_the_share_follows_the_partitions_assigned() -> None:
    clock = FakeClock()
    limiter, observer = make_limiter(clock, model=PerMinute(requests=60))
    limiter.assign([("tickets", 0), ("invoices", 0)])  # 2 of the model's 8 partitions: 15 a minute
    assert observer.shares == {("model", KEY): 0.25}
    await acquire(limiter)
    await acquire(limiter)
    assert clock.sleeps == [pytest.approx(4.0, abs=0.05)]
    limiter.assign([])
    refused = await acquire(limiter, max_wait_s=1e9)
    assert isinstance(refused, TooLong) and math.isinf(refused.wait_s)


async def test_no_limits_is_always_idle_and_never_waits() -> None:
    assert NO_LIMITS.idle
    permit = await NO_LIMITS.acquire("triage", KEY, tokens=10, max_wait_s=0)
    assert isinstance(permit, Permit) and permit.start_at == 0.0
    NO_LIMITS.settle(permit, KEY, tokens_used=5, limits=ProviderLimits(retry_after_s=9))
    assert NO_LIMITS.idle


async def test_a_probe_that_gets_through_while_another_answer_asked_to_hold_does_not_end_the_recovery() -> None:
    clock = FakeClock()
    limiter, _ = make_limiter(clock)
    limiter.settle(None, KEY, tokens_used=None, limits=ProviderLimits(retry_after_s=1.0))
    probe = await acquire(limiter)
    assert isinstance(probe, Permit) and probe.probe
    limiter.settle(None, KEY, tokens_used=None, limits=ProviderLimits(retry_after_s=2.0))  # an older call's 429
    limiter.settle(probe, KEY, tokens_used=None, limits=None)
    after = await acquire(limiter)
    assert isinstance(after, Permit) and after.probe  # the next call after that hold probes again
