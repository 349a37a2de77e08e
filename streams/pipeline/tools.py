"""The tools a worker can call, and the checks on a model's tool calls before any of them is made.

A ``Toolbox`` holds every tool of every connector the worker loaded (deploy/connectors/*.yaml,
streams/core/connectors.py), each connector's client (the ``ToolClient`` port) and its own circuit
breaker. An agent sees only the tools its ``tools.allow`` names (``Toolbox.for_agent``). A model's
tool calls are checked here, all of them before the first is made: a tool the agent may not call, a
call id used twice, arguments that are not a JSON object or do not match the tool's JSON Schema. The
problems go back to the model, as an invalid answer's do (streams/pipeline/tool_loop.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from streams.agent.tools_policy import ToolsPolicy
from streams.core.connectors import ConnectorDefinition, RetryPolicy
from streams.core.errors import ConnectorConfigError
from streams.core.ports.model import ToolCall, ToolSpec
from streams.core.ports.tools import ToolClient
from streams.pipeline.circuit import CircuitBreakers

MAX_CALLS_PER_TURN = 16  # more calls in one model turn than any task needs: refused, not made
_MAX_PROBLEMS = 5


@dataclass(frozen=True, slots=True)
class Tool:
    """One tool of one connector: what the model is told of it, and how a call to it is made."""

    connector: str
    spec: ToolSpec
    writes: bool
    timeout_s: float
    retries: RetryPolicy
    _validator: Draft202012Validator = field(repr=False, compare=False)

    @classmethod
    def of(cls, connector: ConnectorDefinition, spec: ToolSpec) -> Tool:
        try:
            Draft202012Validator.check_schema(dict(spec.parameters))
        except SchemaError as exc:
            where = f"connector {connector.name}: tool {spec.name}"
            raise ConnectorConfigError(f"{where}: its arguments schema is not a JSON Schema: {exc.message}") from exc
        validator = Draft202012Validator(dict(spec.parameters))
        writes = connector.writes(spec.name)
        return cls(connector.name, spec, writes, connector.timeout_s, connector.retries, validator)

    def problems(self, arguments: Mapping[str, Any]) -> list[str]:
        """What is wrong with ``arguments`` for this tool (empty: they match its schema)."""
        found = sorted(self._validator.iter_errors(arguments), key=lambda e: list(e.absolute_path))
        return [_describe(self.spec.name, error.absolute_path, error.message) for error in found[:_MAX_PROBLEMS]]


def _describe(tool: str, path: Iterable[Any], message: str) -> str:
    where = "/".join(str(part) for part in path)
    return f"{tool}: {where + ': ' if where else ''}{message}"


def http_tool_specs(connector: ConnectorDefinition) -> list[ToolSpec]:
    """An HTTP connector's declared operations as the model is told of them."""
    return [ToolSpec(name, tool.description, tool.arguments) for name, tool in connector.tools.items()]


class Toolbox:
    """Every tool the worker can call, by (connector, tool), with the connectors' clients and breakers."""

    def __init__(
        self,
        connectors: Mapping[str, ConnectorDefinition],
        clients: Mapping[str, ToolClient],
        specs: Mapping[str, Iterable[ToolSpec]],
    ) -> None:
        """``specs``: the tools each connector offers (declared, or listed by its MCP server)."""
        self.clients = dict(clients)
        self.tools = {
            (name, spec.name): Tool.of(connectors[name], spec) for name, offered in specs.items() for spec in offered
        }
        self.breakers = {
            name: CircuitBreakers(failure_threshold=c.circuit.failure_threshold, cooldown_s=c.circuit.cooldown_s)
            for name, c in connectors.items()
        }

    def for_agent(self, policy: ToolsPolicy) -> dict[str, Tool]:
        """The tools ``policy`` allows, by the name the model calls them with; a tool the worker does
        not have (its connector's file is missing, its MCP server does not offer it) is a config error."""
        missing = [f"{c}.{t}" for c, t in policy.allowed() if (c, t) not in self.tools]
        if missing:
            raise ConnectorConfigError(f"tools.allow names tools this worker does not have: {', '.join(missing)}")
        return {tool: self.tools[connector, tool] for connector, tool in policy.allowed()}


def call_problems(calls: Iterable[ToolCall], tools: Mapping[str, Tool]) -> dict[str, list[str]]:
    """The problems of each call (by call id) that may not be made as asked; empty: all may be made."""
    calls = list(calls)
    problems: dict[str, list[str]] = {}
    if len(calls) > MAX_CALLS_PER_TURN:
        return {c.call_id: [f"at most {MAX_CALLS_PER_TURN} tool calls in one turn"] for c in calls}
    seen: set[str] = set()
    for call in calls:
        found = _problems_of(call, tools, seen)
        seen.add(call.call_id)
        if found:
            problems[call.call_id] = found
    return problems


def _problems_of(call: ToolCall, tools: Mapping[str, Tool], seen: set[str]) -> list[str]:
    if not call.call_id or call.call_id in seen:
        return [f"{call.name}: each tool call needs an id of its own"]
    tool = tools.get(call.name)
    if tool is None:
        names = ", ".join(sorted(tools)) or "none"
        return [f"{call.name[:64]!r} is not a tool this agent may call (it may call: {names})"]
    arguments = parse_arguments(call)
    if arguments is None:
        return [f"{call.name}: the arguments must be one JSON object"]
    return tool.problems(arguments)


def parse_arguments(call: ToolCall) -> dict[str, Any] | None:
    """A call's arguments as the JSON object they must be; None when they are not one."""
    try:
        arguments = orjson.loads(call.arguments or "{}")
    except orjson.JSONDecodeError:
        return None
    return arguments if isinstance(arguments, dict) else None


def idempotency_key(event_id: str, generation: int, step: int, index: int, tool: str) -> str:
    """The same for every try of one call of one step of one decision of an event, whichever worker makes
    it: a system that honours it does the write once. A re-run or a replay (a later generation) is a new
    decision and gets new keys."""
    text = f"keel\x00{event_id}\x00{generation}\x00{step}\x00{index}\x00{tool}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]
