"""The Anthropic Messages client: the body it sends, the answers and errors it reads, the rate-limit
headers; against canned answers and against the simulator's Anthropic wire."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from connectors.models.anthropic import (
    AnthropicClient,
    build_messages_body,
    error_for_status,
    parse_message,
    parse_rate_limits,
)
from connectors.simulator.server import SimulatorConfig, run_simulator
from streams.core.errors import (
    ContextLengthExceeded,
    ModelRefused,
    ProviderAuthError,
    ProviderBadResponse,
    ProviderRateLimited,
    ProviderRequestRejected,
    ProviderServerError,
)
from streams.core.ports.model import ChatMessage, ModelRequest, ToolCall, ToolSpec

SCHEMA = {
    "type": "object",
    "properties": {"category": {"type": "string", "enum": ["billing", "bug"]}, "urgent": {"type": "boolean"}},
    "required": ["category", "urgent"],
    "additionalProperties": False,
}
LOOKUP = ToolSpec("crm_lookup", "Find a customer", {"type": "object", "properties": {"id": {"type": "string"}}})
NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)


def request(*messages: ChatMessage, tools: tuple[ToolSpec, ...] = (), **parameters: Any) -> ModelRequest:
    return ModelRequest(
        model="claude-test",
        messages=messages or (ChatMessage("system", "Classify."), ChatMessage("user", "My card was charged twice")),
        timeout_s=5.0,
        parameters=parameters,
        response_schema=SCHEMA,
        tools=tools,
    )


def message_body(*blocks: dict[str, Any], stop_reason: str = "end_turn", **usage: int) -> bytes:
    return orjson.dumps(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-test-20261201",
            "content": list(blocks),
            "stop_reason": stop_reason,
            "usage": {"input_tokens": 10, "output_tokens": 5, **usage},
        }
    )


def test_the_body_puts_system_apart_and_tool_turns_in_anthropic_s_blocks() -> None:
    call = ToolCall("toolu_1", "crm_lookup", '{"id": "C-1"}')
    body = build_messages_body(
        request(
            ChatMessage("system", "Classify."),
            ChatMessage("user", "Charged twice"),
            ChatMessage("assistant", "Looking up.", tool_calls=(call,)),
            ChatMessage("tool", '{"tier": "gold"}', tool_call_id="toolu_1"),
            ChatMessage("tool", "no such order", tool_call_id="toolu_2", is_error=True),
            tools=(LOOKUP,),
            temperature=0,
        )
    )
    assert body["system"] == "Classify." and body["max_tokens"] == 1024 and body["temperature"] == 0
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Charged twice"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Looking up."},
                {"type": "tool_use", "id": "toolu_1", "name": "crm_lookup", "input": {"id": "C-1"}},
            ],
        },
        {  # both answers in the one user turn that follows the assistant's
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": '{"tier": "gold"}'},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "no such order", "is_error": True},
            ],
        },
    ]
    assert body["tools"] == [
        {"name": "crm_lookup", "description": "Find a customer", "input_schema": LOOKUP.parameters}
    ]
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}


def test_max_tokens_is_taken_from_the_chain_entry_and_parameters_cannot_replace_the_messages() -> None:
    assert build_messages_body(request(max_tokens=77))["max_tokens"] == 77
    assert build_messages_body(request(max_completion_tokens=55))["max_tokens"] == 55
    body = build_messages_body(request(messages=[], model="other"))
    assert body["model"] == "claude-test" and len(body["messages"]) == 1


def test_an_answer_with_text_and_cache_usage() -> None:
    response = parse_message(
        "anthropic",
        request(),
        message_body(
            {"type": "thinking", "thinking": "hmm", "signature": "s"},
            {"type": "text", "text": '{"category": "billing", "urgent": true}'},
            cache_read_input_tokens=300,
            cache_creation_input_tokens=40,
        ),
        latency_s=0.2,
    )
    assert orjson.loads(response.text) == {"category": "billing", "urgent": True}
    assert (response.tokens_in, response.tokens_cache_read, response.tokens_cache_write) == (350, 300, 40)
    assert (response.tokens_out, response.finish_reason, response.model_version) == (5, "stop", "claude-test-20261201")


def test_tool_use_blocks_are_tool_calls() -> None:
    block = {"type": "tool_use", "id": "toolu_9", "name": "crm_lookup", "input": {"id": "C-7"}}
    response = parse_message("anthropic", request(), message_body(block, stop_reason="tool_use"), latency_s=0.1)
    assert response.finish_reason == "tool_calls"
    assert response.tool_calls == (ToolCall("toolu_9", "crm_lookup", '{"id":"C-7"}'),)


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [("max_tokens", "length"), ("model_context_window_exceeded", "length"), ("stop_sequence", "stop")],
)
def test_stop_reasons(stop_reason: str, finish_reason: str) -> None:
    body = message_body({"type": "text", "text": '{"category": "bi'}, stop_reason=stop_reason)
    assert parse_message("anthropic", request(), body, latency_s=0.1).finish_reason == finish_reason


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (message_body({"type": "text", "text": "I can't help with that."}, stop_reason="refusal"), ModelRefused),
        (message_body({"type": "text", "text": "{}"}, stop_reason="pause_turn"), ProviderBadResponse),
        (
            message_body({"type": "tool_use", "id": "t", "name": "x", "input": "no"}, stop_reason="tool_use"),
            ProviderBadResponse,
        ),
        (message_body(stop_reason="tool_use"), ProviderBadResponse),
        (message_body({"type": "image", "source": {}}), ProviderBadResponse),
        (b'{"type": "error"}', ProviderBadResponse),
        (b"<html>", ProviderBadResponse),
    ],
)
def test_answers_that_are_errors(content: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_message("anthropic", request(), content, latency_s=0.1)


@pytest.mark.parametrize(
    ("status", "text", "error"),
    [
        (429, '{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}', ProviderRateLimited),
        (529, '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}', ProviderServerError),
        (500, '{"type":"error","error":{"type":"api_error","message":"oops"}}', ProviderServerError),
        (
            401,
            '{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}',
            ProviderAuthError,
        ),
        (
            400,
            '{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 9 > 8"}}',
            ContextLengthExceeded,
        ),
        (
            413,
            '{"type":"error","error":{"type":"request_too_large","message":"Request exceeds the maximum size"}}',
            ProviderRequestRejected,
        ),
    ],
)
def test_statuses(status: int, text: str, error: type[Exception]) -> None:
    raised = error_for_status("anthropic", "claude-test", status, text + " sk-ant-secret", secret="sk-ant-secret")
    assert isinstance(raised, error) and "sk-ant-secret" not in str(raised) and f"HTTP {status}" in str(raised)


def test_the_rate_limit_headers() -> None:
    headers = {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-requests-reset": "2026-12-04T12:00:01Z",
        "anthropic-ratelimit-tokens-limit": "90000",
        "anthropic-ratelimit-tokens-remaining": "80000",
        "anthropic-ratelimit-tokens-reset": "2026-12-04T12:00:30Z",
        "retry-after": "7",
    }
    limits = parse_rate_limits(headers, now=NOW)
    assert limits is not None
    assert (limits.limit_requests, limits.remaining_requests, limits.reset_requests_s) == (50, 49, 1.0)
    assert (limits.limit_tokens, limits.remaining_tokens, limits.reset_tokens_s) == (90000, 80000, 30.0)
    assert limits.retry_after_s == 7.0
    only_input = {"anthropic-ratelimit-input-tokens-remaining": "12", "anthropic-ratelimit-input-tokens-reset": "x"}
    limits = parse_rate_limits(only_input, now=NOW)
    assert limits is not None and (limits.remaining_tokens, limits.reset_tokens_s) == (12, None)
    assert parse_rate_limits({"content-type": "application/json"}, now=NOW) is None


async def test_the_client_sends_the_key_and_version_headers_and_never_shows_the_key() -> None:
    seen: list[httpx.Request] = []

    def answer(sent: httpx.Request) -> httpx.Response:
        seen.append(sent)
        return httpx.Response(401, json={"type": "error", "error": {"type": "authentication_error", "message": "no"}})

    client = AnthropicClient(
        "anthropic", "https://api.example/v1", api_key=SecretStr("sk-ant-123"), transport=httpx.MockTransport(answer)
    )
    try:
        with pytest.raises(ProviderAuthError) as raised:
            await client.complete(request())
    finally:
        await client.aclose()
    assert str(seen[0].url) == "https://api.example/v1/messages"
    assert seen[0].headers["x-api-key"] == "sk-ant-123" and seen[0].headers["anthropic-version"] == "2023-06-01"
    assert "sk-ant-123" not in str(raised.value) and "sk-ant-123" not in repr(client)


@pytest.fixture
async def sim() -> AsyncIterator[AnthropicClient]:
    config = SimulatorConfig(seed=4, requests_per_minute=600, model_name="sim-claude")
    async with run_simulator(config) as running:
        client = AnthropicClient("sim_anthropic", running.url)
        try:
            yield client
        finally:
            await client.aclose()


async def test_the_simulator_answers_the_schema_with_anthropic_s_rate_limit_headers(sim: AnthropicClient) -> None:
    response = await sim.complete(request())
    answer = orjson.loads(response.text)
    assert answer["category"] in ("billing", "bug") and isinstance(answer["urgent"], bool)
    assert response.finish_reason == "stop" and response.model_version == "sim-claude" and response.tokens_in > 0
    assert response.rate_limits is not None and response.rate_limits.limit_requests == 600
    assert response.rate_limits.remaining_requests == 599 and response.rate_limits.reset_requests_s is not None


async def test_a_tool_loop_over_the_simulator(sim: AnthropicClient) -> None:
    system = ChatMessage("system", 'Classify. [[sim:tool crm_lookup {"id": "C-1"}]]')
    user = ChatMessage("user", "Charged twice")
    first = await sim.complete(request(system, user, tools=(LOOKUP,)))
    assert first.finish_reason == "tool_calls" and [c.name for c in first.tool_calls] == ["crm_lookup"]
    assert orjson.loads(first.tool_calls[0].arguments) == {"id": "C-1"}
    call = first.tool_calls[0]
    answered = (ChatMessage("assistant", "", tool_calls=(call,)), ChatMessage("tool", "{}", tool_call_id=call.call_id))
    second = await sim.complete(request(system, user, *answered, tools=(LOOKUP,)))
    assert second.finish_reason == "stop" and not second.tool_calls and "category" in orjson.loads(second.text)


@pytest.mark.parametrize(
    ("marker", "error"),
    [
        ("[[sim:5xx]]", ProviderServerError),
        ("[[sim:429]]", ProviderRateLimited),
        ("[[sim:auth]]", ProviderAuthError),
        ("[[sim:context_length]]", ContextLengthExceeded),
        ("[[sim:refusal]]", ModelRefused),
        ("[[sim:malformed]]", None),
    ],
)
async def test_the_simulator_s_faults_in_anthropic_s_shapes(
    sim: AnthropicClient, marker: str, error: type[Exception] | None
) -> None:
    messages = (ChatMessage("system", "Classify."), ChatMessage("user", f"Charged twice {marker}"))
    if error is None:  # a 200 whose text is not JSON: the chain's parse step finds it
        response = await sim.complete(request(*messages))
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(response.text)
        return
    with pytest.raises(error) as raised:
        await sim.complete(request(*messages))
    if error is ProviderRateLimited:
        assert isinstance(raised.value, ProviderRateLimited) and raised.value.retry_after_s == 1.0
    if error is ProviderServerError:
        assert "HTTP 529" in str(raised.value) and "overloaded_error" in str(raised.value)


async def test_the_simulator_refuses_what_the_messages_api_refuses() -> None:
    async with run_simulator(SimulatorConfig()) as running, httpx.AsyncClient() as http:
        url = running.url + "/messages"
        fine = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
        assert (await http.post(url, json=fine, headers={"anthropic-version": "2023-06-01"})).status_code == 200
        assert (await http.post(url, json=fine)).status_code == 400  # no anthropic-version
        versioned = {"anthropic-version": "2023-06-01"}
        for bad in (
            {**fine, "max_tokens": None},
            {**fine, "messages": [{"role": "system", "content": "hi"}]},
            {**fine, "messages": [{"role": "user", "content": [{"type": "video"}]}]},
        ):
            refused = await http.post(url, json=bad, headers=versioned)
            assert refused.status_code == 400 and refused.json()["error"]["type"] == "invalid_request_error"
