"""A call the provider may have served without saying what it used is never free: its attempt carries
the estimated prompt tokens (``tokens_estimated``), and its budget reservation settles with them."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from fakes import FakeClock, GatedModel, RecordingBudgets, ScriptedModel, make_deps, reply, settled

from streams.agent.definition import Agent, ModelSpec
from streams.agent.prompt import render_prompt
from streams.core.catalogue import Catalogue
from streams.core.domain import Attempt, RequestEvent, Result, SourceRecord
from streams.core.errors import KeelError, ProviderConnectionError, ProviderServerError, ProviderTimeout
from streams.core.ports.model import estimate_prompt_tokens
from streams.pipeline.chain import run_chain
from streams.pipeline.process import process

GOOD = orjson.dumps(
    {"category": "billing", "priority": "high", "summary": "Double charge.", "suggested_reply": "Sorry!"}
).decode()


def with_chain(agent: Agent, **spec: Any) -> Agent:
    chain = [ModelSpec(**{"provider": "a", "model": "m", "timeout_s": 10, **spec})]
    policy = agent.definition.reliability.model_copy(update={"retry_delays_s": ()})
    definition = agent.definition.model_copy(update={"model_chain": chain, "reliability": policy})
    return dataclasses.replace(agent, definition=definition)


@pytest.fixture
def triage(agents: dict[str, Agent]) -> Agent:
    return agents["support_triage"]


@pytest.mark.parametrize(
    ("error", "estimated"),
    [
        (ProviderTimeout("no complete answer within 10 s"), True),
        (ProviderConnectionError("RemoteProtocolError: peer closed the connection"), True),
        (ProviderConnectionError("ConnectError: connection refused", sent=False), False),
        (ProviderServerError("HTTP 503: overloaded"), False),  # an answer: the provider did not serve it
    ],
    ids=["timeout", "cut_off", "never_sent", "http_503"],
)
async def test_a_call_that_may_have_been_served_without_a_count_costs_its_estimated_prompt(
    catalogue: Catalogue,
    triage: Agent,
    make_source: Callable[..., SourceRecord],
    error: KeelError,
    estimated: bool,
) -> None:
    model, budgets = ScriptedModel([error, reply(GOOD)], provider="a"), RecordingBudgets()
    deps = dataclasses.replace(make_deps(catalogue, {"a": model}, clock=FakeClock()), budgets=budgets)
    outcome = await process(make_source(), with_chain(triage, max_retries=1), deps)
    assert isinstance(outcome, Result)
    failed, ok = outcome.trace.attempts
    prompt_tokens = estimate_prompt_tokens(model.requests[0].messages)
    assert prompt_tokens > 50
    assert (failed.tokens_in, failed.tokens_out, failed.tokens_estimated) == (
        (prompt_tokens, 0, True) if estimated else (0, 0, False)
    )
    assert (ok.tokens_in, ok.tokens_estimated) == (120, False)  # the provider's count, when it sent one
    assert budgets.settled == [failed, ok]  # each reservation settles with what its attempt says it used


async def test_a_call_cut_short_mid_flight_is_recorded_with_its_estimate(
    catalogue: Catalogue, triage: Agent, make_event: Callable[..., RequestEvent]
) -> None:
    model = GatedModel(GOOD)
    deps = make_deps(catalogue, {"a": model}, clock=FakeClock())
    agent, attempts = with_chain(triage), list[Attempt]()
    prompt = render_prompt(agent.templates, make_event())
    call = asyncio.create_task(run_chain(agent, prompt, deps, attempts, started=deps.clock.monotonic()))
    await settled(lambda: len(model.requests) == 1)
    call.cancel()  # a rebalance or a shutdown while the provider works on it
    with pytest.raises(asyncio.CancelledError):
        await call
    (attempt,) = attempts
    assert attempt.outcome == "interrupted" and attempt.tokens_estimated
    assert attempt.tokens_in == estimate_prompt_tokens(model.requests[0].messages) > 50
