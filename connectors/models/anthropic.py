"""A ``ModelClient`` for the Anthropic Messages API (``POST /v1/messages``), spoken over httpx.

Keel keeps its own timeout, retry and error classification in charge, so this is the wire protocol and
not the SDK. As in ``openai_compat``, the HTTP call is the only I/O: building the body (``system`` apart,
tool calls as ``tool_use`` blocks, tool answers as ``tool_result`` blocks, the answer's JSON Schema as
``output_config.format``), reading the ``anthropic-ratelimit-*`` and ``retry-after`` headers, and turning
a status or a body into a ``ModelResponse`` or a ``ProviderError`` are pure functions below.

``stop_reason``: ``end_turn`` and ``stop_sequence`` are a finished answer, ``max_tokens`` and
``model_context_window_exceeded`` a cut-off one (finish ``length``), ``tool_use`` asks for tools,
``refusal`` is ``ModelRefused``. 529 (overloaded) is a server error like 500. Usage counts the prompt
as ``input_tokens`` plus the tokens read from and written to the prompt cache; Keel's ``tokens_in`` is
their sum, with the cache parts beside it for pricing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import httpx
import orjson
from pydantic import SecretStr

from connectors.http_headers import parse_retry_after, whole
from connectors.models.http_errors import Answer, count, post_within, redact, status_error
from streams.core.errors import ModelRefused, ProviderBadResponse, ProviderError
from streams.core.ports.model import ChatMessage, ModelRequest, ModelResponse, ProviderLimits, ToolCall

API_VERSION = "2023-06-01"
# The Messages API requires max_tokens; a chain entry that sets none (nor max_completion_tokens) gets this.
DEFAULT_MAX_TOKENS = 1024
_CONTEXT_TOO_LONG = ("prompt is too long", "context window", "context length")
_STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
}


class AnthropicClient:
    """One Messages API endpoint; ``base_url`` includes ``/v1``. One shared connection pool."""

    def __init__(
        self,
        provider: str,
        base_url: str,
        *,
        api_key: SecretStr | None = None,
        max_connections: int = 256,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.provider = provider
        self._url = base_url.rstrip("/") + "/messages"
        self._api_key = api_key
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._http = httpx.AsyncClient(transport=transport, limits=limits)

    def __repr__(self) -> str:
        return f"AnthropicClient(provider={self.provider!r}, url={self._url!r})"

    async def complete(self, request: ModelRequest) -> ModelResponse:
        secret = self._api_key.get_secret_value() if self._api_key else None
        response, latency_s = await post_within(
            self._http,
            self._url,
            content=orjson.dumps(build_messages_body(request)),
            headers=self._headers(secret),
            timeout_s=request.timeout_s,
            describe=lambda detail: f"{self.provider} model {request.model}: {redact(detail, secret)}",
        )
        limits = parse_rate_limits(response.headers)
        if not 200 <= response.status_code < 300:
            raise error_for_status(
                self.provider, request.model, response.status_code, response.text, limits=limits, secret=secret
            )
        return parse_message(
            self.provider, request, response.content, latency_s=latency_s, secret=secret, limits=limits
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    @staticmethod
    def _headers(secret: str | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json", "anthropic-version": API_VERSION}
        if secret is not None:
            headers["x-api-key"] = secret
        return headers


def build_messages_body(request: ModelRequest) -> dict[str, Any]:
    """The JSON body of a Messages request: parameters first, so they cannot replace the rest.

    System messages become the top-level ``system``; consecutive messages of one role are one turn
    (the tool answers to one assistant turn go back together, in one user turn)."""
    body: dict[str, Any] = dict(request.parameters)
    if "max_tokens" not in body:
        body["max_tokens"] = body.pop("max_completion_tokens", DEFAULT_MAX_TOKENS)
    body["model"] = request.model
    system = "\n\n".join(m.content for m in request.messages if m.role == "system")
    if system:
        body["system"] = system
    turns: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message)
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    body["messages"] = turns
    if request.tools:
        body["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": dict(t.parameters)} for t in request.tools
        ]
    if request.response_schema is not None:
        body["output_config"] = {"format": {"type": "json_schema", "schema": dict(request.response_schema)}}
    return body


def _blocks(message: ChatMessage) -> list[dict[str, Any]]:
    if message.role == "tool":
        result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
        result["content"] = message.content
        if message.is_error:
            result["is_error"] = True
        return [result]
    blocks: list[dict[str, Any]] = [{"type": "text", "text": message.content}] if message.content else []
    for call in message.tool_calls:
        blocks.append({"type": "tool_use", "id": call.call_id, "name": call.name, "input": _tool_input(call)})
    return blocks


def _tool_input(call: ToolCall) -> dict[str, Any]:
    """A call's arguments as the object ``tool_use`` takes. Anthropic's own calls always parse; a call
    another vendor's model wrote earlier in the loop may not, and goes back as the text it was."""
    try:
        value = orjson.loads(call.arguments)
    except orjson.JSONDecodeError:
        return {"arguments": call.arguments}
    return value if isinstance(value, dict) else {"arguments": call.arguments}


