"""The model chain through `process`: retries, re-asks, trimming, fallbacks, deadline, circuit breakers, tiers."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from fakes import FakeClock, ScriptedLimiter, ScriptedModel, make_deps, reply

from streams.agent.definition import Agent, ModelSpec
from streams.agent.prompt import render_prompt
from streams.core.catalogue import Catalogue
from streams.core.domain import DeadLetter, RequestEvent, Result, RetryLater, Review, SourceRecord, Stage
from streams.core.errors import (
    ContextLengthExceeded,
    ModelRefused,
    ProviderAuthError,
    ProviderRateLimited,
    ProviderServerError,
    ProviderTimeout,
)
from streams.core.ports.model import ProviderLimits
from streams.pipeline.circuit import CircuitBreakers, CircuitState
from streams.pipeline.limiter import Limiter
from streams.pipeline.process import process
from streams.pipeline.rate_limit import PerMinute, RateLimits, TooLong, estimate_tokens

GOOD = orjson.dumps(
    {"category": "billing", "priority": "high", "summary": "Double charge.", "suggested_reply": "Sorry!"}
).decode()


def with_chain(agent: Agent, *specs: dict[str, Any], **reliability: Any) -> Agent:
    chain = [ModelSpec(**{"model": "m", "timeout_s": 10, **spec}) for spec in specs]
    policy = agent.definition.reliability.model_copy(update=reliability)
    definition = agent.definition.model_copy(update={"model_chain": chain, "reliability": policy})
    return dataclasses.replace(agent, definition=definition)


@pytest.fixture
def triage(agents: dict[str, Agent]) -> Agent:
    return agents["support_triage"]


async def test_transient_failures_retry_then_fall_back(
    catalogue: Catalogue, triage: Agent, make_source: Callable[..., SourceRecord]
) -> None:
    agent = with_chain(triage, {"provider": "a", "max_retries": 2}, {"provider": "b"}, backoff_base_s=1.0)
    primary = ScriptedModel([ProviderTimeout("slow")] * 3)
    secondary = ScriptedModel([reply(GOOD, model_version="big-model-2")])
    clock = FakeClock()
    outcome = await process(make_source(), agent, make_deps(catalogue, {"a": primary, "b": secondary}, clock=clock))
    assert isinstance(outcome, Result) and outcome.model_version == "big-model-2"
    assert [(a.provider, a.purpose, a.outcome) for a in outcome.trace.attempts] == [
        ("a", "initial", "provider_timeout"),
        ("a", "retry", "provider_timeout"),
        ("a", "retry", "provider_timeout"),
        ("b", "fallback", "ok"),
    ]
    assert len(clock.sleeps) == 2 and clock.sleeps[0] <= 1.0 and clock.sleeps[1] <= 2.0


async def test_an_invalid_answer_is_re_asked_with_its_problems(
    catalogue: Catalogue, triage: Agent, make_source: Callable[..., SourceRecord]
) -> None:
    bad = '{"category": "billing", "priority": "asap", "summary": "s", "suggested_reply": "r"}'
    model = ScriptedModel([reply(bad), reply(GOOD)])
    outcome = await process(make_source(), with_chain(triage, {"provider": "a"}), make_deps(catalogue, {"a": model}))
    assert isinstance(outcome, Result)
    assert [a.purpose for a in outcome.trace.attempts] == ["initial", "reask"]
    reask = model.requests[1].messages
    assert [m.role for m in reask] == ["system", "user", "assistant", "user"]
    assert reask[2].content == bad
    assert "$.priority: 'asap' is not one of low, normal, high, urgent" in reask[3].content


async def test_auth_failure_is_not_retried(
    catalogue: Catalogue, triage: Agent, make_source: Callable[..., SourceRecord]
) -> None:
    agent = with_chain(triage, {"provider": "a", "max_retries": 3}, {"provider": "b"})
    primary, secondary = ScriptedModel([ProviderAuthError("401")]), ScriptedModel([reply(GOOD)])
    outcome = await process(make_source(), agent, make_deps(catalogue, {"a": primary, "b": secondary}))
    assert isinstance(outcome, Result)
    assert [(a.provider, a.outcome) for a in outcome.trace.attempts] == [("a", "provider_auth"), ("b", "ok")]


async def test_a_prompt_too_long_for_a_model_skips_it(
    catalogue: Catalogue, triage: Agent, make_source: Callable[..., SourceRecord], make_event
) -> None:
    agent = with_chain(triage, {"provider": "a", "context_window": 200}, {"provider": "b", "context_window": 100_000})
    event = make_event(payload={"ticket_id": "T-1", "body": "word " * 2000})
    primary, secondary = ScriptedModel([]), ScriptedModel([reply(GOOD)])
    outcome = await process(make_source(event=event), agent, make_deps(catalogue, {"a": primary, "b": secondary}))
    assert isinstance(outcome, Result) and primary.requests == []


async def test_the_deadline_ends_the_event_with_its_attempts_recorded(
    catalogue: Catalogue, triage: Agent, make_source: Callable[..., SourceRecord]
) -> None:
    clock = FakeClock()
    slow = ScriptedModel([ProviderTimeout("slow")] * 5, seconds_per_call=10, clock=clock)
    agent = with_chain(triage, {"provider": "a", "max_retries": 5}, deadline_s=25, backoff_base_s=0.1)
    outcome = await process(make_source(), agent, make_deps(catalogue, {"a": slow}, clock=clock))
    assert isinstance(outcome, DeadLetter)
    assert (outcome.failure.stage, outcome.failure.reason) == (Stage.MODEL, "deadline_exceeded")
    assert len(outcome.trace.attempts) == 3
    assert all(r.timeout_s <= 10 for r in slow.requests)


async def test_deadline_and_refusal_can_route_to_review(
    catalogue: Catalogue, triage: Agent, make_source: Callable[..., SourceRecord]
) -> None:
    agent = with_chain(triage, {"provider": "a"}, on_refusal="review")
    outcome = await process(make_source(), agent, make_deps(catalogue, {"a": ScriptedModel([ModelRefused("no")])}))
    assert isinstance(outcome, Review)
    assert outcome.reason == "model_refused"
    assert [role for role, _ in outcome.prompt] == ["system", "user"]
    assert len(outcome.trace.attempts) == 1


async def test_an_open_circuit_skips_the_model_for_every_later_event(
    catalogue: Catalogue, triage: Agent, make_source: Callable[..., SourceRecord]
) -> None:
    agent = with_chain(triage, {"provider": "a", "max_retries": 2}, {"provider": "b"})
    breakers = CircuitBreakers(failure_threshold=3, cooldown_s=60)
    clock = FakeClock()
    primary = ScriptedModel([ProviderTimeout("down")] * 3)
    secondary = ScriptedModel([reply(GOOD), reply(GOOD)])
    deps = make_deps(catalogue, {"a": primary, "b": secondary}, clock=clock, breakers=breakers)
    first = await process(make_source(offset=1), agent, deps)
    second = await process(make_source(offset=2), agent, deps)
    assert isinstance(first, Result) and isinstance(second, Result)
    assert len(primary.requests) == 3  # the second event never waited on the dead provider
    assert [a.provider for a in second.trace.attempts] == ["b"]
    assert [v.state for v in breakers.snapshot(clock.monotonic())] == [CircuitState.OPEN]


async def test_nothing_left_to_try_is_a_dead_letter_naming_the_last_failure(
    catalogue: Catalogue, triage: Agent, make_source: Callable[..., SourceRecord]
) -> None:
    agent = with_chain(triage, {"provider": "a", "max_retries": 0}, {"provider": "b", "max_retries": 0})
    models = {"a": ScriptedModel([ProviderTimeout("t")]), "b": ScriptedModel([reply("nope"), reply("still no")])}
    outcome = await process(make_source(), agent, make_deps(catalogue, models))
    assert isinstance(outcome, DeadLetter)
    assert (outcome.failure.stage, outcome.failure.reason) == (Stage.PARSE, "output_not_json")
    assert [a.purpose for a in outcome.trace.attempts] == ["initial", "fallback", "reask"]


async def test_a_transient_failure_that_outlasts_the_retries_waits_in_the_next_tier(
    catalogue: Catalogue, triage: Agent, make_source: Callable[..., SourceRecord]
) -> None:
    agent = with_chain(triage, {"provider": "a", "max_retries": 1}, retry_delays_s=(30, 300))
    model = ScriptedModel([ProviderServerError("500")] * 2)
    outcome = await process(make_source(), agent, make_deps(catalogue, {"a": model}))
    assert isinstance(outcome, RetryLater) and outcome.tier == 1
    assert (outcome.failure.stage, outcome.failure.reason) == (Stage.MODEL, "provider_5xx")
    assert [a.purpose for a in outcome.trace.new_attempts] == ["initial", "retry"]


async def test_the_last_tier_ends_in_a_dead_letter_counting_every_tier_s_attempts(
    catalogue: Catalogue, triage: Agent, make_source: Callable[..., SourceRecord]
) -> None:
    agent = with_chain(triage, {"provider": "a", "max_retries": 1}, retry_delays_s=(30, 300))
    model = ScriptedModel([ProviderServerError("500")] * 6)
    deps = make_deps(catalogue, {"a": model}, breakers=CircuitBreakers(failure_threshold=100))
    first = await process(make_source(), agent, deps)
    second = await process(make_source(), agent, deps, tier=1, earlier=first.trace.attempts)
    last = await process(make_source(), agent, deps, tier=2, earlier=second.trace.attempts)
    assert isinstance(second, RetryLater) and second.tier == 2
    assert isinstance(last, DeadLetter) and last.failure.reason == "provider_5xx" and last.trace.tier == 2
    assert [a.number for a in last.trace.attempts] == [1, 2, 3, 4, 5, 6]
    assert [a.purpose for a in last.trace.new_attempts] == ["tier_retry", "retry"]


@pytest.mark.parametrize(
    ("failure", "tiers"),
    [(ProviderAuthError("401"), (30,)), (ModelRefused("no"), (30,)), (ProviderServerError("500"), ())],
)
async def test_only_transient_failures_with_a_tier_left_wait(
    catalogue: Catalogue, triage: Agent, make_source: Callable[..., SourceRecord], failure: Exception, tiers: tuple
) -> None:
    agent = with_chain(triage, {"provider": "a", "max_retries": 0}, retry_delays_s=tiers)
    outcome = await process(make_source(), agent, make_deps(catalogue, {"a": ScriptedModel([failure])}))
    assert isinstance(outcome, DeadLetter)


async def test_open_circuits_send_the_event_to_a_tier_and_small_windows_do_not(
    catalogue: Catalogue, triage: Agent, make_source: Callable[..., SourceRecord], make_event
) -> None:
    breakers, clock = CircuitBreakers(failure_threshold=1, cooldown_s=60), FakeClock()
    breakers.record_failure("a/m", clock.monotonic())
    agent = with_chain(triage, {"provider": "a"}, retry_delays_s=(30,))
    deps = make_deps(catalogue, {"a": ScriptedModel([])}, clock=clock, breakers=breakers)
    waiting = await process(make_source(), agent, deps)
    assert isinstance(waiting, RetryLater) and waiting.failure.reason == "circuit_open"
    small = with_chain(triage, {"provider": "b", "context_window": 10}, retry_delays_s=(30,))
    too_long = await process(make_source(), small, deps)
    assert isinstance(too_long, DeadLetter) and too_long.failure.reason == "no_model_available"


async def test_an_auth_failure_opens_the_circuit_at_once_and_says_why(
    catalogue: Catalogue, triage: Agent, make_source: Callable[..., SourceRecord]
) -> None:
    breakers, clock = CircuitBreakers(failure_threshold=5, cooldown_s=60), FakeClock()
    agent = with_chain(triage, {"provider": "a"}, {"provider": "b"})
    models = {"a": ScriptedModel([ProviderAuthError("401")]), "b": ScriptedModel([reply(GOOD), reply(GOOD)])}
    deps = make_deps(catalogue, models, clock=clock, breakers=breakers)
    await process(make_source(offset=1), agent, deps)
    second = await process(make_source(offset=2), agent, deps)
    assert [a.provider for a in second.trace.attempts] == ["b"]
    [view] = breakers.snapshot(clock.monotonic())
    assert (view.key, view.state, view.last_failure) == ("a/m", CircuitState.OPEN, "provider_auth")


def with_trimming(agent: Agent) -> Agent:
    prompt = agent.definition.prompt.model_copy(update={"trim_optional_context": True})
    return dataclasses.replace(agent, definition=agent.definition.model_copy(update={"prompt": prompt}))


async def test_a_context_overflow_trims_the_optional_context_when_the_agent_allows_it(
    catalogue: Catalogue, triage: Agent, make_source: Callable[..., SourceRecord], make_event
) -> None:
    event = make_event(payload={"ticket_id": "T-1", "body": "Refund please", "subject": "long history " * 50})
    agent = with_trimming(with_chain(triage, {"provider": "a"}))
    model = ScriptedModel([ContextLengthExceeded("too long"), reply(GOOD)])
    outcome = await process(make_source(event=event), agent, make_deps(catalogue, {"a": model}))
    assert isinstance(outcome, Result)
    assert [a.purpose for a in outcome.trace.attempts] == ["initial", "trim"]
    assert "long history" in model.requests[0].messages[1].content
    assert "long history" not in model.requests[1].messages[1].content
    assert "Refund please" in model.requests[1].messages[1].content
    assert outcome.trace.prompt_hash != _full_prompt_hash(agent, event)


async def test_a_prompt_that_fits_no_window_is_sent_trimmed_when_that_fits(
    catalogue: Catalogue, triage: Agent, make_source: Callable[..., SourceRecord], make_event
) -> None:
    event = make_event(payload={"ticket_id": "T-1", "body": "Refund please", "subject": "word " * 2000})
    model = ScriptedModel([reply(GOOD)])
    agent = with_trimming(with_chain(triage, {"provider": "a", "context_window": 1000}))
    outcome = await process(make_source(event=event), agent, make_deps(catalogue, {"a": model}))
    assert isinstance(outcome, Result) and "word word" not in model.requests[0].messages[1].content
    untrimmed = await process(make_source(event=event), with_chain(triage, {"provider": "a", "context_window": 1000}),
                              make_deps(catalogue, {"a": ScriptedModel([])}))  # fmt: skip
    assert isinstance(untrimmed, DeadLetter) and untrimmed.failure.reason == "no_model_available"


def _full_prompt_hash(agent: Agent, event: RequestEvent) -> str:
    return render_prompt(agent.templates, event).hash


# --- the rate limiter hook ----------------------------------------------------------------------------


def sim_limiter(clock: FakeClock, **limits: PerMinute) -> Limiter:
    book = RateLimits.declare(agents={}, models=limits, burst_s=0.0, now=clock.monotonic())
    return Limiter(book, clock, reads={}, partitions=4)


async def test_the_limiter_is_asked_before_a_call_and_told_its_usage_after(
    catalogue: Catalogue, triage: Agent, make_source: Callable[..., SourceRecord]
) -> None:
    clock = FakeClock()
    agent = with_chain(triage, {"provider": "a", "parameters": {"max_tokens": 300}}, deadline_s=6)
    model, limiter = ScriptedModel([reply(GOOD)]), ScriptedLimiter([2.0], clock)
    outcome = await process(make_source(), agent, make_deps(catalogue, {"a": model}, clock=clock, limiter=limiter))
    assert isinstance(outcome, Result)
    [(name, key, tokens, max_wait_s)] = limiter.acquired
    assert (name, key) == ("support_triage", "a/m")
    assert tokens == estimate_tokens(model.requests[0].messages, {"max_tokens": 300})
    assert 2.9 < max_wait_s <= 3  # half of the 6 s left is kept for the call itself
    assert 3.8 < model.requests[0].timeout_s <= 4  # the 2 s waited came off the call's time
    [(permit, key, used, said)] = limiter.settled
    assert permit is not None and (key, used, said) == ("a/m", 160, None)
    assert outcome.trace.attempts[0].latency_s == 0.25  # the wait is not the call's latency


async def test_a_wait_that_would_pass_the_deadline_moves_on_without_a_call(
    catalogue: Catalogue, triage: Agent, make_source: Callable[..., SourceRecord]
) -> None:
    clock, breakers = FakeClock(), CircuitBreakers(failure_threshold=1)
    agent = with_chain(triage, {"provider": "a"}, {"provider": "b"})
    primary, secondary = ScriptedModel([]), ScriptedModel([reply(GOOD)])
    limiter = ScriptedLimiter([TooLong(400.0, "model_requests"), 0.0], clock)
    deps = make_deps(catalogue, {"a": primary, "b": secondary}, clock=clock, breakers=breakers, limiter=limiter)
    outcome = await process(make_source(), agent, deps)
    assert isinstance(outcome, Result) and primary.requests == []
    assert [(a.provider, a.purpose) for a in outcome.trace.attempts] == [("b", "fallback")]
    assert breakers.snapshot(clock.monotonic()) == []  # waiting is not a provider failure
    assert [key for _, key, _, _ in limiter.acquired] == ["a/m", "b/m"]


async def test_a_wait_past_the_deadline_on_the_last_model_waits_in_a_retry_tier(
    catalogue: Catalogue, triage: Agent, make_source: Callable[..., SourceRecord]
) -> None:
    clock = FakeClock()
    agent = with_chain(triage, {"provider": "a", "max_retries": 2}, retry_delays_s=(30,))
    limiter = ScriptedLimiter([TooLong(math.inf, "agent_requests")], clock)
    outcome = await process(
        make_source(), agent, make_deps(catalogue, {"a": ScriptedModel([])}, clock=clock, limiter=limiter)
    )
    assert isinstance(outcome, RetryLater) and outcome.failure.reason == "rate_limit_wait"
    assert "agent_requests limit: this worker has no share of it" in outcome.failure.message
    assert outcome.trace.attempts == () and clock.sleeps == []


async def test_what_a_provider_says_reaches_the_limiter_even_while_it_is_idle(
    catalogue: Catalogue, triage: Agent, make_source: Callable[..., SourceRecord]
) -> None:
    clock = FakeClock()
    said = ProviderLimits(remaining_requests=0, reset_requests_s=2.0, retry_after_s=1.0)
    rate_limited = ProviderRateLimited("429", retry_after_s=1.0, limits=said)
    quiet = reply(GOOD)
    model = ScriptedModel([rate_limited, dataclasses.replace(quiet, rate_limits=said), quiet])
    limiter = ScriptedLimiter([], clock, idle=True)
    deps = make_deps(catalogue, {"a": model}, clock=clock, limiter=limiter)
    agent = with_chain(triage, {"provider": "a"})
    await process(make_source(), agent, deps)
    await process(make_source(), agent, deps)
    assert limiter.acquired == []
    assert limiter.settled == [(None, "a/m", None, said), (None, "a/m", 160, said)]  # the last said nothing


async def test_a_429_holds_the_model_for_every_event_not_only_its_own(
    catalogue: Catalogue, triage: Agent, make_source: Callable[..., SourceRecord]
) -> None:
    clock = FakeClock()
    agent = with_chain(triage, {"provider": "a", "max_retries": 0}, {"provider": "b"})
    said = ProviderLimits(retry_after_s=5.0)
    primary = ScriptedModel([ProviderRateLimited("429", retry_after_s=5.0, limits=said), reply(GOOD)])
    secondary = ScriptedModel([reply(GOOD)])
    deps = make_deps(catalogue, {"a": primary, "b": secondary}, clock=clock, limiter=sim_limiter(clock))
    first = await process(make_source(offset=1), agent, deps)
    assert [a.provider for a in first.trace.attempts] == ["a", "b"] and clock.sleeps == []
    second = await process(make_source(offset=2), agent, deps)
    assert isinstance(second, Result) and [a.provider for a in second.trace.attempts] == ["a"]
    assert clock.sleeps == [pytest.approx(5.0, abs=0.2)]  # the second event waited out the first one's 429


async def test_declared_limits_space_the_calls_of_successive_events(
    catalogue: Catalogue, triage: Agent, make_source: Callable[..., SourceRecord]
) -> None:
    clock = FakeClock()
    agent = with_chain(triage, {"provider": "a"})
    model = ScriptedModel([reply(GOOD)] * 3)
    deps = make_deps(catalogue, {"a": model}, clock=clock, limiter=sim_limiter(clock, **{"a/m": PerMinute(30)}))
    for offset in range(3):
        assert isinstance(await process(make_source(offset=offset), agent, deps), Result)
    assert clock.sleeps == [pytest.approx(2.0, abs=0.2)] * 2


async def test_429s_do_not_open_the_circuit_the_limiter_holds_the_model_instead(
    catalogue: Catalogue, triage: Agent, make_source: Callable[..., SourceRecord]
) -> None:
    clock, breakers = FakeClock(), CircuitBreakers(failure_threshold=2, cooldown_s=60)
    agent = with_chain(triage, {"provider": "a", "max_retries": 0}, {"provider": "b"})
    primary = ScriptedModel([ProviderRateLimited("429", retry_after_s=None)] * 3)
    secondary = ScriptedModel([reply(GOOD)] * 3)
    deps = make_deps(catalogue, {"a": primary, "b": secondary}, clock=clock, breakers=breakers)
    for offset in range(3):
        await process(make_source(offset=offset), agent, deps)
    assert len(primary.requests) == 3 and breakers.snapshot(clock.monotonic()) == []
