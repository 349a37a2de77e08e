"""A ``ModelClient`` for OpenAI-compatible chat completions: llama.cpp server, vLLM, Ollama, OpenAI.

The HTTP call is the only I/O here. Building the body, reading ``Retry-After`` and the
``x-ratelimit-*`` headers, and turning a status or a body into a ``ModelResponse`` or a
``streams.core.errors.ProviderError`` (both carrying what the headers said) are pure functions below.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any, Literal

import httpx
import orjson
from pydantic import SecretStr

from connectors.http_headers import non_negative, parse_retry_after, whole
from connectors.models.http_errors import Answer, count, post_within, redact, status_error
from streams.core.errors import (
    ModelRefused,
    ProviderBadResponse,
    ProviderError,
)
from streams.core.ports.model import ChatMessage, ModelRequest, ModelResponse, ProviderLimits, ToolCall

# How servers say "the prompt does not fit": OpenAI's error code, vLLM, llama.cpp (old and new), Ollama.
_CONTEXT_TOO_LONG = (
    "context_length_exceeded",
    "maximum context length",
    "exceed context window",
    "exceeds context window",
    "exceeds the available context size",
    "exceed_context_size",
    "context size has been exceeded",
    "context length",
)


class OpenAICompatClient:
    """One OpenAI-compatible endpoint; ``base_url`` includes ``/v1``. One shared connection pool."""

    def __init__(
        self,
        provider: str,
        base_url: str,
        *,
        api_key: SecretStr | None = None,
        max_connections: int = 256,
        response_format: ResponseFormatStyle = "json_schema",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.provider = provider
        self._style: ResponseFormatStyle = response_format
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._api_key = api_key
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._http = httpx.AsyncClient(transport=transport, limits=limits)

    def __repr__(self) -> str:
        return f"OpenAICompatClient(provider={self.provider!r}, url={self._url!r})"

    async def complete(self, request: ModelRequest) -> ModelResponse:
        content = orjson.dumps(build_chat_body(request, style=self._style))
        response, latency_s = await post_within(
            self._http,
            self._url,
            content=content,
            headers=self._headers(),
            timeout_s=request.timeout_s,
            describe=lambda detail: self._describe(request, detail),
        )
        secret = self._api_key.get_secret_value() if self._api_key else None
        if not 200 <= response.status_code < 300:
            raise error_for_status(
                self.provider,
                request.model,
                response.status_code,
                response.headers,
                response.text,
                secret=secret,
            )
        limits = parse_rate_limits(response.headers)
        return parse_completion(
            self.provider, request, response.content, latency_s=latency_s, secret=secret, limits=limits
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key is not None:
            headers["Authorization"] = f"Bearer {self._api_key.get_secret_value()}"
        return headers

    def _describe(self, request: ModelRequest, detail: str) -> str:
        secret = self._api_key.get_secret_value() if self._api_key else None
        return f"{self.provider} model {request.model}: {redact(detail, secret)}"


ResponseFormatStyle = Literal["json_schema", "json_object"]


def build_chat_body(request: ModelRequest, *, style: ResponseFormatStyle = "json_schema") -> dict[str, Any]:
    """The JSON body of a chat completion request: parameters first, so they cannot replace the rest.

    ``style`` says how the server takes a JSON Schema: OpenAI, vLLM, Ollama and llama.cpp's own server
    take ``json_schema``; llama-cpp-python's server takes ``json_object`` with a ``schema`` beside it.
    """
    body: dict[str, Any] = dict(request.parameters)
    body["model"] = request.model
    body["messages"] = [_wire_message(m) for m in request.messages]
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": dict(t.parameters)},
            }
            for t in request.tools
        ]
    if request.response_schema is not None and style == "json_object":
        body["response_format"] = {"type": "json_object", "schema": dict(request.response_schema)}
    elif request.response_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": request.response_schema_name,
                "schema": dict(request.response_schema),
                "strict": True,
            },
        }
    return body


def _wire_message(message: ChatMessage) -> dict[str, Any]:
    """One message as OpenAI takes it: an assistant's tool calls, a tool's answer to one of them."""
    if message.role == "assistant" and message.tool_calls:
        calls = [
            {"id": c.call_id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
        return {"role": "assistant", "content": message.content or None, "tool_calls": calls}
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    return {"role": message.role, "content": message.content}


_NO_LIMITS = ProviderLimits()
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def parse_rate_limits(headers: Mapping[str, str], *, now: dt.datetime | None = None) -> ProviderLimits | None:
    """OpenAI's ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` and ``Retry-After`` /
    ``retry-after-ms``, as plain values; None when the answer has none of them (or none readable)."""
    lowered = {key.lower(): value for key, value in headers.items()}
    limits = ProviderLimits(
        limit_requests=whole(lowered.get("x-ratelimit-limit-requests")),
        remaining_requests=whole(lowered.get("x-ratelimit-remaining-requests")),
        reset_requests_s=parse_duration(lowered.get("x-ratelimit-reset-requests")),
        limit_tokens=whole(lowered.get("x-ratelimit-limit-tokens")),
        remaining_tokens=whole(lowered.get("x-ratelimit-remaining-tokens")),
        reset_tokens_s=parse_duration(lowered.get("x-ratelimit-reset-tokens")),
        retry_after_s=parse_retry_after(lowered, now=now),
    )
    return None if limits == _NO_LIMITS else limits


def parse_duration(value: str | None) -> float | None:
    """Seconds in OpenAI's reset format (``1s``, ``6m0s``, ``20ms``, ``1h2m3.5s``: Go durations) or a
    plain number of seconds; None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    seconds = non_negative(text)
    if seconds is not None:
        return seconds
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return None
    return sum(float(number) * _UNIT_S[unit] for number, unit in parts)


