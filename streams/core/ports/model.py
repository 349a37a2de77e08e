"""The model port: what the pipeline asks of a model provider, and what it gets back.

Connectors implement ``ModelClient``; the pipeline only sees these plain values. A client either
returns a ``ModelResponse`` or raises a ``streams.core.errors.ProviderError`` subclass.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

CHARS_PER_TOKEN = 4  # a rough estimate of a prompt's tokens before a call (context windows, rate limits)


def estimate_prompt_tokens(messages: Iterable[ChatMessage]) -> int:
    """A prompt's input tokens before the call, or after one the provider did not count: its characters
    at ``CHARS_PER_TOKEN`` a token (as context windows and rate limits estimate it)."""
    return sum(message.chars for message in messages) // CHARS_PER_TOKEN


def max_output_tokens(parameters: Mapping[str, Any]) -> int | None:
    """The answer's token allowance a request sets (``max_tokens`` or ``max_completion_tokens``), if any."""
    answer = parameters.get("max_tokens", parameters.get("max_completion_tokens"))
    return answer if isinstance(answer, int) and not isinstance(answer, bool) and answer > 0 else None


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool the model may call: its name, what it does, and the JSON Schema of its arguments (an
    object). OpenAI sends it as a ``function`` tool, Anthropic as a tool with an ``input_schema``."""

    name: str
    description: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model asked for. ``arguments`` is the JSON text as the model wrote it (OpenAI sends a
    string; Anthropic's ``input`` object is serialised): it may not parse, or not match the schema."""

    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: str  # "system" | "user" | "assistant" | "tool"
    content: str
    # assistant: the tool calls it asked for (content may be empty); tool: the call it answers
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    is_error: bool = False  # tool: the content says why the call failed (Anthropic's ``is_error``)

    @property
    def chars(self) -> int:
        return len(self.content) + sum(len(c.name) + len(c.arguments) for c in self.tool_calls)


@dataclass(frozen=True, slots=True)
class ModelRequest:
    model: str
    messages: tuple[ChatMessage, ...]
    timeout_s: float
    parameters: Mapping[str, Any] = field(default_factory=dict)  # temperature, max_tokens, seed, ...
    # JSON Schema the answer must follow; sent as an OpenAI ``response_format`` of type json_schema.
    response_schema: Mapping[str, Any] | None = None
    response_schema_name: str = "output"
    tools: tuple[ToolSpec, ...] = ()  # none: the model answers; some: it may call them first


@dataclass(frozen=True, slots=True)
class ProviderLimits:
    """What a provider said about its rate limits in one answer: OpenAI's ``x-ratelimit-*`` headers
    (limit, remaining, and the time until the limit is whole again) and ``Retry-After``; None: not said."""

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests_s: float | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens_s: float | None = None
    retry_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class ModelResponse:
    text: str
    model_version: str  # the model name as the provider reports it (plus fingerprint when given)
    tokens_in: int
    tokens_out: int
    latency_s: float
    finish_reason: str  # "stop" | "length" | "content_filter" | "tool_calls" | ...
    rate_limits: ProviderLimits | None = None  # None: the provider sent no rate-limit headers
    tool_calls: tuple[ToolCall, ...] = ()  # the model asks for these before it answers (finish "tool_calls")
    tokens_cache_read: int = 0  # of tokens_in: read from the provider's prompt cache
    tokens_cache_write: int = 0  # of tokens_in: written to it


class ModelClient(Protocol):
    """One provider endpoint (OpenAI-compatible or otherwise)."""

    provider: str

    async def complete(self, request: ModelRequest) -> ModelResponse: ...

    async def aclose(self) -> None: ...
