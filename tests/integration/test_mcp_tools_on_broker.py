"""MCP tools on the real broker: the worker starts the CRM's MCP twin over stdio, lists its tools at
start, and its model (the simulator, told by directives) reads a customer and opens a ticket through
it, once per event; the audit shows the steps."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from harness import Stack, assert_exactly_one_outcome_and_audit, run_through, worker_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def state_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("crm-mcp") / "crm.json"


@pytest.fixture(scope="module")
def stack(
    kafka_bootstrap: str, sim_url: str, tmp_path_factory: pytest.TempPathFactory, state_file: Path
) -> Iterator[Stack]:
    connectors = tmp_path_factory.mktemp("connectors")
    twin = {
        "name": "crm_mcp", "kind": "mcp", "transport": "stdio", "timeout_s": 30,
        "command": [sys.executable, "-m", "connectors.crm.mcp_server", "--state-file", str(state_file)],
        "write_tools": ["create_ticket"],
    }  # fmt: skip
    (connectors / "crm_mcp.yaml").write_text(yaml.safe_dump(twin))
    tools = {"tools": {"allow": ["crm_mcp.lookup_customer", "crm_mcp.create_ticket"], "max_steps": 3}}
    with worker_stack(
        kafka_bootstrap,
        tmp_path_factory.mktemp("keel-state"),
        provider="sim",
        base_url=sim_url,
        env={"KEEL_CONNECTORS_DIR": str(connectors), "KEEL_AGENTS": '["support_triage"]'},
        blocks={"support_triage": tools},
    ) as stack:
        yield stack


def _event(make_event: Any, n: int) -> Any:
    ticket = orjson.dumps({"customer_id": "C-1", "title": f"mcp follow-up {n}"}).decode()
    body = f'Call me back. [[sim:tool lookup_customer {{"customer_id": "C-1"}}]] [[sim:tool create_ticket {ticket}]]'
    return make_event(payload={"ticket_id": f"M-{n}", "customer": {"id": "C-1"}, "body": body}, business_key=f"M-{n}")


async def test_a_tool_loop_through_an_mcp_server_opens_one_ticket_per_event(
    stack: Stack, state_file: Path, make_event: Any
) -> None:
    events = [_event(make_event, n) for n in range(5)]
    ids, tally = await run_through(stack, events={"support.tickets": events})
    assert_exactly_one_outcome_and_audit(ids, tally)
    assert all(tally.outcome_kinds(i) == ["result"] for i in ids), tally.summary(ids)
    titles = sorted(t["title"] for t in orjson.loads(state_file.read_bytes())["tickets"])
    assert titles == sorted(f"mcp follow-up {n}" for n in range(5))
    for event_id in ids:
        [audit] = tally.by_kind["audit"][event_id]
        steps = [(a["purpose"], a["provider"], a["model"], a["outcome"]) for a in audit.value["attempt_log"]]
        assert [s for s in steps if s[0] == "tool"] == [
            ("tool", "crm_mcp", "lookup_customer", "ok"),
            ("tool", "crm_mcp", "create_ticket", "ok"),
        ], steps
