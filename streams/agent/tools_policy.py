"""An agent's tools: which tools of which connectors (streams/core/connectors.py) it may call, and how
many model turns per event may call them. Anything its ``tools.allow`` names that no connector declares
is refused when the agent is loaded, with the file and the field."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from streams.core.connectors import ConnectorDefinition

_ALLOWED = re.compile(r"^[a-z][a-z0-9_]{1,62}\.[A-Za-z][A-Za-z0-9_-]{0,63}$")


class ToolsPolicy(BaseModel):
    """An agent's tools: which it may call, and how many model turns may call tools per event."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allow: list[str] = Field(min_length=1, description="<connector>.<tool>, each a tool the agent may call")
    max_steps: int = Field(default=8, ge=1, le=64, description="Model turns that call tools, per event")

    @field_validator("allow")
    @classmethod
    def _names(cls, allow: list[str]) -> list[str]:
        bad = [entry for entry in allow if not _ALLOWED.match(entry)]
        if bad:
            raise ValueError(f"each entry is <connector>.<tool>: {', '.join(bad)}")
        tools = [entry.split(".", 1)[1] for entry in allow]
        twice = sorted({tool for tool in tools if tools.count(tool) > 1})
        if twice:
            raise ValueError(f"the model calls tools by name: {', '.join(twice)} named twice")
        return allow

    def allowed(self) -> list[tuple[str, str]]:
        """(connector, tool) pairs, in the declared order."""
        return [(entry.split(".", 1)[0], entry.split(".", 1)[1]) for entry in self.allow]


def tool_problems(tools: ToolsPolicy | None, connectors: dict[str, ConnectorDefinition]) -> list[str]:
    """What an agent's ``tools.allow`` names that the connectors do not declare. An MCP server's tools
    are known only once it answers: a worker checks those when it starts."""
    problems = []
    for connector, tool in tools.allowed() if tools else []:
        declared = connectors.get(connector)
        if declared is None:
            problems.append(f"tools.allow: {connector}.{tool}: no connector {connector!r} is declared")
        elif declared.kind == "http" and tool not in declared.tools:
            problems.append(f"tools.allow: {connector}.{tool}: connector {connector} declares no tool {tool!r}")
    return problems
