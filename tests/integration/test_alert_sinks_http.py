"""The Slack and webhook sinks against real HTTP receivers on loopback: retries, Retry-After, refusals."""

from __future__ import annotations

import asyncio
import time
from functools import partial

from harness import free_port
from receivers import Answer, receiver
from sample_alerts import agent_alert

from connectors.sinks.alert_sinks import HttpAlertSink, pagerduty_event, slack_message
from streams.alerts.delivery import Backoff, deliver
from streams.core.ports.alert_sink import Delivered, Rejected, RetryLater

ALERT = agent_alert(
    rule="circuit_open",
    severity="error",
    scope="support_triage",
    observed=3,
    threshold=1,
    unit="count",
    window="5m",
    summary="support_triage: 3 events ended with every model's circuit open in 5m (threshold 1)",
    runbook_url="docs/runbooks.md#runbook-circuit-open",
    at_ms=1_800_000_000_000,
    agent="support_triage",
    sample_event_ids=("e-1",),
)
FAST = Backoff(base_s=0.05, max_s=0.2)


def slack(url: str, timeout_s: float = 5) -> HttpAlertSink:
    return HttpAlertSink("slack", url, slack_message, timeout_s=timeout_s)


def webhook(url: str) -> HttpAlertSink:
    return HttpAlertSink("webhook", url, partial(pagerduty_event, routing_key="rk"), timeout_s=5)


async def test_a_503_is_retried_and_the_same_message_arrives() -> None:
    async with receiver(Answer(503), Answer(503)) as hook:
        sink = slack(hook.url)
        try:
            assert await deliver(sink, ALERT, FAST, asyncio.sleep) == Delivered()
        finally:
            await sink.aclose()
    assert [r.status for r in hook.received] == [503, 503, 200]
    first, _, last = (r.body for r in hook.received)
    assert first == last and last["text"].startswith(":rotating_light: FIRING [error] circuit_open")
    assert hook.received[-1].headers["Content-Type"] == "application/json"


async def test_a_429_is_retried_after_the_time_it_asks_for() -> None:
    async with receiver(Answer(429, {"Retry-After": "1"}), accept=Answer(202)) as hook:
        sink = webhook(hook.url)
        try:
            assert await deliver(sink, ALERT, FAST, asyncio.sleep) == Delivered()
        finally:
            await sink.aclose()
    first, second = hook.received
    assert second.at - first.at >= 0.95  # not FAST's 0.05 s
    assert second.body["event_action"] == "trigger" and second.body["routing_key"] == "rk"
    assert second.body["dedup_key"] == ALERT.dedup_key and second.body["payload"]["severity"] == "error"


async def test_a_400_is_refused_once_and_not_sent_again() -> None:
    async with receiver(Answer(400)) as hook:
        sink = slack(hook.url)
        try:
            result = await deliver(sink, ALERT, FAST, asyncio.sleep)
        finally:
            await sink.aclose()
    assert result == Rejected("HTTP 400: no") and len(hook.received) == 1


async def test_a_sink_that_is_down_gets_the_alert_once_it_is_back() -> None:
    port = free_port()
    sink = slack(f"http://127.0.0.1:{port}/hook")
    attempts: list[float] = []
    started = asyncio.Event()

    async def sleep_then_come_up(seconds: float) -> None:
        attempts.append(seconds)
        if len(attempts) == 3:
            started.set()
        await asyncio.sleep(seconds)

    async def serve_later() -> list[object]:
        await started.wait()
        async with receiver(port=port) as hook:
            return await hook.wait_for(1, wait_s=10)

    try:
        delivered, bodies = await asyncio.gather(deliver(sink, ALERT, FAST, sleep_then_come_up), serve_later())
    finally:
        await sink.aclose()
    assert delivered == Delivered() and len(bodies) == 1
    assert len(attempts) >= 3  # connection refused until the receiver listened


async def test_a_receiver_that_does_not_answer_in_time_is_tried_again() -> None:
    async with receiver(Answer(200, delay_s=2)) as hook:
        sink = slack(hook.url, timeout_s=0.5)
        try:
            first = await sink.deliver(ALERT)
            started = time.monotonic()
            second = await sink.deliver(ALERT)
        finally:
            await sink.aclose()
    assert first == RetryLater("no answer in time")
    assert second == Delivered() and time.monotonic() - started < 1
