"""OpenAI's tools wire: tool specs and tool messages in the body, tool calls and cached tokens in the answer."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from connectors.models.openai_compat import build_chat_body, parse_completion
from streams.core import errors
from streams.core.ports.model import ChatMessage, ModelRequest, ToolCall, ToolSpec

SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
LOOKUP = ToolSpec("lookup", "Find an order", {"type": "object", "properties": {"id": {"type": "string"}}})
CALL = ToolCall(call_id="call_1", name="lookup", arguments='{"id": "A7"}')


def request(*messages: ChatMessage, tools: tuple[ToolSpec, ...] = ()) -> ModelRequest:
    return ModelRequest(
        model="m", messages=messages or (ChatMessage("user", "hi"),), timeout_s=5, response_schema=SCHEMA, tools=tools
    )


def answer(message: dict[str, Any], *, finish_reason: str = "tool_calls", **usage: Any) -> bytes:
    body = {
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 40, "completion_tokens": 5, **usage},
    }
    return orjson.dumps(body)


def test_tools_are_sent_as_functions_beside_the_response_format() -> None:
    body = build_chat_body(request(tools=(LOOKUP,)))
    assert body["tools"] == [
        {
            "type": "function",
            "function": {"name": "lookup", "description": "Find an order", "parameters": dict(LOOKUP.parameters)},
        }
    ]
    assert body["response_format"]["type"] == "json_schema"


def test_no_tools_key_without_tools() -> None:
    assert "tools" not in build_chat_body(request())


def test_tool_calls_and_tool_results_are_serialised_faithfully() -> None:
    messages = (
        ChatMessage("user", "where is A7?"),
        ChatMessage("assistant", "", tool_calls=(CALL,)),
        ChatMessage("tool", '{"status": "shipped"}', tool_call_id="call_1"),
        ChatMessage("assistant", "let me check", tool_calls=(CALL,)),
    )
    wire = build_chat_body(request(*messages, tools=(LOOKUP,)))["messages"]
    function = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"id": "A7"}'}}
    assert wire == [
        {"role": "user", "content": "where is A7?"},
        {"role": "assistant", "content": None, "tool_calls": [function]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"status": "shipped"}'},
        {"role": "assistant", "content": "let me check", "tool_calls": [function]},
    ]


def test_tool_calls_in_the_answer_with_null_content() -> None:
    calls = [{"id": "call_9", "type": "function", "function": {"name": "lookup", "arguments": '{"id":"B2"}'}}]
    response = parse_completion("p", request(), answer({"content": None, "tool_calls": calls}), latency_s=0.1)
    assert response.tool_calls == (ToolCall("call_9", "lookup", '{"id":"B2"}'),)
    assert response.text == ""
    assert response.finish_reason == "tool_calls"


def test_an_answer_without_tool_calls_has_none() -> None:
    response = parse_completion("p", request(), answer({"content": '{"ok": true}'}, finish_reason="stop"), latency_s=0)
    assert response.tool_calls == ()
    assert response.finish_reason == "stop"


@pytest.mark.parametrize(
    "calls",
    [
        "lookup",
        [{"id": "c", "type": "function"}],
        [{"id": "c", "type": "function", "function": {"name": "lookup", "arguments": {"id": 1}}}],
        [{"type": "function", "function": {"name": "lookup", "arguments": "{}"}}],
        [{"id": "c", "type": "custom", "function": {"name": "lookup", "arguments": "{}"}}],
        ["call"],
    ],
)
def test_a_malformed_tool_call_is_a_bad_response(calls: Any) -> None:
    with pytest.raises(errors.ProviderBadResponse, match="tool_calls"):
        parse_completion("p", request(), answer({"content": None, "tool_calls": calls}), latency_s=0)


def test_cached_prompt_tokens_are_read() -> None:
    body = answer({"content": "{}"}, finish_reason="stop", prompt_tokens_details={"cached_tokens": 32})
    response = parse_completion("p", request(), body, latency_s=0)
    assert (response.tokens_in, response.tokens_cache_read, response.tokens_cache_write) == (40, 32, 0)
