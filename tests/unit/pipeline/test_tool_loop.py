"""The tool loop in the pure pipeline: calls checked before they are made, results fed back, steps
bounded, every try an attempt, and the journal that keeps a redelivered event from doing a step twice."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import orjson
import pytest
from fakes import ScriptedModel, make_deps, reply

from streams.agent.definition import Agent
from streams.agent.tools_policy import ToolsPolicy
from streams.core.catalogue import Catalogue
from streams.core.connectors import ConnectorDefinition
from streams.core.domain import DeadLetter, Result, RetryLater, SourceRecord
from streams.core.errors import ToolUnavailable
from streams.core.ports.model import ModelResponse, ToolCall, ToolSpec
from streams.core.ports.tools import ToolResult
from streams.pipeline.deps import Deps
from streams.pipeline.process import process
from streams.pipeline.tool_journal import MemoryJournal, decode_journal
from streams.pipeline.tools import Toolbox, http_tool_specs

ANSWER = orjson.dumps(
    {"category": "billing", "priority": "high", "summary": "Charged twice.", "suggested_reply": "Sorry!"}
).decode()
CRM = ConnectorDefinition.model_validate(
    {
        "name": "crm",
        "kind": "http",
        "base_url": "http://127.0.0.1:1",
        "retries": {"max_retries": 1, "backoff_s": 0.1},
        "tools": {
            "lookup_customer": {
                "description": "A customer by id",
                "path": "/customers/{customer_id}",
                "arguments": {
                    "type": "object",
                    "properties": {"customer_id": {"type": "string", "pattern": "^C-[0-9]+$"}},
                    "required": ["customer_id"],
                    "additionalProperties": False,
                },
            },
            "create_ticket": {
                "description": "Open a ticket",
                "method": "POST",
                "path": "/tickets",
                "arguments": {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]},
            },
        },
    }
)


class FakeCrm:
    """A ToolClient answering each call with the next scripted result (or raising it)."""

    connector = "crm"

    def __init__(self, *results: ToolResult | BaseException) -> None:
        self.results = list(results)
        self.calls: list[tuple[str, dict[str, Any], str]] = []

    async def list_tools(self) -> list[ToolSpec]:
        return http_tool_specs(CRM)

    async def call(
        self, tool: str, arguments: Mapping[str, Any], *, idempotency_key: str, timeout_s: float
    ) -> ToolResult:
        self.calls.append((tool, dict(arguments), idempotency_key))
        result = self.results.pop(0)
        if isinstance(result, BaseException):
            raise result
        return result

    async def aclose(self) -> None:
        return None


def asks(*calls: tuple[str, str]) -> ModelResponse:
    """A model turn asking for ``(tool, arguments JSON)`` calls."""
    tool_calls = tuple(ToolCall(f"call_{i}", name, arguments) for i, (name, arguments) in enumerate(calls))
    return ModelResponse("", "sim-1", 100, 10, 0.1, "tool_calls", tool_calls=tool_calls)


@pytest.fixture
def agent(agents: dict[str, Agent]) -> Agent:
    base = agents["support_triage"]
    tools = ToolsPolicy(allow=["crm.lookup_customer", "crm.create_ticket"], max_steps=2)
    return dataclasses.replace(base, definition=base.definition.model_copy(update={"tools": tools}))


def _deps(catalogue: Catalogue, model: ScriptedModel, crm: FakeCrm) -> Deps:
    toolbox = Toolbox({"crm": CRM}, {"crm": crm}, {"crm": http_tool_specs(CRM)})
    return dataclasses.replace(make_deps(catalogue, {"local": model}), toolbox=toolbox)


CUSTOMER = ToolResult('{"id": "C-7", "plan": "pro"}', response_bytes=28, latency_s=0.02)


async def test_a_tool_call_is_made_and_its_result_fed_back_before_the_answer(
    catalogue: Catalogue, agent: Agent, make_source: Callable[..., SourceRecord]
) -> None:
    model = ScriptedModel([asks(("lookup_customer", '{"customer_id": "C-7"}')), reply(ANSWER)])
    crm = FakeCrm(CUSTOMER)
    outcome = await process(make_source(), agent, _deps(catalogue, model, crm))
    assert isinstance(outcome, Result)
    assert [(t, a) for t, a, _ in crm.calls] == [("lookup_customer", {"customer_id": "C-7"})]
    assert [t.name for t in model.requests[0].tools] == ["lookup_customer", "create_ticket"]
    follow_up = model.requests[1].messages[-2:]
    assert follow_up[0].role == "assistant" and follow_up[0].tool_calls[0].name == "lookup_customer"
    assert (follow_up[1].role, follow_up[1].tool_call_id, follow_up[1].content) == ("tool", "call_0", CUSTOMER.content)
    kinds = [(a.kind, a.purpose, a.provider, a.model, a.outcome) for a in outcome.trace.attempts]
    assert kinds == [
        ("model", "initial", "local", "smollm2-135m-instruct", "ok"),
        ("tool", "tool", "crm", "lookup_customer", "ok"),
        ("model", "step", "local", "smollm2-135m-instruct", "ok"),
    ]
    assert outcome.trace.attempts[1].response_bytes == 28
    assert [a.number for a in outcome.trace.attempts] == [1, 2, 3]


@pytest.mark.parametrize(
    ("call", "problem"),
    [
        (("lookup_customer", '{"customer_id": "7"}'), "does not match"),
        (("lookup_customer", "[1, 2]"), "one JSON object"),
        (("lookup_customer", "{not json"), "one JSON object"),
        (("delete_everything", "{}"), "not a tool this agent may call"),
    ],
)
async def test_an_invalid_call_is_asked_again_without_being_made(
    catalogue: Catalogue,
    agent: Agent,
    make_source: Callable[..., SourceRecord],
    call: tuple[str, str],
    problem: str,
) -> None:
    model = ScriptedModel([asks(call, ("create_ticket", '{"title": "x"}')), reply(ANSWER)])
    crm = FakeCrm()
    outcome = await process(make_source(), agent, _deps(catalogue, model, crm))
    assert isinstance(outcome, Result)
    assert crm.calls == []  # neither call of the invalid turn was made
    refused, not_run = model.requests[1].messages[-2:]
    assert refused.is_error and problem in refused.content
    assert not_run.is_error and "another call of this turn was invalid" in not_run.content
    assert [(a.purpose, a.outcome) for a in outcome.trace.attempts] == [
        ("initial", "tool_call_invalid"),
        ("reask", "ok"),
    ]


async def test_a_refused_turn_stays_in_the_conversation_after_the_step_that_follows_it(
    catalogue: Catalogue, agent: Agent, make_source: Callable[..., SourceRecord]
) -> None:
    refused = asks(("create_ticket", '{"priority": "whenever"}'))
    model = ScriptedModel([refused, asks(("create_ticket", '{"title": "x"}')), reply(ANSWER)])
    crm = FakeCrm(ToolResult('{"ticket_id": "CRM-1"}', response_bytes=21, latency_s=0.01))
    outcome = await process(make_source(), agent, _deps(catalogue, model, crm))
    assert isinstance(outcome, Result)
    assert [name for name, _, _ in crm.calls] == ["create_ticket"]  # the corrected call, once
    turns = [m for m in model.requests[2].messages if m.tool_calls]
    assert [t.tool_calls[0].arguments for t in turns] == ['{"priority": "whenever"}', '{"title": "x"}']
    roles = [(m.role, m.is_error) for m in model.requests[2].messages[-4:]]
    assert roles == [("assistant", False), ("tool", True), ("assistant", False), ("tool", False)]


async def test_invalid_calls_past_the_reasks_end_as_a_dead_letter(
    catalogue: Catalogue, agent: Agent, make_source: Callable[..., SourceRecord]
) -> None:
    model = ScriptedModel([asks(("lookup_customer", "{}"))] * 2)
    outcome = await process(make_source(), agent, _deps(catalogue, model, FakeCrm()))
    assert isinstance(outcome, DeadLetter)
    assert outcome.failure.reason == "tool_call_invalid"
    assert "customer_id" in outcome.failure.message


async def test_steps_past_max_steps_end_as_a_dead_letter(
    catalogue: Catalogue, agent: Agent, make_source: Callable[..., SourceRecord]
) -> None:
    lookup = asks(("lookup_customer", '{"customer_id": "C-7"}'))
    model = ScriptedModel([lookup, lookup, lookup])
    crm = FakeCrm(CUSTOMER, CUSTOMER)
    outcome = await process(make_source(), agent, _deps(catalogue, model, crm))
    assert isinstance(outcome, DeadLetter)
    assert outcome.failure.reason == "tool_steps_exceeded"
    assert len(crm.calls) == 2  # max_steps


async def test_a_model_that_calls_tools_it_was_not_offered_is_asked_again(
    catalogue: Catalogue, agents: dict[str, Agent], make_source: Callable[..., SourceRecord]
) -> None:
    model = ScriptedModel([asks(("lookup_customer", "{}")), reply(ANSWER)])
    outcome = await process(make_source(), agents["support_triage"], make_deps(catalogue, {"local": model}))
    assert isinstance(outcome, Result)
    assert model.requests[0].tools == ()
    assert "this agent has no tools" in model.requests[1].messages[-1].content


async def test_a_failing_system_is_tried_again_with_the_same_key_then_waits_in_a_retry_tier(
    catalogue: Catalogue, agent: Agent, make_source: Callable[..., SourceRecord]
) -> None:
    model = ScriptedModel([asks(("create_ticket", '{"title": "Refund"}'))])
    crm = FakeCrm(ToolUnavailable("HTTP 503"), ToolUnavailable("HTTP 503"))
    outcome = await process(make_source(), agent, _deps(catalogue, model, crm))
    assert isinstance(outcome, RetryLater)
    assert outcome.failure.reason == "tool_unavailable"
    assert len(crm.calls) == 2 and crm.calls[0][2] == crm.calls[1][2]  # one idempotency key for both tries
    assert [(a.kind, a.outcome) for a in outcome.trace.attempts[1:]] == [("tool", "tool_unavailable")] * 2


async def test_a_redelivered_event_goes_on_from_its_journal(
    catalogue: Catalogue, agent: Agent, make_source: Callable[..., SourceRecord]
) -> None:
    """A crash after the ticket was opened: the redelivery neither asks that turn again nor opens
    another ticket, and keeps the attempts it paid for."""
    journal, source = MemoryJournal(), make_source()
    crashed = ScriptedModel([asks(("create_ticket", '{"title": "Refund"}')), asyncio.CancelledError()])
    crm = FakeCrm(ToolResult('{"ticket": "T-1"}', response_bytes=17))
    with pytest.raises(asyncio.CancelledError):
        await process(source, agent, _deps(catalogue, crashed, crm), journal=journal)
    assert journal.blob is not None
    again = ScriptedModel([reply(ANSWER)])
    outcome = await process(source, agent, _deps(catalogue, again, crm), journal=journal)
    assert isinstance(outcome, Result)
    assert len(crm.calls) == 1
    assert len(again.requests) == 1 and again.requests[0].messages[-1].content == '{"ticket": "T-1"}'
    assert [(a.kind, a.purpose) for a in outcome.trace.attempts] == [
        ("model", "initial"),
        ("tool", "tool"),
        ("model", "step"),
    ]


async def test_a_call_cut_off_is_made_again_with_the_same_key_and_the_turn_not_asked_again(
    catalogue: Catalogue, agent: Agent, make_source: Callable[..., SourceRecord]
) -> None:
    journal, source = MemoryJournal(), make_source()
    model = ScriptedModel([asks(("create_ticket", '{"title": "Refund"}'))])
    crm = FakeCrm(asyncio.CancelledError(), ToolResult('{"ticket": "T-1"}'))
    with pytest.raises(asyncio.CancelledError):
        await process(source, agent, _deps(catalogue, model, crm), journal=journal)
    saved = decode_journal(journal.blob or b"")
    assert saved is not None and saved.steps == 1 and saved.tail[-1].tool_calls
    model.replies.append(reply(ANSWER))
    outcome = await process(source, agent, _deps(catalogue, model, crm), journal=journal)
    assert isinstance(outcome, Result)
    assert len(model.requests) == 2  # the tool turn once, then the answer
    assert crm.calls[0] == crm.calls[1]  # the same call, with the same idempotency key


async def test_a_new_decision_starts_again_with_new_keys(
    catalogue: Catalogue, agent: Agent, make_source: Callable[..., SourceRecord]
) -> None:
    journal, source = MemoryJournal(), make_source()
    turn = asks(("create_ticket", '{"title": "Refund"}'))
    model = ScriptedModel([turn, reply(ANSWER), turn, reply(ANSWER)])
    crm = FakeCrm(ToolResult("{}"), ToolResult("{}"))
    deps = _deps(catalogue, model, crm)
    assert isinstance(await process(source, agent, deps, journal=journal), Result)
    rerun = await process(source, agent, deps, journal=journal, pass_number=1, generation=1)
    assert isinstance(rerun, Result)
    assert len(crm.calls) == 2 and crm.calls[0][2] != crm.calls[1][2]
