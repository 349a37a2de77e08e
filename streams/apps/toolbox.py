"""The worker's tools: the connector files loaded, every agent's ``tools.allow`` checked against them,
and a client built for each connector an agent uses (connectors/tools/).

A connector file that changes, or a version deployed later that uses another connector, takes a
worker restart: the clients and their tools are fixed when the worker starts (an agent version that
names a tool the worker does not have ends its events as dead letters saying so).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

from connectors.local.daemon import run_sync
from connectors.tools.http import HttpToolClient
from connectors.tools.mcp import McpToolClient
from streams.agent.context_lookups import context_topics, lookup_connectors, lookup_problems
from streams.agent.definition import Agent
from streams.agent.tools_policy import tool_problems
from streams.core.connectors import ConnectorDefinition, load_connectors
from streams.core.errors import AgentDefinitionError, ConnectorConfigError, ToolError
from streams.core.kafka_client import ClientConfig
from streams.core.ports.model import ToolSpec
from streams.core.ports.tools import ToolClient
from streams.core.settings import Settings
from streams.kafka.skipped import SkippedRecords
from streams.kafka.topic_table import TopicTable
from streams.pipeline.tools import Toolbox, http_tool_specs


def used_connectors(settings: Settings, agents: list[Agent]) -> dict[str, ConnectorDefinition]:
    """The connectors ``agents`` call (tools and context lookups), from ``KEEL_CONNECTORS_DIR``; an
    agent that names a connector or a tool that is not declared is refused here, with its file and
    the field."""
    wanted = [a for a in agents if a.definition.tools is not None or lookup_connectors(a.definition.context)]
    if not wanted:
        return {}
    declared = load_connectors(settings.connectors_dir)
    used: dict[str, ConnectorDefinition] = {}
    for agent in wanted:
        tools, context = agent.definition.tools, agent.definition.context
        problems = tool_problems(tools, declared) + lookup_problems(context, declared)
        if problems:
            raise AgentDefinitionError(str(agent.source_path), problems)
        names = {connector for connector, _ in tools.allowed()} if tools is not None else set()
        used |= {name: declared[name] for name in names | lookup_connectors(context)}
    return used


def build_toolbox(connectors: Mapping[str, ConnectorDefinition]) -> Toolbox | None:
    """A client for each connector, and the tools each offers (an MCP server's, listed now in a
    session of its own: the worker's clients connect later, in its event loop); None without connectors."""
    if not connectors:
        return None
    clients: dict[str, ToolClient] = {}
    specs: dict[str, list[ToolSpec]] = {}
    for name, connector in connectors.items():
        if connector.kind == "http":
            clients[name], specs[name] = HttpToolClient(connector), http_tool_specs(connector)
        else:
            clients[name], specs[name] = McpToolClient(connector), run_sync(functools.partial(_listed, connector))
    return Toolbox(connectors, clients, specs)


async def _listed(connector: ConnectorDefinition) -> list[ToolSpec]:
    client = McpToolClient(connector)
    try:
        return await client.list_tools()
    except ToolError as exc:
        raise ConnectorConfigError(f"connector {connector.name}: cannot list the MCP server's tools: {exc}") from exc
    finally:
        await client.aclose()


def check_offered(agents: list[Agent], toolbox: Toolbox | None) -> None:
    """Every tool an agent may call is offered (an MCP server's are known only once it answers)."""
    for agent in agents:
        tools = agent.definition.tools
        missing = [
            f"{c}.{t}" for c, t in (tools.allowed() if tools else []) if not toolbox or (c, t) not in toolbox.tools
        ]
        if missing:
            problems = [f"tools.allow: {entry}: the MCP server does not offer this tool" for entry in missing]
            raise AgentDefinitionError(str(agent.source_path), problems)


def context_tables(
    agents: list[Agent], settings: Settings, kafka: ClientConfig, skipped: SkippedRecords
) -> dict[str, TopicTable]:
    """A table of each compacted topic the agents' context lookups read, by the name they declare."""
    names = set().union(*(context_topics(agent.definition.context) for agent in agents))
    return {name: TopicTable(kafka, settings.topic(name), skipped) for name in sorted(names)}


def tool_rate_limited(connectors: Mapping[str, ConnectorDefinition]) -> dict[str, int]:
    """The limiter key (``tool:<connector>``) and requests per minute of each rate-limited connector."""
    return {
        f"tool:{name}": c.rate_limit.requests_per_minute
        for name, c in connectors.items()
        if c.rate_limit.requests_per_minute is not None
    }
