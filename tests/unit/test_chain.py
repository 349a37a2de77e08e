"""The model chain through `process`: retries, re-asks, fallbacks, deadline, circuit breakers."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from fakes import FakeClock, ScriptedModel, make_deps, reply

from streams.agents import Agent, ModelSpec
from streams.catalogue import Catalogue
from streams.circuit import CircuitBreakers, CircuitState
from streams.domain import DeadLetter, Result, Review, SourceRecord, Stage
from streams.errors import ModelRefused, ProviderAuthError, ProviderTimeout
from streams.pipeline import process

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
