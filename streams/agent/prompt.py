"""Prompt step: render the agent's system and user templates over an event.

Templates use ``{{ path }}`` for a required value and ``{{ path? }}`` for an optional one (empty
when missing or null, and left out of a trimmed prompt). Paths address the event: ``event_id``,
``tenant``, ``source_system``, ``business_key``, ``occurred_at`` (ISO-8601) and
``payload.<field>.<field>``, and ``context.<name>.<field>``: what the agent's context lookups found
(streams/agent/context_lookups.py). Strings render as-is; other values render as compact JSON. Templates
are compiled once when the agent is loaded.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from streams.core.domain import RequestEvent
from streams.core.errors import PromptRenderError
from streams.core.ports.model import ChatMessage

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)(\?)?\s*\}\}")
_MISSING = object()


@dataclass(frozen=True, slots=True)
class _Slot:
    path: tuple[str, ...]
    optional: bool


@dataclass(frozen=True, slots=True)
class Template:
    source: str
    parts: tuple[str | _Slot, ...]

    def render(self, context: dict[str, Any], *, trim: bool = False) -> str:
        """``trim``: leave every optional value out, to fit a smaller context window."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = _MISSING if trim and part.optional else _lookup(context, part.path)
            if value is _MISSING or value is None:
                if not part.optional:
                    raise PromptRenderError(f"the template needs {'.'.join(part.path)}, which the event does not have")
                continue
            out.append(value if isinstance(value, str) else orjson.dumps(value).decode())
        return "".join(out)


def compile_template(source: str) -> Template:
    parts: list[str | _Slot] = []
    position = 0
    for match in _PLACEHOLDER.finditer(source):
        parts.append(source[position : match.start()])
        parts.append(_Slot(tuple(match.group(1).split(".")), optional=match.group(2) == "?"))
        position = match.end()
    parts.append(source[position:])
    return Template(source, tuple(p for p in parts if p != ""))


@dataclass(frozen=True, slots=True)
class PromptTemplates:
    system: Template
    user: Template

    @property
    def version(self) -> str:
        digest = hashlib.sha256(f"{self.system.source}\x00{self.user.source}".encode()).hexdigest()
        return digest[:12]


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    messages: tuple[ChatMessage, ...]
    hash: str

    @property
    def chars(self) -> int:
        return sum(len(m.content) for m in self.messages)


def event_values(event: RequestEvent) -> dict[str, Any]:
    """What a template addresses of an event (context lookups' templates too)."""
    return {
        "event_id": event.event_id,
        "tenant": event.tenant,
        "source_system": event.source_system,
        "business_key": event.business_key,
        "occurred_at": datetime.fromtimestamp(event.occurred_at_ms / 1000, UTC).isoformat(),
        "payload": event.payload,
    }


def render_prompt(
    templates: PromptTemplates, event: RequestEvent, *, trim: bool = False, context: dict[str, Any] | None = None
) -> RenderedPrompt:
    """``context``: the results of the agent's context lookups, addressed as ``context.<name>``."""
    values = event_values(event) | {"context": context or {}}
    system = templates.system.render(values, trim=trim)
    user = templates.user.render(values, trim=trim)
    digest = hashlib.sha256(f"{system}\x00{user}".encode()).hexdigest()[:16]
    return RenderedPrompt((ChatMessage("system", system), ChatMessage("user", user)), digest)


def _lookup(context: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = context
    for name in path:
        if isinstance(node, dict) and name in node:
            node = node[name]
        elif isinstance(node, list) and name.isdigit() and int(name) < len(node):
            node = node[int(name)]
        else:
            return _MISSING
    return node