_NO_LIMITS = ProviderLimits()


def parse_rate_limits(headers: Mapping[str, str], *, now: dt.datetime | None = None) -> ProviderLimits | None:
    """``anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}`` (the reset an RFC 3339 time;
    the ``tokens`` group is the most restrictive limit in effect, else the ``input-tokens`` one is read)
    and ``retry-after``, as plain values; None when the answer has none of them."""
    lowered = {key.lower(): value for key, value in headers.items()}
    now = now or dt.datetime.now(dt.UTC)
    tokens = "tokens" if any(k.startswith("anthropic-ratelimit-tokens-") for k in lowered) else "input-tokens"

    def header(group: str, field: str) -> str | None:
        return lowered.get(f"anthropic-ratelimit-{group}-{field}")

    limits = ProviderLimits(
        limit_requests=whole(header("requests", "limit")),
        remaining_requests=whole(header("requests", "remaining")),
        reset_requests_s=_seconds_until(header("requests", "reset"), now),
        limit_tokens=whole(header(tokens, "limit")),
        remaining_tokens=whole(header(tokens, "remaining")),
        reset_tokens_s=_seconds_until(header(tokens, "reset"), now),
        retry_after_s=parse_retry_after(lowered, now=now),
    )
    return None if limits == _NO_LIMITS else limits


def _seconds_until(value: str | None, now: dt.datetime) -> float | None:
    if value is None:
        return None
    try:
        when = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - now).total_seconds())


def error_for_status(
    provider: str,
    model: str,
    status: int,
    body_text: str,
    *,
    limits: ProviderLimits | None = None,
    secret: str | None = None,
) -> ProviderError:
    """The error a non-2xx answer means (its ``error.type`` is in the message, with the body)."""
    return status_error(provider, model, status, body_text, too_long=_CONTEXT_TOO_LONG, limits=limits, secret=secret)


def parse_message(
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
    blocks = body.get("content") if isinstance(body, dict) else None
    if not isinstance(body, dict) or body.get("type") != "message" or not isinstance(blocks, list):
        raise fail(ProviderBadResponse, "not a message with a content list")
    stop_reason = body.get("stop_reason")
    if stop_reason == "refusal":
        raise fail(ModelRefused, "the model refused")
    finish_reason = _STOP_REASONS.get(stop_reason) if isinstance(stop_reason, str) else None
    if finish_reason is None:
        raise fail(ProviderBadResponse, f"stop_reason {stop_reason!r} is not one Keel handles")
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in blocks:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "tool_use":
            call = _tool_call(block)
            if call is None:
                raise fail(ProviderBadResponse, "a tool_use block is malformed")
            calls.append(call)
        elif kind not in ("thinking", "redacted_thinking"):  # reasoning is not the answer
            raise fail(ProviderBadResponse, f"content block of type {kind!r} is not one Keel handles")
    if finish_reason == "tool_calls" and not calls:
        raise fail(ProviderBadResponse, "stop_reason tool_use without a tool_use block")
    usage = body.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    cache_read = count(usage.get("cache_read_input_tokens"))
    cache_write = count(usage.get("cache_creation_input_tokens"))
    model = body.get("model")
    return ModelResponse(
        text="".join(texts),
        model_version=model if isinstance(model, str) and model else request.model,
        tokens_in=count(usage.get("input_tokens")) + cache_read + cache_write,
        tokens_out=count(usage.get("output_tokens")),
        latency_s=latency_s,
        finish_reason=finish_reason,
        rate_limits=limits,
        tool_calls=tuple(calls),
        tokens_cache_read=cache_read,
        tokens_cache_write=cache_write,
    )


def _tool_call(block: Mapping[str, Any]) -> ToolCall | None:
    call_id, name, arguments = block.get("id"), block.get("name"), block.get("input")
    if not (isinstance(call_id, str) and call_id and isinstance(name, str) and name and isinstance(arguments, dict)):
        return None
    return ToolCall(call_id=call_id, name=name, arguments=orjson.dumps(arguments).decode())
