"""MCP tools on the real broker, over both transports: the worker starts the CRM's MCP twin over stdio,
or reaches it over streamable HTTP with a bearer token (a uvicorn server on loopback), lists its tools
at start, and its model (the simulator, told by directives) reads a customer and opens a ticket
through it, once per event; the audit shows the steps."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from harness import Stack, assert_exactly_one_outcome_and_audit, run_through, worker_stack

from connectors.crm.customers import Customers, account
from connectors.crm.mcp_server import serving_http
from connectors.crm.server import CrmState

pytestmark = pytest.mark.integration


MCP_TOKEN = "it-mcp-token-31"


@dataclass
class Twin:
    connector: dict[str, Any]
    tickets: Callable[[], list[dict[str, Any]]]


@contextlib.contextmanager
def _twin(transport: str, folder: Path) -> Iterator[Twin]:
    if transport == "stdio":
        state_file = folder / "crm.json"
        command = [sys.executable, "-m", "connectors.crm.mcp_server", "--state-file", str(state_file)]
        yield Twin(
            {"transport": "stdio", "command": command},
            lambda: orjson.loads(state_file.read_bytes())["tickets"] if state_file.exists() else [],
        )
        return
    customers = Customers.from_samples()
    customers.put(account({"id": "C-1", "name": "Zoë Example", "email": "zoe@example.com", "plan": "pro"}))
    state = CrmState(customers, token=MCP_TOKEN)
    with serving_http(state, token=MCP_TOKEN) as url:
        auth = {"type": "bearer", "token": {"env": "CRM_MCP_TOKEN"}}
        yield Twin({"transport": "http", "base_url": url, "auth": auth}, lambda: state.tickets)


@pytest.fixture(scope="module", params=["stdio", "http"])
def twin(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Twin]:
    with _twin(request.param, tmp_path_factory.mktemp("crm-mcp")) as twin:
        yield twin


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, sim_url: str, tmp_path_factory: pytest.TempPathFactory, twin: Twin) -> Iterator[Stack]:
    connectors = tmp_path_factory.mktemp("connectors")
    declared = {"name": "crm_mcp", "kind": "mcp", "timeout_s": 30, "write_tools": ["create_ticket"], **twin.connector}
    (connectors / "crm_mcp.yaml").write_text(yaml.safe_dump(declared))
    tools = {"tools": {"allow": ["crm_mcp.lookup_customer", "crm_mcp.create_ticket"], "max_steps": 3}}
    with worker_stack(
        kafka_bootstrap,
        tmp_path_factory.mktemp("keel-state"),
        provider="sim",
        base_url=sim_url,
        env={"KEEL_CONNECTORS_DIR": str(connectors), "KEEL_AGENTS": '["support_triage"]', "CRM_MCP_TOKEN": MCP_TOKEN},
        blocks={"support_triage": tools},
    ) as stack:
        yield stack


def _event(make_event: Any, n: int) -> Any:
    ticket = orjson.dumps({"customer_id": "C-1", "title": f"mcp follow-up {n}"}).decode()
    body = f'Call me back. [[sim:tool lookup_customer {{"customer_id": "C-1"}}]] [[sim:tool create_ticket {ticket}]]'
    return make_event(payload={"ticket_id": f"M-{n}", "customer": {"id": "C-1"}, "body": body}, business_key=f"M-{n}")


async def test_a_tool_loop_through_an_mcp_server_opens_one_ticket_per_event(
    stack: Stack, twin: Twin, make_event: Any
) -> None:
    events = [_event(make_event, n) for n in range(5)]
    ids, tally = await run_through(stack, events={"support.tickets": events})
    assert_exactly_one_outcome_and_audit(ids, tally)
    assert all(tally.outcome_kinds(i) == ["result"] for i in ids), tally.summary(ids)
    titles = sorted(t["title"] for t in twin.tickets())
    assert titles == sorted(f"mcp follow-up {n}" for n in range(5))
    for event_id in ids:
        [audit] = tally.by_kind["audit"][event_id]
        steps = [(a["purpose"], a["provider"], a["model"], a["outcome"]) for a in audit.value["attempt_log"]]
        assert [s for s in steps if s[0] == "tool"] == [
            ("tool", "crm_mcp", "lookup_customer", "ok"),
            ("tool", "crm_mcp", "create_ticket", "ok"),
        ], steps