def error_for_status(
    provider: str,
    model: str,
    status: int,
    headers: Mapping[str, str],
    body_text: str,
    *,
    secret: str | None = None,
) -> ProviderError:
    """The error a non-2xx answer means; its message names provider, model, status and the body."""
    limits = parse_rate_limits(headers)
    return status_error(provider, model, status, body_text, too_long=_CONTEXT_TOO_LONG, limits=limits, secret=secret)


def parse_completion(
    provider: str,
    request: ModelRequest,
    content: bytes,
    *,
    latency_s: float,
    secret: str | None = None,
    limits: ProviderLimits | None = None,
) -> ModelResponse:
    """The ``ModelResponse`` in a 2xx body, or the error that body means; both carry ``limits``."""

    answer = Answer(provider, request.model, content, secret, limits)
    fail, body = answer.fail, answer.json()
    choices = body.get("choices") if isinstance(body, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices else None
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(choice, dict) or not isinstance(message, dict):
        raise fail(ProviderBadResponse, "no choices[0].message")
    finish_reason = choice.get("finish_reason")
    refusal = message.get("refusal")
    if finish_reason == "content_filter" or (isinstance(refusal, str) and refusal.strip()):
        raise fail(ModelRefused, "the model refused")
    tool_calls = _tool_calls(message.get("tool_calls"))
    if tool_calls is None:
        raise fail(ProviderBadResponse, "choices[0].message.tool_calls holds a malformed function call")
    text = message.get("content")
    if text is None and tool_calls:
        text = ""
    if not isinstance(text, str):
        raise fail(ProviderBadResponse, "choices[0].message.content is not a string")
    if tool_calls:
        finish_reason = "tool_calls"
    usage = body.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    details = usage.get("prompt_tokens_details")
    cached = count(details.get("cached_tokens")) if isinstance(details, dict) else 0
    return ModelResponse(
        text=text,
        model_version=_model_version(body, request.model),
        tokens_in=count(usage.get("prompt_tokens")),
        tokens_out=count(usage.get("completion_tokens")),
        latency_s=latency_s,
        finish_reason=finish_reason if isinstance(finish_reason, str) else "unknown",
        rate_limits=limits,
        tool_calls=tool_calls,
        tokens_cache_read=cached,
    )


def _tool_calls(value: Any) -> tuple[ToolCall, ...] | None:
    """The function calls in ``message.tool_calls`` (absent or null: none); None when one is malformed."""
    if value is None:
        return ()
    if not isinstance(value, list):
        return None
    calls: list[ToolCall] = []
    for entry in value:
        function = entry.get("function") if isinstance(entry, dict) else None
        if not isinstance(entry, dict) or entry.get("type", "function") != "function" or not isinstance(function, dict):
            return None
        call_id, name, arguments = entry.get("id"), function.get("name"), function.get("arguments")
        if not (isinstance(call_id, str) and call_id and isinstance(name, str) and name and isinstance(arguments, str)):
            return None
        calls.append(ToolCall(call_id=call_id, name=name, arguments=arguments))
    return tuple(calls)


def _model_version(body: Mapping[str, Any], requested: str) -> str:
    model = body.get("model")
    version = model if isinstance(model, str) and model else requested
    fingerprint = body.get("system_fingerprint")
    return f"{version}+{fingerprint}" if isinstance(fingerprint, str) and fingerprint else version
