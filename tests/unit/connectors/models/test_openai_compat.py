"""OpenAICompatClient against real HTTP servers on loopback: the simulator and small canned servers."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from email.utils import format_datetime
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web
from pydantic import SecretStr

from connectors.http_headers import parse_retry_after
from connectors.models.openai_compat import (
    OpenAICompatClient,
    build_chat_body,
    parse_duration,
    parse_rate_limits,
)
from connectors.simulator.server import RunningSimulator, SimulatorConfig, run_simulator
from streams.core import errors
from streams.core.ports.model import ChatMessage, ModelRequest, ProviderLimits

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SCHEMA = {
    "type": "object",
    "properties": {
        "category": {"type": "string", "enum": ["billing", "outage", "other"]},
        "priority": {"type": "integer", "minimum": 1, "maximum": 5},
        "summary": {"type": "string"},
    },
    "required": ["category", "priority", "summary"],
    "additionalProperties": False,
}
KEY = "sk-test-0123456789abcdef"


def chat(text: str, *, timeout_s: float = 5.0, **fields: Any) -> ModelRequest:
    return ModelRequest(model="test-model", messages=(ChatMessage("user", text),), timeout_s=timeout_s, **fields)


def completion(content: Any = '{"ok": true}', **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "served-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }
    body.update(overrides)
    return body


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with run_simulator(SimulatorConfig(seed=5, retry_after_s=2.5)) as running:
        yield running


@pytest.fixture
async def make_client() -> AsyncIterator[Callable[..., OpenAICompatClient]]:
    clients: list[OpenAICompatClient] = []

    def make(base_url: str, *, api_key: SecretStr | None = None) -> OpenAICompatClient:
        client = OpenAICompatClient("testprov", base_url, api_key=api_key)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """Serve one handler at /v1/chat/completions; returns the base URL."""
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", handler)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}/v1"

    yield start
    for runner in runners:
        await runner.cleanup()


def canned(status: int, body: Any, *, headers: dict[str, str] | None = None) -> Handler:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=status, body=raw, headers=headers, content_type="application/json")

    return handler


# --- success ---------------------------------------------------------------------------------------


async def test_success_against_simulator_returns_schema_shaped_answer(sim, make_client) -> None:
    client = make_client(sim.url)
    response = await client.complete(chat("Customer billing question about invoices", response_schema=SCHEMA))
    answer = orjson.loads(response.text)
    assert set(answer) == {"category", "priority", "summary"}
    assert answer["category"] in {"billing", "outage", "other"}
    assert 1 <= answer["priority"] <= 5
    assert response.model_version == "keel-simulator-1+sim"
    assert response.finish_reason == "stop"
    assert response.tokens_in == len("Customer billing question about invoices") // 4 + 1
    assert response.tokens_out == len(response.text) // 4 + 1
    assert 0 < response.latency_s < 2


async def test_latency_is_measured(sim, make_client) -> None:
    response = await make_client(sim.url).complete(chat("slow please [[sim:latency=150]]"))
    assert 0.15 <= response.latency_s < 1.5


async def test_sends_body_parameters_schema_and_bearer_key(serve, make_client) -> None:
    seen: list[tuple[dict[str, Any], dict[str, str]]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append((orjson.loads(await request.read()), dict(request.headers)))
        return web.json_response(completion())

    client = make_client(await serve(record), api_key=SecretStr(KEY))
    request = ModelRequest(
        model="llama-3",
        messages=(ChatMessage("system", "Be terse."), ChatMessage("user", "Classify: refund")),
        timeout_s=5,
        parameters={"temperature": 0.2, "max_tokens": 64, "seed": 7, "model": "not-this"},
        response_schema=SCHEMA,
        response_schema_name="ticket",
    )
    await client.complete(request)
    body, headers = seen[0]
    assert body == {
        "model": "llama-3",
        "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Classify: refund"}],
        "temperature": 0.2,
        "max_tokens": 64,
        "seed": 7,
        "response_format": {"type": "json_schema", "json_schema": {"name": "ticket", "schema": SCHEMA, "strict": True}},
    }
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert headers["Content-Type"] == "application/json"
    assert KEY not in repr(client)


async def test_no_auth_header_and_no_response_format_without_key_or_schema(serve, make_client) -> None:
    seen: list[tuple[dict[str, Any], dict[str, str]]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append((orjson.loads(await request.read()), dict(request.headers)))
        return web.json_response(completion())

    await make_client(await serve(record)).complete(chat("hello"))
    body, headers = seen[0]
    assert "authorization" not in {name.lower() for name in headers}
    assert "response_format" not in body
    assert body["messages"] == [{"role": "user", "content": "hello"}]


def test_llama_cpp_python_style_puts_the_schema_beside_json_object() -> None:
    body = build_chat_body(chat("x", response_schema=SCHEMA), style="json_object")
    assert body["response_format"] == {"type": "json_object", "schema": SCHEMA}


def test_build_chat_body_keeps_model_and_messages_over_parameters() -> None:
    body = build_chat_body(chat("hi", parameters={"model": "x", "messages": [], "top_p": 0.9}))
    assert body == {"model": "test-model", "messages": [{"role": "user", "content": "hi"}], "top_p": 0.9}


async def test_model_version_usage_and_finish_reason_defaults(serve, make_client) -> None:
    body = completion("partial", usage=None, system_fingerprint="fp_abc")
    body["choices"][0]["finish_reason"] = "length"
    response = await make_client(await serve(canned(200, body))).complete(chat("x"))
    assert (response.text, response.finish_reason) == ("partial", "length")
    assert response.model_version == "served-model+fp_abc"
    assert (response.tokens_in, response.tokens_out) == (0, 0)


@pytest.mark.parametrize("kind", ["malformed", "schema_violation", "truncated"])
async def test_output_faults_are_returned_not_raised(sim, make_client, kind: str) -> None:
    response = await make_client(sim.url).complete(chat(f"report [[sim:{kind}]]", response_schema=SCHEMA))
    assert response.finish_reason == ("length" if kind == "truncated" else "stop")
    if kind == "schema_violation":
        assert orjson.loads(response.text) != {}
    else:
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(response.text)


# --- errors from the simulator -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "error", "status"),
    [
        ("5xx", errors.ProviderServerError, "HTTP 500"),
        ("auth", errors.ProviderAuthError, "HTTP 401"),
        ("context_length", errors.ContextLengthExceeded, "HTTP 400"),
        ("refusal", errors.ModelRefused, "HTTP 200"),
        ("429", errors.ProviderRateLimited, "HTTP 429"),
    ],
)
async def test_simulator_faults_map_to_errors(sim, make_client, kind: str, error: type, status: str) -> None:
    with pytest.raises(error) as caught:
        await make_client(sim.url).complete(chat(f"go [[sim:{kind}]]"))
    assert type(caught.value) is error
    assert str(caught.value).startswith(f"testprov model test-model: {status}: ")
    if kind == "429":
        assert caught.value.retry_after_s == 2.5


@pytest.mark.parametrize("kind", ["timeout", "hang"])
async def test_slow_and_hanging_server_time_out_within_budget(sim, make_client, kind: str) -> None:
    started = time.perf_counter()
    with pytest.raises(errors.ProviderTimeout) as caught:
        await make_client(sim.url).complete(chat(f"go [[sim:{kind}]]", timeout_s=0.3))
    assert 0.25 <= time.perf_counter() - started < 1.0
    assert isinstance(caught.value.__cause__, TimeoutError | httpx.TimeoutException)
    assert "testprov model test-model" in str(caught.value)
    assert caught.value.sent  # the server had the request: it may have served it (usage is then estimated)


async def test_body_trickling_in_is_bounded_by_total_timeout(serve, make_client) -> None:
    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.content_length = 10_000
        await response.prepare(request)
        for _ in range(200):  # each byte well inside httpx's per-read timeout
            await response.write(b" ")
            await asyncio.sleep(0.05)
        return response

    client = make_client(await serve(trickle))
    started = time.perf_counter()
    with pytest.raises(errors.ProviderTimeout):
        await client.complete(chat("x", timeout_s=0.4))
    assert time.perf_counter() - started < 0.9


# --- errors from canned servers ---------------------------------------------------------------------


def openai_error(message: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "code": code}}


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (503, {"error": "overloaded"}, errors.ProviderServerError),
        (502, b"<html>Bad Gateway</html>", errors.ProviderServerError),
        (403, openai_error("forbidden"), errors.ProviderAuthError),
        (404, openai_error("The model `x` does not exist"), errors.ProviderRequestRejected),
        (400, openai_error("'messages' is required"), errors.ProviderRequestRejected),
        (422, openai_error("maximum context length"), errors.ProviderRequestRejected),
        (400, openai_error("too many tokens", code="context_length_exceeded"), errors.ContextLengthExceeded),
        (
            400,
            openai_error("This model's maximum context length is 2048 tokens. However, you requested 3000 tokens"),
            errors.ContextLengthExceeded,
        ),
        (
            400,
            {"error": {"code": 400, "message": "the request exceeds the available context size, try increasing it"}},
            errors.ContextLengthExceeded,
        ),
        (413, {"error": {"message": "prompt tokens exceed context window"}}, errors.ContextLengthExceeded),
        (400, {"error": "input length exceeds the context length"}, errors.ContextLengthExceeded),
        (302, b"", errors.ProviderBadResponse),
    ],
)
async def test_status_classification(serve, make_client, status: int, body: Any, error: type) -> None:
    client = make_client(await serve(canned(status, body)))
    with pytest.raises(errors.ProviderError) as caught:
        await client.complete(chat("x"))
    assert type(caught.value) is error
    assert f"HTTP {status}" in str(caught.value)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": "0.5"}, 0.5),
        ({"retry-after-ms": "1500", "Retry-After": "2"}, 1.5),
        ({}, None),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "-3"}, None),
    ],
)
async def test_rate_limit_retry_after(serve, make_client, headers: dict[str, str], expected: float | None) -> None:
    client = make_client(await serve(canned(429, openai_error("slow down"), headers=headers)))
    with pytest.raises(errors.ProviderRateLimited) as caught:
        await client.complete(chat("x"))
    assert caught.value.retry_after_s == expected
    assert caught.value.retriable


async def test_rate_limit_retry_after_http_date(serve, make_client) -> None:
    when = format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30), usegmt=True)
    client = make_client(await serve(canned(429, openai_error("slow down"), headers={"Retry-After": when})))
    with pytest.raises(errors.ProviderRateLimited) as caught:
        await client.complete(chat("x"))
    assert caught.value.retry_after_s is not None
    assert 27 <= caught.value.retry_after_s <= 30


def test_parse_retry_after_http_date_in_the_past_is_zero() -> None:
    now = dt.datetime(2025, 1, 1, 12, 0, 10, tzinfo=dt.UTC)
    assert parse_retry_after({"Retry-After": "Wed, 01 Jan 2025 12:00:00 GMT"}, now=now) == 0.0
    assert parse_retry_after({"Retry-After": "Wed, 01 Jan 2025 12:01:00 GMT"}, now=now) == 50.0


# --- rate-limit headers -------------------------------------------------------------------------------

OPENAI_HEADERS = {
    "x-ratelimit-limit-requests": "60",
    "x-ratelimit-remaining-requests": "59",
    "x-ratelimit-reset-requests": "1s",
    "X-RateLimit-Limit-Tokens": "150000",
    "X-RateLimit-Remaining-Tokens": "149984",
    "X-RateLimit-Reset-Tokens": "6m0s",
}


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("2m59.56s", 179.56),
        ("1h2m3.5s", 3723.5),
        ("250us", 0.00025),
        ("0s", 0.0),
        ("12", 12.0),
        ("0.5", 0.5),
        (" 3s ", 3.0),
        ("soon", None),
        ("1x", None),
        ("s", None),
        ("-1s", None),
        ("1s garbage", None),
        ("", None),
        (None, None),
    ],
)
def test_reset_durations_in_openai_s_format(value: str | None, seconds: float | None) -> None:
    assert parse_duration(value) == (pytest.approx(seconds) if seconds is not None else None)


def test_rate_limit_headers_become_plain_values() -> None:
    assert parse_rate_limits(OPENAI_HEADERS) == ProviderLimits(
        limit_requests=60,
        remaining_requests=59,
        reset_requests_s=1.0,
        limit_tokens=150000,
        remaining_tokens=149984,
        reset_tokens_s=360.0,
    )
    assert parse_rate_limits({"content-type": "application/json"}) is None
    assert parse_rate_limits({"x-ratelimit-remaining-requests": "many"}) is None
    assert parse_rate_limits({"retry-after-ms": "250"}) == ProviderLimits(retry_after_s=0.25)


async def test_an_answer_carries_its_rate_limit_headers(serve, make_client) -> None:
    client = make_client(await serve(canned(200, completion(), headers=OPENAI_HEADERS)))
    response = await client.complete(chat("x"))
    assert response.rate_limits is not None
    assert (response.rate_limits.remaining_requests, response.rate_limits.reset_tokens_s) == (59, 360.0)
    plain = await make_client(await serve(canned(200, completion()))).complete(chat("x"))
    assert plain.rate_limits is None


async def test_a_429_carries_its_retry_after_and_rate_limit_headers(serve, make_client) -> None:
    headers = {**OPENAI_HEADERS, "x-ratelimit-remaining-requests": "0", "retry-after": "2"}
    client = make_client(await serve(canned(429, openai_error("Rate limit reached"), headers=headers)))
    with pytest.raises(errors.ProviderRateLimited) as caught:
        await client.complete(chat("x"))
    assert caught.value.retry_after_s == 2.0
    assert caught.value.limits is not None
    assert (caught.value.limits.remaining_requests, caught.value.limits.retry_after_s) == (0, 2.0)


async def test_retry_after_on_other_failures_is_carried_too(serve, make_client) -> None:
    client = make_client(await serve(canned(503, {"error": "overloaded"}, headers={"Retry-After": "4"})))
    with pytest.raises(errors.ProviderServerError) as caught:
        await client.complete(chat("x"))
    assert caught.value.limits == ProviderLimits(retry_after_s=4.0)


async def test_a_bad_2xx_body_keeps_the_headers_it_came_with(serve, make_client) -> None:
    client = make_client(await serve(canned(200, b"not json", headers=OPENAI_HEADERS)))
    with pytest.raises(errors.ProviderBadResponse) as caught:
        await client.complete(chat("x"))
    assert caught.value.limits is not None and caught.value.limits.limit_requests == 60


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"this is not json", errors.ProviderBadResponse),
        (b'{"model": "m"}', errors.ProviderBadResponse),
        (orjson.dumps(completion() | {"choices": []}), errors.ProviderBadResponse),
        (orjson.dumps(completion(None)), errors.ProviderBadResponse),
        (orjson.dumps(completion(42)), errors.ProviderBadResponse),
        (b"[1, 2]", errors.ProviderBadResponse),
    ],
)
async def test_bad_2xx_bodies(serve, make_client, body: bytes, error: type) -> None:
    client = make_client(await serve(canned(200, body)))
    with pytest.raises(errors.ProviderError) as caught:
        await client.complete(chat("x"))
    assert type(caught.value) is error
    assert "HTTP 200" in str(caught.value)


async def test_non_json_2xx_keeps_the_decode_error_as_cause(serve, make_client) -> None:
    client = make_client(await serve(canned(200, b"<html>gateway says hi</html>")))
    with pytest.raises(errors.ProviderBadResponse) as caught:
        await client.complete(chat("x"))
    assert isinstance(caught.value.__cause__, orjson.JSONDecodeError)
    assert "<html>gateway says hi</html>" in str(caught.value)


async def test_refusal_field_is_model_refused(serve, make_client) -> None:
    body = completion(None)
    body["choices"][0]["message"]["refusal"] = "I can't help with that."
    client = make_client(await serve(canned(200, body)))
    with pytest.raises(errors.ModelRefused) as caught:
        await client.complete(chat("x"))
    assert not caught.value.retriable


async def test_empty_refusal_with_content_is_a_normal_answer(serve, make_client) -> None:
    body = completion('{"a": 1}')
    body["choices"][0]["message"]["refusal"] = ""
    response = await make_client(await serve(canned(200, body))).complete(chat("x"))
    assert response.text == '{"a": 1}'


async def test_error_message_is_short_and_never_contains_the_key(serve, make_client) -> None:
    body = openai_error(f"Incorrect API key provided: {KEY}. " + "padding " * 600)
    client = make_client(await serve(canned(401, body)), api_key=SecretStr(KEY))
    with pytest.raises(errors.ProviderAuthError) as caught:
        await client.complete(chat("x"))
    message = str(caught.value)
    prefix = "testprov model test-model: HTTP 401: "
    assert message.startswith(prefix)
    assert len(message) - len(prefix) <= 300
    assert KEY not in message
    assert "Incorrect API key provided: ***" in message


# --- connection failures ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_connection_refused(make_client) -> None:
    client = make_client(f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(errors.ProviderConnectionError) as caught:
        await client.complete(chat("x"))
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert caught.value.retriable
    assert not caught.value.sent  # never reached the server: nothing to pay for


@pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
async def test_server_dropping_the_connection(make_client, reset: bool) -> None:
    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if reset:  # SO_LINGER 0: close() sends RST instead of FIN
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()

    server = await asyncio.start_server(drop, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(errors.ProviderConnectionError) as caught:
            await make_client(f"http://127.0.0.1:{port}/v1").complete(chat("x"))
        assert isinstance(caught.value.__cause__, httpx.TransportError)
        assert "testprov model test-model" in str(caught.value)
        assert caught.value.sent  # cut off after the request went out
    finally:
        server.close()
        await server.wait_closed()


async def test_one_client_serves_concurrent_requests(sim, make_client) -> None:
    client = make_client(sim.url)
    responses = await asyncio.gather(*(client.complete(chat(f"ticket {i}")) for i in range(20)))
    assert len({r.text for r in responses}) > 1
    assert sim.stats()["requests_total"] == 20
