"""The simulator's OpenAI chat completions wire: reading a request into a ``SimChat``."""

from __future__ import annotations

from typing import Any

from connectors.simulator import outputs as out
from connectors.simulator.chat import SimChat, due_tool_call, offered_tools, read_json_object


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
