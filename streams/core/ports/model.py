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
    return sum(len(message.content) for message in messages) // CHARS_PER_TOKEN


def max_output_tokens(parameters: Mapping[str, Any]) -> int | None:
    """The answer's token allowance a request sets (``max_tokens`` or ``max_completion_tokens``), if any."""
    answer = parameters.get("max_tokens", parameters.get("max_completion_tokens"))
    return answer if isinstance(answer, int) and not isinstance(answer, bool) and answer > 0 else None


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True, slots=True)
class ModelRequest:
    model: str
    messages: tuple[ChatMessage, ...]
    timeout_s: float
    parameters: Mapping[str, Any] = field(default_factory=dict)  # temperature, max_tokens, seed, ...
    # JSON Schema the answer must follow; sent as an OpenAI ``response_format`` of type json_schema.
    response_schema: Mapping[str, Any] | None = None
    response_schema_name: str = "output"


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
    finish_reason: str  # "stop" | "length" | "content_filter" | ...
    rate_limits: ProviderLimits | None = None  # None: the provider sent no rate-limit headers


class ModelClient(Protocol):
    """One provider endpoint (OpenAI-compatible or otherwise)."""

    provider: str

    async def complete(self, request: ModelRequest) -> ModelResponse: ...

    async def aclose(self) -> None: ...
