"""The worker's tools at start: every agent's tools and context lookups checked against the connector
files (refused with the agent's file and the field), and clients built for the connectors used."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from streams.agent.definition import Agent
from streams.agent.tools_policy import ToolsPolicy
from streams.apps.toolbox import build_toolbox, used_connectors
from streams.core.errors import AgentDefinitionError
from streams.core.settings import REPO_ROOT, Settings


def _with_tools(agent: Agent, *allow: str) -> Agent:
    tools = ToolsPolicy(allow=list(allow))
    return dataclasses.replace(agent, definition=agent.definition.model_copy(update={"tools": tools}))


def test_agents_without_tools_need_no_connector_files(agents: dict[str, Agent], tmp_path: Path) -> None:
    settings = Settings(connectors_dir=tmp_path / "absent")
    assert used_connectors(settings, list(agents.values())) == {}
    assert build_toolbox({}) is None


def test_the_shipped_agents_reach_the_shipped_crm_connector(shipped_agents: dict[str, Agent]) -> None:
    used = used_connectors(Settings(), list(shipped_agents.values()))
    assert set(used) == {"crm"}
    triage = shipped_agents["support_triage"].definition
    assert triage.tools is not None and triage.tools.allowed() == [("crm", "create_ticket")]


def test_the_connectors_an_agent_uses_get_clients(agents: dict[str, Agent], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_API_TOKEN", "t0ken")
    agent = _with_tools(agents["support_triage"], "crm.lookup_customer", "crm.create_ticket")
    used = used_connectors(Settings(connectors_dir=REPO_ROOT / "deploy" / "connectors"), [agent])
    toolbox = build_toolbox(used)
    assert toolbox is not None and set(toolbox.clients) == {"crm"}
    tools = toolbox.for_agent(agent.definition.tools)  # type: ignore[arg-type]
    assert {name: tool.writes for name, tool in tools.items()} == {"lookup_customer": False, "create_ticket": True}


@pytest.mark.parametrize(
    ("allow", "problem"),
    [
        ("crm.delete_customer", "tools.allow: crm.delete_customer: connector crm declares no tool 'delete_customer'"),
        ("erp.lookup", "tools.allow: erp.lookup: no connector 'erp' is declared"),
    ],
)
def test_a_tool_no_connector_declares_is_refused_with_the_agent_file(
    agents: dict[str, Agent], allow: str, problem: str
) -> None:
    agent = _with_tools(agents["support_triage"], allow)
    with pytest.raises(AgentDefinitionError) as refused:
        used_connectors(Settings(connectors_dir=REPO_ROOT / "deploy" / "connectors"), [agent])
    assert str(agent.source_path) in str(refused.value) and problem in str(refused.value)


def test_an_mcp_servers_tools_are_listed_at_start_and_every_allowed_one_checked(
    agents: dict[str, Agent], tmp_path: Path
) -> None:
    import sys

    from streams.apps.toolbox import check_offered
    from streams.core.connectors import ConnectorDefinition

    command = [sys.executable, "-m", "connectors.crm.mcp_server", "--state-file", str(tmp_path / "crm.json")]
    twin = ConnectorDefinition.model_validate(
        {"name": "crm_mcp", "kind": "mcp", "transport": "stdio", "command": command, "write_tools": ["create_ticket"]}
    )
    toolbox = build_toolbox({"crm_mcp": twin})
    assert toolbox is not None and {t for _, t in toolbox.tools} == {"lookup_customer", "create_ticket"}
    assert toolbox.tools["crm_mcp", "create_ticket"].writes
    check_offered([_with_tools(agents["support_triage"], "crm_mcp.create_ticket")], toolbox)
    with pytest.raises(AgentDefinitionError, match="crm_mcp.close_account: the MCP server does not offer this tool"):
        check_offered([_with_tools(agents["support_triage"], "crm_mcp.close_account")], toolbox)
