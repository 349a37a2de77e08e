"""An agent's ``context:`` block: lookups made before the prompt is rendered, whose results the
templates address as ``{{ context.<name>.<field> }}``.

A lookup reads one of two places:
- an HTTP read tool of a connector (``connector``, ``tool``, ``arguments``: each argument a template
  over the event, e.g. ``"{{ payload.customer.id }}"``), called like any tool: its breaker, rate limit,
  retries, an attempt and a usage record;
- a compacted Kafka topic the worker keeps in memory and current (``topic``, ``key``: a template), its
  values JSON objects.

``optional: true``: a lookup that finds nothing or fails leaves its name out (its ``{{ context.x? }}``
placeholders render empty); otherwise nothing found is a dead letter, and a failure follows the
reliability policy (a transient one waits in the next retry tier).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from streams.agent.prompt import Template, compile_template
from streams.core.connectors import ConnectorDefinition

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ToolLookup(_Strict):
    connector: str = Field(min_length=1)
    tool: str = Field(min_length=1)
    arguments: dict[str, str] = Field(default_factory=dict, description="Each a template over the event")
    optional: bool = False

    def templates(self) -> dict[str, Template]:
        return {name: compile_template(source) for name, source in self.arguments.items()}


class TopicLookup(_Strict):
    topic: str = Field(description="A compacted topic keyed by the looked-up key; JSON object values")
    key: str = Field(min_length=1, description="A template over the event")
    optional: bool = False

    @field_validator("topic")
    @classmethod
    def _topic_name(cls, value: str) -> str:
        if not _TOPIC.match(value):
            raise ValueError("must be a Kafka topic name")
        return value


ContextLookup = Annotated[ToolLookup | TopicLookup, Field(union_mode="left_to_right")]


def check_names(lookups: dict[str, ToolLookup | TopicLookup]) -> dict[str, ToolLookup | TopicLookup]:
    bad = [name for name in lookups if not _NAME.match(name)]
    if bad:
        raise ValueError(f"context names must be identifiers: {', '.join(bad)}")
    return lookups


def context_topics(lookups: dict[str, ToolLookup | TopicLookup] | None) -> set[str]:
    return {lookup.topic for lookup in (lookups or {}).values() if isinstance(lookup, TopicLookup)}


def lookup_problems(
    lookups: dict[str, ToolLookup | TopicLookup] | None, connectors: dict[str, ConnectorDefinition]
) -> list[str]:
    """What an agent's tool lookups name that the connectors do not declare, or that would write: a
    lookup reads, so it may be made again for every delivery of an event."""
    problems = []
    for name, lookup in (lookups or {}).items():
        if not isinstance(lookup, ToolLookup):
            continue
        where = f"context.{name}: {lookup.connector}.{lookup.tool}"
        declared = connectors.get(lookup.connector)
        if declared is None:
            problems.append(f"{where}: no connector {lookup.connector!r} is declared")
        elif declared.kind == "http" and lookup.tool not in declared.tools:
            problems.append(f"{where}: connector {lookup.connector} declares no tool {lookup.tool!r}")
        elif declared.writes(lookup.tool):
            problems.append(f"{where}: a write tool; a context lookup may only read")
    return problems


def lookup_connectors(lookups: dict[str, ToolLookup | TopicLookup] | None) -> set[str]:
    return {lookup.connector for lookup in (lookups or {}).values() if isinstance(lookup, ToolLookup)}
