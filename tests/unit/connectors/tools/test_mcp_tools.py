"""The MCP tool client against the CRM's MCP twin, over stdio (a real child process) and streamable
HTTP (a real server on loopback): tools listed, calls answered, a write done once per idempotency key,
a tool's own error, a dead server that comes back, an answer too large, a wrong token."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from connectors.crm.customers import Customers, account
from connectors.crm.mcp_server import serving_http
from connectors.crm.server import CrmState
from connectors.tools.mcp import McpToolClient
from streams.core.connectors import ConnectorDefinition
from streams.core.errors import ToolAuthFailed, ToolResponseInvalid, ToolUnavailable

TOKEN = "mcp-token-31"
CUSTOMER = account({"id": "C-1", "name": "Zoë", "email": "z@example.com", "plan": "pro"})


def stdio(state_file: Path, **fields: Any) -> ConnectorDefinition:
    command = [sys.executable, "-m", "connectors.crm.mcp_server", "--state-file", str(state_file)]
    document = {"name": "crm_mcp", "kind": "mcp", "transport": "stdio", "command": command, "timeout_s": 30}
    return ConnectorDefinition.model_validate(document | {"write_tools": ["create_ticket"]} | fields)


@pytest.fixture
def http_state() -> Iterator[tuple[str, CrmState]]:
    state = CrmState(Customers([CUSTOMER]), token=TOKEN)
    with serving_http(state, token=TOKEN) as url:
        yield url, state


def http(url: str, token: str) -> ConnectorDefinition:
    return ConnectorDefinition.model_validate(
        {"name": "crm_mcp", "kind": "mcp", "transport": "http", "base_url": url, "timeout_s": 30,
         "auth": {"type": "bearer", "token": {"env": "MCP_TOKEN"}}, "write_tools": ["create_ticket"]}
    )  # fmt: skip


async def test_over_stdio_tools_are_listed_and_a_write_is_done_once_per_key(tmp_path: Path) -> None:
    state_file = tmp_path / "crm.json"
    client = McpToolClient(stdio(state_file))
    try:
        specs = {spec.name: spec for spec in await client.list_tools()}
        customer = await client.call("lookup_customer", {"customer_id": "C-1"}, idempotency_key="k", timeout_s=30)
        first = await client.call(
            "create_ticket", {"customer_id": "C-1", "title": "Refund"}, idempotency_key="k1", timeout_s=30
        )
        again = await client.call(
            "create_ticket", {"customer_id": "C-1", "title": "Refund"}, idempotency_key="k1", timeout_s=30
        )
        missing = await client.call("lookup_customer", {"customer_id": "nope"}, idempotency_key="k", timeout_s=30)
    finally:
        await client.aclose()
    assert set(specs) == {"lookup_customer", "create_ticket"}
    assert specs["create_ticket"].parameters["required"] == ["customer_id", "title"]
    assert orjson.loads(customer.content)["plan"] == "pro" and customer.status == "ok"
    assert first.content == again.content
    assert len(orjson.loads(state_file.read_bytes())["tickets"]) == 1
    assert (missing.is_error, missing.status) == (True, "tool_error") and "no customer" in missing.content


async def test_over_stdio_concurrent_writes_are_each_done_and_answered(tmp_path: Path) -> None:
    state_file = tmp_path / "crm.json"
    client = McpToolClient(stdio(state_file))
    try:
        answers = await asyncio.gather(*(
            client.call("create_ticket", {"customer_id": "C-1", "title": f"t{n}"}, idempotency_key=f"k{n}",
                        timeout_s=30)
            for n in range(20)
        ))  # fmt: skip
    finally:
        await client.aclose()
    assert [a.status for a in answers] == ["ok"] * 20, [a.content for a in answers if a.is_error]
    titles = sorted(t["title"] for t in orjson.loads(state_file.read_bytes())["tickets"])
    assert titles == sorted(f"t{n}" for n in range(20))


def kill_server(state_file: Path) -> None:
    """kill -9 the stdio server this test started (found by its state file in its command line)."""
    killed = 0
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"connectors.crm.mcp_server" in command and str(state_file).encode() in command:
            os.kill(int(entry.name), signal.SIGKILL)
            killed += 1
    assert killed == 1


async def test_a_stdio_server_that_dies_is_unavailable_then_started_again(tmp_path: Path) -> None:
    client = McpToolClient(stdio(tmp_path / "crm.json"))
    try:
        await client.list_tools()
        kill_server(tmp_path / "crm.json")
        with pytest.raises(ToolUnavailable):
            await client.call("lookup_customer", {"customer_id": "C-1"}, idempotency_key="k", timeout_s=30)
        result = await client.call("lookup_customer", {"customer_id": "C-1"}, idempotency_key="k", timeout_s=30)
        assert result.status == "ok"  # a new server process, started by this call
    finally:
        await client.aclose()
    broken = McpToolClient(stdio(tmp_path / "crm.json", command=[sys.executable, "-c", "import sys; sys.exit(3)"]))
    with pytest.raises(ToolUnavailable):
        await broken.call("lookup_customer", {"customer_id": "C-1"}, idempotency_key="k", timeout_s=10)
    await broken.aclose()


async def test_an_answer_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    client = McpToolClient(stdio(tmp_path / "crm.json", max_response_bytes=32))
    try:
        with pytest.raises(ToolResponseInvalid, match="over 32 bytes"):
            await client.call("lookup_customer", {"customer_id": "C-1"}, idempotency_key="k", timeout_s=30)
    finally:
        await client.aclose()


async def test_over_http_with_the_token_calls_are_answered_and_writes_done_once(
    http_state: tuple[str, CrmState], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, state = http_state
    monkeypatch.setenv("MCP_TOKEN", TOKEN)
    client = McpToolClient(http(url, TOKEN))
    try:
        assert {s.name for s in await client.list_tools()} == {"lookup_customer", "create_ticket"}
        for _ in range(2):
            await client.call("create_ticket", {"customer_id": "C-1", "title": "x"}, idempotency_key="h1", timeout_s=30)
    finally:
        await client.aclose()
    assert len(state.tickets) == 1 and state.replays == 1


async def test_over_http_a_wrong_token_is_refused(
    http_state: tuple[str, CrmState], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, state = http_state
    monkeypatch.setenv("MCP_TOKEN", "wrong-token-99")
    client = McpToolClient(http(url, "wrong-token-99"))
    try:
        with pytest.raises(ToolAuthFailed) as refused:
            await client.call("lookup_customer", {"customer_id": "C-1"}, idempotency_key="k", timeout_s=15)
    finally:
        await client.aclose()
    assert "wrong-token-99" not in str(refused.value) and state.tickets == []
