"""The simulator's Anthropic Messages wire (``POST /v1/messages``): reading a request into a
``SimChat``, and the bodies of its answers and errors.

As the API does, it refuses a request without the ``anthropic-version`` header or ``max_tokens``, with
a message of another role than user or assistant, or with a content block it does not know. The
answer's JSON Schema comes from ``output_config.format`` (or the older beta ``output_format``); tool
calls are ``tool_use`` blocks, and the ``[[sim:tool ...]]`` markers are read from the system prompt and
the user turns' text blocks (never from tool results). Faults answer the way Anthropic fails: a 5xx
fault is 529 ``overloaded_error``, a refusal is ``stop_reason: "refusal"``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import orjson

from connectors.simulator import outputs as out
from connectors.simulator.chat import SimChat, SimToolCall, due_tool_call, offered_tools, read_json_object
from connectors.simulator.limits import AnthropicHeaders, HeaderStyle

_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "content_filter": "refusal", "tool_calls": "tool_use"}
# A fault's status and Anthropic's error type and message.
_ERRORS = {
    "5xx": (529, "overloaded_error", "Overloaded (simulated)"),
    "429": (429, "rate_limit_error", "Number of requests has exceeded your rate limit (simulated)"),
    "auth": (401, "authentication_error", "invalid x-api-key (simulated)"),
    "context_length": (400, "invalid_request_error", "prompt is too long: 5000 tokens > 4096 maximum (simulated)"),
}


class AnthropicWire:
    path = "/v1/messages"

    def read(self, raw: bytes, headers: Mapping[str, str]) -> SimChat:
        if "anthropic-version" not in {key.lower() for key in headers}:
            raise ValueError("anthropic-version: header is required")
        return read_messages(raw)

    def headers(self) -> HeaderStyle:
        return AnthropicHeaders(dt.datetime.now(dt.UTC))

    def error(self, kind: str, detail: str = "", unit: str = "") -> tuple[int, dict[str, Any]]:
        if kind == "invalid":
            return 400, error_body("invalid_request_error", detail)
        if kind == "rate_limited":
            return 429, error_body("rate_limit_error", f"{detail} (simulated)")
        status, error_type, message = _ERRORS[kind]
        return status, error_body(error_type, message)

    def answer(
        self,
        *,
        answer_id: str,
        model: str,
        content: str | None,
        finish_reason: str,
        prompt_chars: int,
        created: int,
        tool_call: SimToolCall | None,
    ) -> dict[str, Any]:
        """A ``message`` object; ``created`` is not part of it (Anthropic's answers carry no time)."""
        blocks: list[dict[str, Any]] = [{"type": "text", "text": content}] if content else []
        output_tokens = len(content or "") // 4 + 1
        if tool_call is not None and finish_reason == "tool_calls":
            arguments = orjson.loads(tool_call.arguments)
            blocks.append({"type": "tool_use", "id": f"toolu_sim_{tool_call.call_id}", "name": tool_call.name})
            blocks[-1]["input"] = arguments
            output_tokens += len(tool_call.arguments) // 4
        return {
            "id": f"msg_sim_{answer_id}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": blocks,
            "stop_reason": _STOP_REASONS[finish_reason],
            "stop_sequence": None,
            "usage": {
                "input_tokens": out.prompt_tokens_of(prompt_chars),
                "output_tokens": output_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }


def error_body(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


def read_messages(raw: bytes) -> SimChat:
    """A Messages request; a ``ValueError`` says why it is not one the simulator serves."""
    body = read_json_object(raw)
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise ValueError("max_tokens: a whole number of 1 or more is required")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise ValueError("messages: must be a non-empty list of objects")
    system = _text(body.get("system"), "system")
    texts = [system] if system else []
    directive_texts = list(texts)
    calls_made = 0
    for number, message in enumerate(messages):
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise ValueError(f"messages.{number}.role: must be 'user' or 'assistant', not {role!r}")
        blocks = _blocks(message.get("content"), number)
        texts.append(" ".join(text for _, text in blocks))
        if role == "user":
            directive_texts.extend(text for kind, text in blocks if kind == "text")
        calls_made += role == "assistant" and any(kind == "tool_use" for kind, _ in blocks)
    tool_call = due_tool_call(directive_texts, calls_made, offered_tools(body, openai=False))
    return SimChat(body=body, texts=texts, schema=_schema(body), tool_call=tool_call)


def _text(value: Any, where: str) -> str:
    """The text of a ``system`` prompt or a tool result's ``content``: a string or text blocks."""
    if value is None or isinstance(value, str):
        return value or ""
    if isinstance(value, list) and all(isinstance(b, dict) and b.get("type") == "text" for b in value):
        return "\n".join(str(b.get("text", "")) for b in value)
    raise ValueError(f"{where}: must be a string or a list of text blocks")


def _blocks(content: Any, number: int) -> list[tuple[str, str]]:
    """A message's content as (block type, its text) pairs."""
    if isinstance(content, str):
        return [("text", content)]
    if not isinstance(content, list) or not content:
        raise ValueError(f"messages.{number}.content: must be a string or a non-empty list of blocks")
    pairs: list[tuple[str, str]] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            pairs.append(("text", block["text"]))
        elif kind == "tool_use" and isinstance(block.get("input"), dict):
            pairs.append(("tool_use", orjson.dumps(block["input"]).decode()))
        elif kind == "tool_result" and isinstance(block.get("tool_use_id"), str):
            pairs.append(("tool_result", _text(block.get("content"), f"messages.{number}.content.tool_result")))
        else:
            raise ValueError(f"messages.{number}.content: a block of type {kind!r} is malformed or unknown")
    return pairs


def _schema(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    config = body.get("output_config")
    output_format = config.get("format") if isinstance(config, Mapping) else body.get("output_format")
    schema = output_format.get("schema") if isinstance(output_format, Mapping) else None
    return schema if isinstance(schema, Mapping) else None
