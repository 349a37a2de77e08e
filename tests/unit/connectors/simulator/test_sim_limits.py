"""The simulator's own rate limits: buckets like OpenAI's, its headers, 429s, the throttle."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from connectors.models.openai_compat import OpenAICompatClient, parse_duration
from connectors.simulator.limits import SimRateLimits, format_duration
from connectors.simulator.server import SimulatorConfig, run_simulator
from streams.core import errors
from streams.core.ports.model import ChatMessage, ModelRequest


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.02, "20ms"), (0.0004, "1ms"), (0.0, "0ms"), (1.0, "1s"), (1.5, "1.5s"), (360.0, "6m0s"), (90.25, "1m30.25s")],
)
def test_durations_are_written_like_openai_s_and_read_back(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds, abs=0.001)  # rounded up to the millisecond


def limits(**config: float) -> SimRateLimits:
    return SimRateLimits.configure(
        requests_per_minute=config.get("rpm", 0.0),
        tokens_per_minute=config.get("tpm", 0.0),
        period_s=config.get("period_s", 60.0),
        now=0.0,
    )


def admit(book: SimRateLimits, now: float, tokens: int = 10) -> Any:
    return book.admit(tokens=tokens, now=now, model="sim-1", retry_after_s=1.0)


def test_requests_per_minute_start_full_and_refill_continuously() -> None:
    book = limits(rpm=60, period_s=3)  # 1 a second, 3 at once
    verdicts = [admit(book, now=10.0) for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert verdicts[0].headers == {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "2",
        "x-ratelimit-reset-requests": "1s",
    }
    refused = verdicts[3]
    assert (refused.unit, refused.headers["retry-after-ms"], refused.headers["retry-after"]) == (
        "requests",
        "1000",
        "1",
    )
    assert "requests per min (RPM): Limit 60, Used 3, Requested 1. Please try again in 1s." in refused.message
    assert admit(book, now=11.0).allowed


def test_tokens_are_charged_before_the_answer() -> None:
    book = limits(tpm=600)  # 10 a second, 600 at once
    assert admit(book, now=0.0, tokens=400).headers["x-ratelimit-remaining-tokens"] == "200"
    refused = admit(book, now=0.0, tokens=300)
    assert not refused.allowed and refused.unit == "tokens" and refused.headers["retry-after-ms"] == "10000"
    assert admit(book, now=10.0, tokens=300).allowed


def test_a_request_larger_than_the_bucket_needs_a_full_one() -> None:
    book = limits(tpm=600)
    assert admit(book, now=0.0, tokens=5000).allowed
    assert not admit(book, now=30.0, tokens=5000).allowed


def test_a_throttle_refuses_everything_saying_nothing_remains_until_it_ends() -> None:
    book = limits()
    book.throttle(4.0, now=10.0)
    refused = admit(book, now=11.0)
    assert not refused.allowed
    assert refused.headers == {
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "3s",
        "retry-after": "1",
    }
    assert admit(book, now=14.0).allowed and admit(book, now=14.0).headers == {}


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def chat_body(text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}], **extra}


async def test_the_simulator_enforces_its_limits_with_openai_s_headers(http: httpx.AsyncClient) -> None:
    async with run_simulator(SimulatorConfig(requests_per_minute=120, rate_limit_period_s=1)) as sim:
        answers = [await http.post(f"{sim.url}/chat/completions", json=chat_body()) for _ in range(3)]
        root = sim.url.removesuffix("/v1")
        times = (await http.get(f"{root}/sim/requests")).json()["times_s"]
        stats = sim.stats()
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[0].headers["x-ratelimit-remaining-requests"] == "1"
    assert answers[0].headers["x-ratelimit-limit-requests"] == "120"
    error = answers[2].json()["error"]
    assert (error["code"], error["type"]) == ("rate_limit_exceeded", "requests")
    assert int(answers[2].headers["retry-after-ms"]) > 0
    assert stats["rate_limited"] == 1 and stats["requests_total"] == 3
    assert len(times) == 3 and times == sorted(times)


async def test_keel_s_client_reads_what_the_simulator_says() -> None:
    async with run_simulator(SimulatorConfig(requests_per_minute=60, tokens_per_minute=10_000)) as sim:
        client = OpenAICompatClient("sim", sim.url)
        request = ModelRequest("m", (ChatMessage("user", "x" * 400),), timeout_s=5, parameters={"max_tokens": 50})
        try:
            response = await client.complete(request)
        finally:
            await client.aclose()
    said = response.rate_limits
    assert said is not None
    assert (said.limit_requests, said.remaining_requests, said.reset_requests_s) == (60, 59, 1.0)
    assert (said.limit_tokens, said.remaining_tokens) == (10_000, 10_000 - (101 + 50))


async def test_throttling_the_simulator_answers_429s_until_it_ends(http: httpx.AsyncClient) -> None:
    async with run_simulator(SimulatorConfig(retry_after_s=0.1)) as sim:
        root = sim.url.removesuffix("/v1")
        assert (await http.post(f"{root}/sim/throttle", json={"secs": 1})).status_code == 400
        assert (await http.post(f"{root}/sim/throttle", json={"seconds": 0.5})).json() == {"throttled_for_s": 0.5}
        client = OpenAICompatClient("sim", sim.url)
        try:
            with pytest.raises(errors.ProviderRateLimited) as caught:
                await client.complete(ModelRequest("m", (ChatMessage("user", "hi"),), timeout_s=5))
            await asyncio.sleep(0.55)
            later = await http.post(f"{sim.url}/chat/completions", json=chat_body())
        finally:
            await client.aclose()
    said = caught.value.limits
    assert said is not None and said.remaining_requests == 0 and said.retry_after_s == 0.1
    assert said.reset_requests_s is not None and 0.3 < said.reset_requests_s <= 0.5
    assert later.status_code == 200 and "x-ratelimit-remaining-requests" not in later.headers
