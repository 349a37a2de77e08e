"""The simulator's OpenAI chat completions wire: reading a request into a ``SimChat``, and the bodies
of its answers and errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.simulator import outputs as out
from connectors.simulator.chat import SimChat, SimToolCall, due_tool_call, offered_tools, read_json_object
from connectors.simulator.limits import OPENAI_HEADERS, HeaderStyle

# A fault's status and OpenAI's error: (status, type, code, message).
_ERRORS = {
    "5xx": (500, "server_error", None, "The server had an error while processing your request (simulated)."),
    "429": (429, "requests", "rate_limit_exceeded", "Rate limit reached for requests (simulated)."),
    "auth": (401, "invalid_request_error", "invalid_api_key", "Incorrect API key provided (simulated)."),
    "context_length": (
        400,
        "invalid_request_error",
        "context_length_exceeded",
        "This model's maximum context length is 4096 tokens. However, your messages resulted in "
        "more tokens. Please reduce the length of the messages. (simulated)",
    ),
}


class OpenAIWire:
    path = "/v1/chat/completions"

    def read(self, raw: bytes, headers: Mapping[str, str]) -> SimChat:
        return read_chat(raw)

    def headers(self) -> HeaderStyle:
        return OPENAI_HEADERS

    def error(self, kind: str, detail: str = "", unit: str = "") -> tuple[int, dict[str, Any]]:
        """The answer to a fault (``_ERRORS``), a request the simulator cannot serve (``invalid``) or
        one over its rate limits (``rate_limited``, ``unit`` the limit it ran out of)."""
        if kind == "invalid":
            return 400, out.error_body(detail, error_type="invalid_request_error", code=None)
        if kind == "rate_limited":
            return 429, out.error_body(f"{detail} (simulated)", error_type=unit, code="rate_limit_exceeded")
        status, error_type, code, message = _ERRORS[kind]
        return status, out.error_body(message, error_type=error_type, code=code)

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
        return out.completion_body(
            created=created,
            completion_id=answer_id,
            model=model,
            content=content,
            finish_reason=finish_reason,
            prompt_chars=prompt_chars,
            tool_call=tool_call,
        )


def read_chat(raw: bytes) -> SimChat:
    """A chat completions request; a ``ValueError`` says why it is not one the simulator serves."""
    body = read_json_object(raw)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise ValueError("'messages' must be a non-empty list of objects")
    texts = [_text(m) for m in messages]
    directive_texts = [t for m, t in zip(messages, texts, strict=True) if m.get("role") in ("user", "system")]
    calls_made = sum(1 for m in messages if m.get("role") == "assistant" and m.get("tool_calls"))
    tool_call = due_tool_call(directive_texts, calls_made, offered_tools(body, openai=True))
    return SimChat(body=body, texts=texts, schema=out.schema_of(body), tool_call=tool_call)


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if content is None and message.get("role") == "assistant" and message.get("tool_calls"):
        return ""
    if not isinstance(content, str):
        raise ValueError("every message needs a string 'content' (an assistant with tool calls may have null)")
    return content
