"""Context lookups: what an agent's ``context:`` block (streams/agent/context_lookups.py) finds for an
event, before its prompt is rendered.

A tool lookup is a call of a connector's read tool (streams/pipeline/tool_call.py: breaker, rate
limit, retries, an attempt with purpose ``context``); a topic lookup reads the worker's table of a
compacted topic (``KeyTable``, kept current by streams/kafka/topic_table.py). What a lookup finds
is its JSON (or, for a tool whose answer is not JSON, its text). Nothing found (an unknown key, a 404)
leaves an optional lookup out and is a ``ContextMissing`` dead letter otherwise; a failed call leaves
an optional lookup out and otherwise stops the event as any tool failure does (a transient one waits
in the next retry tier). Where a lookup's source is not reachable (`keel eval` calls no connectors and
keeps no tables) an optional lookup is left out and a required one is a ``ConnectorConfigError``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from streams.agent.context_lookups import ToolLookup, TopicLookup
from streams.agent.definition import Agent
from streams.agent.prompt import compile_template, event_values
from streams.core.domain import Attempt, RequestEvent
from streams.core.errors import ConnectorConfigError, ContextMissing, PromptRenderError
from streams.pipeline.deps import Deps, KeyTable
from streams.pipeline.stopped import ChainStopped
from streams.pipeline.tool_call import ToolRequest, call_tool


async def look_up(
    agent: Agent, event: RequestEvent, deps: Deps, attempts: list[Attempt], *, deadline: float
) -> dict[str, Any]:
    """The values the agent's lookups found, by name (an optional lookup that found nothing is absent)."""
    found: dict[str, Any] = {}
    values = event_values(event)
    for name, lookup in (agent.definition.context or {}).items():
        if not _reachable(lookup, deps):
            if lookup.optional:
                continue
            raise ConnectorConfigError(f"context {name}: {_where(lookup)} is not reachable here ({_HERE})")
        try:
            if isinstance(lookup, TopicLookup):
                value = _from_table(lookup, deps.tables, values)
            else:
                value = await _from_tool(agent, name, lookup, deps, attempts, event=event, deadline=deadline)
        except (ChainStopped, ContextMissing, PromptRenderError):
            if lookup.optional:
                continue
            raise
        if value is None:
            if lookup.optional:
                continue
            raise ContextMissing(f"context {name}: {_where(lookup)} found nothing for this event")
        found[name] = value
    return found


_HERE = "a worker keeps a table of each topic its agents look up; `keel eval` calls no connectors and keeps no tables"


def _reachable(lookup: ToolLookup | TopicLookup, deps: Deps) -> bool:
    return lookup.topic in deps.tables if isinstance(lookup, TopicLookup) else deps.toolbox is not None


def _from_table(lookup: TopicLookup, tables: Mapping[str, KeyTable], values: dict[str, Any]) -> Any | None:
    return tables[lookup.topic].get(compile_template(lookup.key).render(values))


async def _from_tool(
    agent: Agent,
    name: str,
    lookup: ToolLookup,
    deps: Deps,
    attempts: list[Attempt],
    *,
    event: RequestEvent,
    deadline: float,
) -> Any | None:
    values = event_values(event)
    assert deps.toolbox is not None, "looked up only where reachable"
    tool = deps.toolbox.tools.get((lookup.connector, lookup.tool))
    if tool is None:
        raise ConnectorConfigError(f"context {name}: this worker has no tool {lookup.connector}.{lookup.tool}")
    arguments = {argument: template.render(values) for argument, template in lookup.templates().items()}
    key = hashlib.sha256(f"keel-context\x00{event.event_id}\x00{name}".encode()).hexdigest()[:32]
    result = await call_tool(
        ToolRequest(tool, arguments, key, purpose="context"), agent, deps, attempts, deadline=deadline
    )
    if result.is_error:
        return None  # the system answered that it has nothing (a 404) or refused the read
    try:
        return orjson.loads(result.content)
    except orjson.JSONDecodeError:
        return result.content


def _where(lookup: ToolLookup | TopicLookup) -> str:
    return f"topic {lookup.topic}" if isinstance(lookup, TopicLookup) else f"{lookup.connector}.{lookup.tool}"
