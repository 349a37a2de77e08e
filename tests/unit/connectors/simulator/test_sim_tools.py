"""The simulator's tool directive on the OpenAI wire: ``[[sim:tool NAME {json}]]`` answered as tool calls."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from connectors.simulator.chat import SimToolCall, due_tool_call
from connectors.simulator.server import SimulatorConfig, run_simulator

SCHEMA = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}},
    "required": ["ok"],
    "additionalProperties": False,
}
TOOLS = [
    {"type": "function", "function": {"name": "lookup", "description": "d", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "refund", "description": "d", "parameters": {"type": "object"}}},
]
PROMPT = 'Order A7 [[sim:tool lookup {"id": "A7", "tags": ["x"]}]] then [[sim:tool refund {"amount": 3}]]'


@pytest.fixture
async def sim_url() -> AsyncIterator[str]:
    async with run_simulator(SimulatorConfig(seed=3)) as running:
        yield running.url


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


def body(*messages: dict[str, Any], tools: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    response_format = {"type": "json_schema", "json_schema": {"name": "out", "schema": SCHEMA, "strict": True}}
    return {
        "model": "m",
        "messages": list(messages),
        "tools": TOOLS if tools is None else tools,
        "response_format": response_format,
    }


def called(call_id: str, name: str, arguments: str) -> list[dict[str, Any]]:
    call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    return [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call_id, "content": "done"},
    ]


async def test_the_directives_are_answered_in_order_then_the_final_answer(
    sim_url: str, http: httpx.AsyncClient
) -> None:
    user = {"role": "user", "content": PROMPT}
    first = (await http.post(f"{sim_url}/chat/completions", json=body(user))).json()["choices"][0]
    assert first["finish_reason"] == "tool_calls"
    assert first["message"]["content"] is None
    assert first["message"]["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"id": "A7", "tags": ["x"]}'}}
    ]
    after_one = body(user, *called("call_1", "lookup", '{"id": "A7"}'))
    second = (await http.post(f"{sim_url}/chat/completions", json=after_one)).json()["choices"][0]
    assert second["message"]["tool_calls"][0]["function"] == {"name": "refund", "arguments": '{"amount": 3}'}
    assert second["message"]["tool_calls"][0]["id"] == "call_2"
    after_two = body(user, *called("call_1", "lookup", "{}"), *called("call_2", "refund", "{}"))
    final = (await http.post(f"{sim_url}/chat/completions", json=after_two)).json()["choices"][0]
    assert final["finish_reason"] == "stop"
    assert "tool_calls" not in final["message"]
    assert orjson.loads(final["message"]["content"]) in ({"ok": True}, {"ok": False})


async def test_a_tool_the_request_does_not_offer_is_a_400(sim_url: str, http: httpx.AsyncClient) -> None:
    request = body({"role": "user", "content": "[[sim:tool delete {}]]"})
    response = await http.post(f"{sim_url}/chat/completions", json=request)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "delete" in response.json()["error"]["message"]


async def test_a_fault_marker_still_wins_over_a_tool_call(sim_url: str, http: httpx.AsyncClient) -> None:
    request = body({"role": "user", "content": "[[sim:5xx]] [[sim:tool lookup {}]]"})
    assert (await http.post(f"{sim_url}/chat/completions", json=request)).status_code == 500


def test_due_tool_call_counts_the_calls_made() -> None:
    texts = ["a [[sim:tool lookup {}]]", 'b [[sim:tool refund {"n": [1, 2]}]]']
    assert due_tool_call(texts, 0, {"lookup", "refund"}) == SimToolCall("call_1", "lookup", "{}")
    assert due_tool_call(texts, 1, {"lookup", "refund"}) == SimToolCall("call_2", "refund", '{"n": [1, 2]}')
    assert due_tool_call(texts, 2, {"lookup", "refund"}) is None
    assert due_tool_call(["no markers"], 0, set()) is None


@pytest.mark.parametrize("text", ["[[sim:tool lookup not-json]]", "[[sim:tool lookup [1]]]", "[[sim:tool nope {}]]"])
def test_due_tool_call_rejects_bad_markers(text: str) -> None:
    with pytest.raises(ValueError, match="lookup|nope"):
        due_tool_call([text], 0, {"lookup"})
