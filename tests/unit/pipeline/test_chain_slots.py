"""The chain under a model's concurrency limit (streams/pipeline/model_slots.py): a call waits for a slot, its
timeout starts when its request is sent, and the wait counts against the event's deadline."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from fakes import GatedModel, ManualClock, RecordingBudgets, make_deps, settled

from streams.agent.definition import Agent, ModelSpec
from streams.core.catalogue import Catalogue
from streams.core.domain import DeadLetter, Result, SourceRecord
from streams.pipeline.deps import Deps
from streams.pipeline.model_slots import ModelSlots
from streams.pipeline.process import process

GOOD = orjson.dumps(
    {"category": "billing", "priority": "high", "summary": "Double charge.", "suggested_reply": "Sorry!"}
).decode()
KEY = "a/m"


def with_chain(agent: Agent, *specs: dict[str, Any], **reliability: Any) -> Agent:
    chain = [ModelSpec(**{"provider": "a", "model": "m", "timeout_s": 10, **spec}) for spec in specs]
    policy = agent.definition.reliability.model_copy(update={"retry_delays_s": (), **reliability})
    definition = agent.definition.model_copy(update={"model_chain": chain, "reliability": policy})
    return dataclasses.replace(agent, definition=definition)


@pytest.fixture
def triage(agents: dict[str, Agent]) -> Agent:
    return agents["support_triage"]


def one_at_a_time(catalogue: Catalogue, model: GatedModel, clock: ManualClock) -> Deps:
    return make_deps(catalogue, {"a": model}, clock=clock, slots=ModelSlots({KEY: 1}, clock))


async def ended(task: asyncio.Task[Any]) -> Any:
    """The task's result once it is done: a task left waiting fails the test instead of hanging it."""
    await settled(task.done)
    return task.result()


async def first_call_out_second_queued(
    agent: Agent, deps: Deps, model: GatedModel, make_source: Callable[..., SourceRecord]
) -> tuple[asyncio.Task[Any], asyncio.Task[Any]]:
    first = asyncio.create_task(process(make_source(offset=1), agent, deps))
    await settled(lambda: len(model.requests) == 1)
    second = asyncio.create_task(process(make_source(offset=2), agent, deps))
    await settled(lambda: deps.slots.waiting(KEY) == 1)
    return first, second


async def test_a_second_event_waits_for_the_slot_and_its_timeout_starts_when_its_request_is_sent(
    catalogue: Catalogue, triage: Agent, make_source: Callable[..., SourceRecord]
) -> None:
    clock, model = ManualClock(), GatedModel(GOOD)
    deps = one_at_a_time(catalogue, model, clock)
    first, second = await first_call_out_second_queued(with_chain(triage, {}), deps, model, make_source)
    clock.advance(4.0)  # the first call is still out: the second waits in Keel, not at the provider
    await settled(lambda: clock.sleeping == 1)
    assert len(model.requests) == 1 and not second.done()
    model.answer(0)
    assert isinstance(await ended(first), Result)
    await settled(lambda: len(model.requests) == 2)
    model.answer(1)
    outcome = await ended(second)
    assert isinstance(outcome, Result)
    assert [r.timeout_s for r in model.requests] == [10.0, 10.0]  # the whole timeout, not 10 s less the wait
    (attempt,) = outcome.trace.attempts
    assert attempt.queued_s == 4.0 and attempt.latency_s == 0.25  # the wait is not the call's latency


async def test_the_wait_counts_against_the_deadline_so_a_late_call_gets_only_what_is_left(
    catalogue: Catalogue, triage: Agent, make_source: Callable[..., SourceRecord]
) -> None:
    clock, model = ManualClock(), GatedModel(GOOD)
    deps = one_at_a_time(catalogue, model, clock)
    first, second = await first_call_out_second_queued(with_chain(triage, {}, deadline_s=12), deps, model, make_source)
    clock.advance(4.0)
    model.answer(0)
    await ended(first)
    await settled(lambda: len(model.requests) == 2)
    model.answer(1)
    assert isinstance(await ended(second), Result)
    assert model.requests[1].timeout_s == 8.0  # a 12 s deadline, 4 s of it queued


async def test_no_slot_before_the_deadline_ends_the_event_as_deadline_exceeded_without_a_call(
    catalogue: Catalogue, triage: Agent, make_source: Callable[..., SourceRecord]
) -> None:
    clock, model, budgets = ManualClock(), GatedModel(GOOD), RecordingBudgets()
    deps = dataclasses.replace(one_at_a_time(catalogue, model, clock), budgets=budgets)
    first, second = await first_call_out_second_queued(with_chain(triage, {}, deadline_s=30), deps, model, make_source)
    await settled(lambda: clock.sleeping == 1)
    clock.advance(30.0)  # the first call hangs past the second event's deadline
    outcome = await ended(second)
    assert isinstance(outcome, DeadLetter) and outcome.failure.reason == "deadline_exceeded"
    assert "no call slot of a/m (max_concurrent 1)" in outcome.failure.message
    assert outcome.trace.attempts == () and len(model.requests) == 1  # nothing was sent, nothing recorded
    assert budgets.released == 1 and budgets.settled == []  # its reservation is let go, not spent
    model.answer(0)
    await ended(first)
    assert deps.slots.waiting(KEY) == 0 and len(budgets.settled) == 1


async def test_an_event_cancelled_while_it_queues_sends_nothing_and_gives_its_place_up(
    catalogue: Catalogue, triage: Agent, make_source: Callable[..., SourceRecord]
) -> None:
    clock, model, budgets = ManualClock(), GatedModel(GOOD), RecordingBudgets()
    deps = dataclasses.replace(one_at_a_time(catalogue, model, clock), budgets=budgets)
    first, second = await first_call_out_second_queued(with_chain(triage, {}), deps, model, make_source)
    second.cancel()  # a rebalance takes its partition away
    with pytest.raises(asyncio.CancelledError):
        await ended(second)
    assert deps.slots.waiting(KEY) == 0 and (budgets.released, budgets.abandoned) == (1, 0)
    model.answer(0)
    assert isinstance(await ended(first), Result) and len(model.requests) == 1
