"""Context lookups before the prompt: from a connector's read tool and from a compacted topic's table,
addressed by the templates; nothing found and failures as the lookup's ``optional`` says."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from fakes import ScriptedModel, make_deps, reply
from test_tool_loop import CRM, FakeCrm

from streams.agent.context_lookups import ToolLookup, lookup_problems
from streams.agent.definition import Agent, AgentDefinition
from streams.agent.prompt import compile_template
from streams.core.catalogue import Catalogue
from streams.core.connectors import ConnectorDefinition
from streams.core.domain import DeadLetter, Result, RetryLater, SourceRecord, Stage
from streams.core.errors import ToolUnavailable
from streams.core.ports.tools import ToolResult
from streams.pipeline.deps import Deps
from streams.pipeline.process import process
from streams.pipeline.tools import Toolbox, http_tool_specs

ANSWER = orjson.dumps({"category": "billing", "priority": "high", "summary": "s", "suggested_reply": "r"}).decode()


class Table:
    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def get(self, key: str) -> Any | None:
        return self.values.get(key)


def with_context(agent: Agent, context: dict[str, Any], user: str) -> Agent:
    document = agent.definition.model_dump(mode="json", exclude_none=True)
    document["context"], document["prompt"]["user"] = context, user
    definition = AgentDefinition.model_validate(document)
    templates = dataclasses.replace(agent.templates, user=compile_template(user))
    return dataclasses.replace(agent, definition=definition, templates=templates)


def deps_with(
    catalogue: Catalogue, model: ScriptedModel, *, crm: FakeCrm | None = None, tables: dict[str, Any] | None = None
) -> Deps:
    deps = make_deps(catalogue, {"local": model})
    toolbox = Toolbox({"crm": CRM}, {"crm": crm}, {"crm": http_tool_specs(CRM)}) if crm else None
    return dataclasses.replace(deps, toolbox=toolbox, tables=tables or {})


LOOKUP = {"connector": "crm", "tool": "lookup_customer", "arguments": {"customer_id": "C-{{ payload.ticket_id }}"}}


@pytest.fixture
def triage(agents: dict[str, Agent]) -> Agent:
    return agents["support_triage"]


async def test_a_tool_lookup_and_a_table_lookup_fill_the_prompt(
    catalogue: Catalogue, triage: Agent, make_source: Callable[..., SourceRecord]
) -> None:
    agent = with_context(
        triage,
        {"account": LOOKUP, "profile": {"topic": "crm.customers", "key": "{{ payload.ticket_id }}"}},
        "{{ payload.body }} / plan {{ context.account.plan }} / tier {{ context.profile.tier }}",
    )
    source = make_source()
    crm = FakeCrm(ToolResult('{"plan": "pro"}'))
    tables = {"crm.customers": Table({}), "other": Table({})}
    model = ScriptedModel([reply(ANSWER)])
    event_ticket = "T-1001"  # the sample event's ticket id (tests/conftest.py)
    tables["crm.customers"].values[event_ticket] = {"tier": "gold"}
    outcome = await process(source, agent, deps_with(catalogue, model, crm=crm, tables=tables))
    assert isinstance(outcome, Result), outcome
    assert crm.calls[0][:2] == ("lookup_customer", {"customer_id": f"C-{event_ticket}"})
    assert model.requests[0].messages[1].content.endswith("/ plan pro / tier gold")
    assert [(a.kind, a.purpose) for a in outcome.trace.attempts] == [("tool", "context"), ("model", "initial")]


async def test_an_optional_lookup_that_finds_nothing_is_left_out(
    catalogue: Catalogue, triage: Agent, make_source: Callable[..., SourceRecord]
) -> None:
    lookup = {"topic": "crm.customers", "key": "{{ payload.ticket_id }}", "optional": True}
    agent = with_context(triage, {"profile": lookup}, "{{ payload.body }}|{{ context.profile.tier? }}|")
    model = ScriptedModel([reply(ANSWER)])
    outcome = await process(make_source(), agent, deps_with(catalogue, model, tables={"crm.customers": Table({})}))
    assert isinstance(outcome, Result)
    assert model.requests[0].messages[1].content.endswith("||")


async def test_a_needed_lookup_that_finds_nothing_is_a_dead_letter(
    catalogue: Catalogue, triage: Agent, make_source: Callable[..., SourceRecord]
) -> None:
    agent = with_context(triage, {"account": LOOKUP}, "{{ payload.body }} {{ context.account.plan }}")
    crm = FakeCrm(ToolResult('{"error": "no such customer"}', is_error=True, status="http_404"))
    model = ScriptedModel([])
    outcome = await process(make_source(), agent, deps_with(catalogue, model, crm=crm))
    assert isinstance(outcome, DeadLetter)
    assert (outcome.failure.stage, outcome.failure.reason) == (Stage.CONTEXT, "context_missing")
    assert model.requests == []


async def test_a_lookup_whose_system_is_down_waits_in_a_retry_tier(
    catalogue: Catalogue, triage: Agent, make_source: Callable[..., SourceRecord]
) -> None:
    agent = with_context(triage, {"account": LOOKUP}, "{{ payload.body }} {{ context.account.plan }}")
    crm = FakeCrm(ToolUnavailable("HTTP 503"), ToolUnavailable("HTTP 503"))
    outcome = await process(make_source(), agent, deps_with(catalogue, ScriptedModel([]), crm=crm))
    assert isinstance(outcome, RetryLater)
    assert (outcome.failure.stage, outcome.failure.reason) == (Stage.CONTEXT, "tool_unavailable")


def test_a_lookup_may_only_read_a_declared_tool() -> None:
    connectors: dict[str, ConnectorDefinition] = {"crm": CRM}
    problems = lookup_problems(
        {
            "a": ToolLookup(connector="crm", tool="create_ticket"),
            "b": ToolLookup(connector="erp", tool="x"),
            "c": ToolLookup(connector="crm", tool="nope"),
        },
        connectors,
    )
    assert problems == [
        "context.a: crm.create_ticket: a write tool; a context lookup may only read",
        "context.b: erp.x: no connector 'erp' is declared",
        "context.c: crm.nope: connector crm declares no tool 'nope'",
    ]


@pytest.mark.parametrize("lookup", [LOOKUP, {"topic": "crm.customers", "key": "{{ payload.ticket_id }}"}])
async def test_an_optional_lookup_with_no_source_here_is_left_out(
    catalogue: Catalogue, triage: Agent, make_source: Callable[..., SourceRecord], lookup: dict[str, Any]
) -> None:
    agent = with_context(
        triage, {"account": lookup | {"optional": True}}, "{{ payload.body }}|{{ context.account.plan? }}|"
    )
    model = ScriptedModel([reply(ANSWER)])
    outcome = await process(make_source(), agent, deps_with(catalogue, model))  # no toolbox, no tables: `keel eval`
    assert isinstance(outcome, Result), outcome
    assert model.requests[0].messages[1].content.endswith("||")
    assert [a.kind for a in outcome.trace.attempts] == ["model"]


async def test_without_connectors_a_needed_tool_lookup_is_a_configuration_error(
    catalogue: Catalogue, triage: Agent, make_source: Callable[..., SourceRecord]
) -> None:
    agent = with_context(triage, {"account": LOOKUP}, "{{ payload.body }} {{ context.account.plan }}")
    model = ScriptedModel([])
    outcome = await process(make_source(), agent, deps_with(catalogue, model))
    assert isinstance(outcome, DeadLetter), outcome
    assert (outcome.failure.stage, outcome.failure.reason) == (Stage.CONTEXT, "connector_config_invalid")
    assert "not reachable here" in outcome.failure.message and model.requests == []


async def test_without_connectors_an_agent_with_tools_answers_with_none_offered(
    catalogue: Catalogue, triage: Agent, make_source: Callable[..., SourceRecord]
) -> None:
    document = triage.definition.model_dump(mode="json", exclude_none=True)
    document["tools"] = {"allow": ["crm.create_ticket"], "max_steps": 3}
    agent = dataclasses.replace(triage, definition=AgentDefinition.model_validate(document))
    model = ScriptedModel([reply(ANSWER)])
    outcome = await process(make_source(), agent, deps_with(catalogue, model))
    assert isinstance(outcome, Result), outcome
    assert model.requests[0].tools == ()
