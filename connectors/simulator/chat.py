"""What the simulator reads from a chat request, whatever its wire protocol, and the tool directive.

A ``[[sim:tool NAME {json-args}]]`` marker in a user or system message asks for a tool call (the JSON
runs to the closing ``]]``). With k assistant messages carrying tool calls already in the conversation,
the (k+1)-th such marker, in order of appearance, is answered as a tool call; once every marker has had
its call, the simulator answers from the response schema.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

_TOOL_DIRECTIVE = re.compile(r"\[\[sim:tool ([A-Za-z0-9_.:-]+)\s+(.*?)\]\]", re.DOTALL)


@dataclass(frozen=True, slots=True)
class SimToolCall:
    call_id: str
    name: str
    arguments: str  # the JSON text of an object, as written in the marker


@dataclass(frozen=True, slots=True)
class SimChat:
    """One chat request: its body, every message's text (prompt words, token counts, the outage key),
    the JSON Schema the answer must follow (None: the simulator's default), the tool call now due."""

    body: Mapping[str, Any]
    texts: list[str]
    schema: Mapping[str, Any] | None
    tool_call: SimToolCall | None


def due_tool_call(directive_texts: Sequence[str], calls_made: int, tool_names: Collection[str]) -> SimToolCall | None:
    """The tool call the (calls_made+1)-th tool marker asks for, or None when all have been made.
    A ``ValueError`` when it names a tool the request does not offer or its arguments are no JSON object."""
    markers = [match for text in directive_texts for match in _TOOL_DIRECTIVE.findall(text)]
    if calls_made >= len(markers):
        return None
    name, arguments = markers[calls_made]
    if name not in tool_names:
        raise ValueError(f"tool {name!r} is not among the request's tools {sorted(tool_names)}")
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"the arguments of [[sim:tool {name} ...]] are not JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise ValueError(f"the arguments of [[sim:tool {name} ...]] are not a JSON object")
    return SimToolCall(call_id=f"call_{calls_made + 1}", name=name, arguments=arguments.strip())


def without_tool_directives(text: str) -> str:
    return _TOOL_DIRECTIVE.sub(" ", text)


def read_json_object(raw: bytes) -> Mapping[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"request body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ValueError("request body is not a JSON object")
    return body


def offered_tools(body: Mapping[str, Any], *, openai: bool) -> set[str]:
    """The names of the tools a request offers: OpenAI ``{"type": "function", "function": {...}}``
    entries or Anthropic ``{"name": ...}`` ones."""
    tools = body.get("tools")
    names: set[str] = set()
    for tool in tools if isinstance(tools, list) else ():
        spec = tool.get("function") if openai and isinstance(tool, dict) else tool
        if isinstance(spec, dict) and isinstance(spec.get("name"), str):
            names.add(spec["name"])
    return names
