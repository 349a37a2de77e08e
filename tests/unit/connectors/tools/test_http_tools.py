"""The HTTP tool client against the loopback CRM: arguments placed, writes keyed and done once, auth
(bearer and OAuth client credentials, refreshed when refused), failures classified, answers bounded,
secrets kept out of every message."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from connectors.crm.customers import Customers, account
from connectors.crm.server import CrmState, RunningCrm, run_crm
from connectors.tools.http import HttpToolClient
from streams.core.connectors import ConnectorDefinition
from streams.core.errors import ConnectorConfigError, ToolAuthFailed, ToolResponseInvalid, ToolTimeout, ToolUnavailable

TOKEN = "crm-token-5f1e"
SECRET = "client-secret-9a7c"
CUSTOMER = account({"id": "C-7", "name": "Ada", "email": "ada@example.net", "plan": "pro"})
TOOLS = {
    "lookup_customer": {
        "description": "A customer",
        "path": "/customers/{customer_id}",
        "arguments": {"type": "object", "properties": {"customer_id": {"type": "string"}}},
    },
    "create_ticket": {
        "description": "Open a ticket",
        "method": "POST",
        "path": "/tickets",
        "arguments": {"type": "object", "properties": {"title": {"type": "string"}}},
    },
}


@pytest.fixture
async def crm() -> AsyncIterator[RunningCrm]:
    state = CrmState(Customers([CUSTOMER]), token=TOKEN, client_secret=SECRET)
    async with run_crm(state) as running:
        yield running


def connector(url: str, auth: dict[str, Any] | None = None, **fields: Any) -> ConnectorDefinition:
    document = {"name": "crm", "kind": "http", "base_url": url, "tools": TOOLS, **fields}
    return ConnectorDefinition.model_validate(document | ({"auth": auth} if auth else {}))


@pytest.fixture
def bearer(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("CRM_TOKEN", TOKEN)
    return {"type": "bearer", "token": {"env": "CRM_TOKEN"}}


@contextlib.asynccontextmanager
async def client(definition: ConnectorDefinition) -> AsyncIterator[HttpToolClient]:
    tools = HttpToolClient(definition)
    try:
        yield tools
    finally:
        await tools.aclose()


async def test_a_read_puts_its_arguments_in_the_path_and_answers_the_body(
    crm: RunningCrm, bearer: dict[str, Any]
) -> None:
    async with client(connector(crm.url, bearer)) as tools:
        found = await tools.call("lookup_customer", {"customer_id": "C-7"}, idempotency_key="k", timeout_s=5)
        missing = await tools.call("lookup_customer", {"customer_id": "../tickets"}, idempotency_key="k", timeout_s=5)
    assert (found.status, found.is_error) == ("ok", False) and '"account_status"' in found.content
    assert found.response_bytes == len(found.content.encode())
    assert (missing.status, missing.is_error) == ("http_404", True)  # encoded: never another path


async def test_a_write_sent_twice_with_one_key_is_done_once(crm: RunningCrm, bearer: dict[str, Any]) -> None:
    async with client(connector(crm.url, bearer)) as tools:
        first = await tools.call("create_ticket", {"title": "Refund"}, idempotency_key="key-1", timeout_s=5)
        again = await tools.call("create_ticket", {"title": "Refund"}, idempotency_key="key-1", timeout_s=5)
        other = await tools.call("create_ticket", {"title": "Refund"}, idempotency_key="key-2", timeout_s=5)
    assert first.content == again.content != other.content
    assert len(crm.state.tickets) == 2 and crm.state.replays == 1


async def test_oauth_client_credentials_fetch_a_token_once_and_again_when_it_is_refused(
    crm: RunningCrm, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_SECRET", SECRET)
    auth = {
        "type": "oauth2_client_credentials",
        "token_url": f"{crm.url}/oauth/token",
        "client_id": "keel",
        "client_secret": {"env": "CRM_SECRET"},
    }
    async with client(connector(crm.url, auth)) as tools:
        for _ in range(3):
            await tools.call("lookup_customer", {"customer_id": "C-7"}, idempotency_key="k", timeout_s=5)
        assert len(crm.state.issued) == 1
        crm.state.issued.clear()  # the CRM forgot its tokens (a restart, a revocation)
        result = await tools.call("lookup_customer", {"customer_id": "C-7"}, idempotency_key="k", timeout_s=5)
    assert result.status == "ok" and len(crm.state.issued) == 1


async def test_refused_credentials_are_an_auth_failure_that_never_shows_the_secret(
    crm: RunningCrm, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_TOKEN", "wrong-token-3b2")
    auth = {"type": "bearer", "token": {"env": "CRM_TOKEN"}}
    async with client(connector(crm.url, auth)) as tools:
        with pytest.raises(ToolAuthFailed) as failed:
            await tools.call("lookup_customer", {"customer_id": "C-7"}, idempotency_key="k", timeout_s=5)
    assert "HTTP 401" in str(failed.value) and "wrong-token-3b2" not in str(failed.value)


def test_a_secret_that_is_not_set_is_a_config_error_naming_where(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRM_TOKEN", raising=False)
    definition = connector("http://127.0.0.1:1", {"type": "bearer", "token": {"env": "CRM_TOKEN"}})
    with pytest.raises(ConnectorConfigError, match=r"connector crm: auth.token: the environment variable CRM_TOKEN"):
        HttpToolClient(definition)


async def test_an_unavailable_system_says_when_to_come_back(crm: RunningCrm, bearer: dict[str, Any]) -> None:
    crm.state.fail_next, crm.state.retry_after_s = 1, 2.5
    async with client(connector(crm.url, bearer)) as tools:
        with pytest.raises(ToolUnavailable) as failed:
            await tools.call("create_ticket", {"title": "x"}, idempotency_key="k", timeout_s=5)
    assert failed.value.retry_after_s == 2.5 and failed.value.sent
    assert crm.state.tickets == []


async def test_an_answer_over_the_size_limit_is_refused(crm: RunningCrm, bearer: dict[str, Any]) -> None:
    async with client(connector(crm.url, bearer, max_response_bytes=64)) as tools:
        with pytest.raises(ToolResponseInvalid, match="max_response_bytes"):
            await tools.call("lookup_customer", {"customer_id": "C-7"}, idempotency_key="k", timeout_s=5)


async def test_no_server_is_unavailable_and_not_sent() -> None:
    async with client(connector("http://127.0.0.1:9")) as tools:
        with pytest.raises(ToolUnavailable) as failed:
            await tools.call("lookup_customer", {"customer_id": "C-7"}, idempotency_key="k", timeout_s=5)
    assert not failed.value.sent


async def test_a_server_that_never_answers_times_out() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        await asyncio.sleep(30)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with client(connector(f"http://127.0.0.1:{port}")) as tools:
            with pytest.raises(ToolTimeout) as failed:
                await tools.call("lookup_customer", {"customer_id": "C-7"}, idempotency_key="k", timeout_s=0.3)
        assert failed.value.sent
    finally:
        server.close()


async def test_the_declared_operations_are_the_tools() -> None:
    tools = HttpToolClient(
        connector("http://127.0.0.1:1"), transport=httpx.MockTransport(lambda _: httpx.Response(200))
    )
    specs = await tools.list_tools()
    await tools.aclose()
    assert [s.name for s in specs] == ["lookup_customer", "create_ticket"]
