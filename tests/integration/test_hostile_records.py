"""Hostile records on the real broker: `keel review serve` loads and follows its topics past every kind
of record it cannot read and applies the decisions behind them; the budget owner and client, and the
alert relay, keep answering and sending past theirs."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from harness import free_port, group_offsets, polled, scrape_metrics
from hostile_records import (
    Hostile,
    budget_reservation,
    hostile,
    hostile_budget_requests,
    hostile_review_decisions,
    hostile_review_items,
)
from review_broker import RESULTS, by_event, outcomes_when, publish_items
from review_samples import decision_with, review_record
from sample_alerts import Sink

from streams.agent.definition import load_agents
from streams.alerts.records import alert_record
from streams.apps import faust_app
from streams.apps.relay.alert_relay import relay
from streams.apps.worker.budget_client import BudgetClient
from streams.apps.worker.budget_owner import BudgetOwner, run_owner
from streams.cli.local_stack import worker_process
from streams.contracts.out_record import OutRecord
from streams.contracts.topics import ALERTS, BUDGET_DECISIONS, BUDGET_REQUESTS, REVIEW_DECISIONS, alert_relay_group
from streams.core import wire
from streams.core.alert import FIRING, Alert
from streams.core.catalogue import Catalogue
from streams.core.ports.clock import SystemClock
from streams.core.settings import Settings
from streams.cost.budget import Decision
from streams.cost.budget_config import Budgets
from streams.cost.budget_records import BudgetCodec
from streams.cost.pricing import Pricing
from streams.kafka.connection import client_config
from streams.kafka.producer import RecordProducer
from streams.kafka.skipped import SkippedRecords
from streams.pipeline.handoff import rerun_pass
from streams.review.records import decision_record

pytestmark = pytest.mark.integration
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def write_raw(
    settings: Settings, topic: str, records: Iterable[Hostile], *, every_partition: bool = False
) -> None:
    """Written as any client could (aiokafka, no Keel code): no value, any key, any headers."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        max_request_size=8 * 1024 * 1024,
        enable_idempotence=True,  # a retried send (a leader not elected yet) writes once
    )
    await producer.start()
    try:
        partitions: list[int | None] = list(range(settings.partitions)) if every_partition else [None]
        sent = [
            await producer.send(topic, h.value, key=_key(h), headers=list(h.headers), partition=p)
            for h in records
            for p in partitions
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def _key(record: Hostile) -> bytes | None:
    """A tombstone has a key (Kafka takes no record with neither)."""
    return b"deleted" if record.key is None and record.value is None else record.key


def fits(records: list[Hostile]) -> list[Hostile]:
    """The test broker takes records up to 1 MB: the huge key is kept under it."""
    return [
        h if h.key is None or len(h.key) < 900_000 else Hostile(h.name, h.value, h.reason, h.key[:900_000], h.headers)
        for h in records
    ]


def skipped(samples: Samples, reader: str) -> dict[str, float]:
    """keel_records_skipped_total of ``reader``, by reason (all topics)."""
    counts: dict[str, float] = {}
    for (name, labels), value in samples.items():
        found = dict(labels)
        if name == "keel_records_skipped_total" and found["reader"] == reader:
            counts[found["reason"]] = counts.get(found["reason"], 0) + value
    return counts


def expected(*written: list[Hostile], times: int = 1) -> dict[str, float]:
    counts: dict[str, float] = {}
    for records in written:
        for h in records:
            if h.reason is not None:
                counts[h.reason] = counts.get(h.reason, 0) + times
    return counts


def shown(samples: Samples) -> str:
    return (
        f"depth {depth(samples)}, feed {skipped(samples, 'review-feed')}, applier {skipped(samples, 'review-applier')}"
    )


def depth(samples: Samples) -> float:
    return samples[("keel_review_queue_depth", frozenset({("agent", "support_triage")}))]


async def test_keel_review_serve_reads_past_hostile_records_and_applies_the_decisions_behind_them(
    settings: Settings, catalogue: Catalogue
) -> None:
    agent = load_agents(settings.agents_dir, catalogue, only=["support_triage"])[0]
    review_topic, decisions = settings.topic("support_triage.review"), settings.topic(REVIEW_DECISIONS)
    bad_items, bad_decisions = (
        fits(hostile_review_items(catalogue, settings, agent)),
        hostile_review_decisions(catalogue, decisions),
    )
    await write_raw(settings, review_topic, bad_items)
    await write_raw(settings, decisions, bad_decisions)
    approved, _waiting = await publish_items(settings, catalogue, ["review", "review"])
    # an item no worker wrote (its payload is not JSON), and a decision on it: refused, not retried for ever
    template = review_record(catalogue, settings, agent)
    unbuildable = {**wire.decode(catalogue, template.value), "event_id": "not-json-1", "request_payload": "{not"}
    schema = catalogue.by_id(wire.read_header(template.value))
    assert schema is not None
    async with RecordProducer(client_config(settings)) as producer:
        await producer.send_all(
            [OutRecord(review_topic, b"not-json-1", wire.encode(schema, unbuildable), template.headers)]
        )
        now_ms = int(time.time() * 1000)
        on = {
            "agent": "support_triage",
            "config_version": agent.config_version,
            "reviewer": "ann",
            "decided_at_ms": now_ms,
        }
        await producer.send_all(
            [
                decision_record(catalogue, decisions, decision_with(decision_id="d-bad", item_id="not-json-1", **on)),
                decision_record(catalogue, decisions, decision_with(decision_id="d-ok", item_id=approved, **on)),
            ]
        )
    port = free_port()
    # items like any other, all of one event: one more in the queue for each pass their headers name
    harmless = len({rerun_pass(h.headers) for h in bad_items if h.reason is None})
    with worker_process(settings, {"KEEL_REVIEW_WEB_PORT": str(port)}, command="review", args=("serve",)) as serve:
        seen = await outcomes_when(settings, catalogue, lambda s: by_event(s[RESULTS]) == {approved: 1})
        assert by_event(seen[RESULTS]) == {approved: 1}  # applied, past the decisions it could not read

        async def scraped() -> Samples:
            return await scrape_metrics(port)

        def read_all(times: int, items: int) -> Callable[[Samples], bool]:
            def done(samples: Samples) -> bool:
                feed = skipped(samples, "review-feed") == expected(bad_items, bad_decisions, times=times)
                applier = skipped(samples, "review-applier") == expected(bad_decisions, times=times)
                return feed and applier and depth(samples) == items

            return done

        # waiting, and the harmless ones' item (the refused decision is the unbuildable item's first: decided)
        samples = await polled(scraped, read_all(1, 1 + harmless), wait_s=30)
        assert read_all(1, 1 + harmless)(samples), shown(samples)
        refused = (
            "keel_review_decisions_refused_total",
            frozenset({("agent", "support_triage"), ("why", "unbuildable_item")}),
        )
        assert samples[refused] == 1

        # and while it follows the topics
        await write_raw(settings, review_topic, bad_items)
        await write_raw(settings, decisions, bad_decisions)
        await publish_items(settings, catalogue, ["review"])
        samples = await polled(scraped, read_all(2, 2 + harmless), wait_s=30)
        assert read_all(2, 2 + harmless)(samples), shown(samples)
        assert serve.poll() is None  # still serving


async def test_the_budget_owner_and_client_answer_past_hostile_records(
    settings: Settings, catalogue: Catalogue, pricing: Pricing, monkeypatch: pytest.MonkeyPatch
) -> None:
    exits: list[BaseException] = []
    monkeypatch.setattr(faust_app, "exit_for_restart", lambda _what, exc: exits.append(exc))  # never this test run
    counted, producer, clock = SkippedRecords(), RecordProducer(client_config(settings)), SystemClock()
    now_ms = clock.now_ms()
    bad_requests = hostile_budget_requests(catalogue, now_ms=now_ms, partitions=settings.partitions)
    bad_decisions = hostile(
        catalogue, "keel.budget-decisions-value", decision_value(catalogue), timestamp=None, text="scope"
    )
    await write_raw(settings, settings.topic(BUDGET_REQUESTS), bad_requests, every_partition=True)
    owner = BudgetOwner(settings, catalogue, producer, clock=clock, skipped=counted)
    client = BudgetClient(
        settings, catalogue, producer, budgets=Budgets({}, {}), pricing=pricing, clock=clock, skipped=counted
    )
    owning = asyncio.create_task(run_owner(owner))
    requests_topic, decisions_topic = settings.topic(BUDGET_REQUESTS), settings.topic(BUDGET_DECISIONS)
    twice = expected(bad_requests, times=2 * settings.partitions)

    async def owner_counts() -> dict[str, float]:
        return {reason: counted.count("budget-owner", requests_topic, reason) for reason in twice}

    try:
        async with asyncio.timeout(90):
            first = await client.ask(budget_reservation(uuid.uuid4().hex, at_ms=clock.now_ms()))
            await write_raw(settings, requests_topic, bad_requests, every_partition=True)
            await write_raw(settings, decisions_topic, bad_decisions, every_partition=True)
            second = await client.ask(budget_reservation(uuid.uuid4().hex, at_ms=clock.now_ms()))
            counts = await polled(owner_counts, lambda counts: counts == twice, wait_s=30)  # the other partitions
    finally:
        await client.stop()
        owning.cancel()
        await asyncio.gather(owning, return_exceptions=True)
        await producer.stop()
    assert first.granted and second.granted and owning.cancelled()
    assert counts == twice
    for reason, count in expected(bad_decisions).items():  # those of the partition it reads
        assert counted.count("budget-client", decisions_topic, reason) == count, reason
    assert exits == []


def decision_value(catalogue: Catalogue) -> dict[str, Any]:
    return wire.decode(catalogue, BudgetCodec(catalogue).encode_decision(Decision("nobody-asked", "agent:x", True)))


def an_alert(summary: str) -> Alert:
    now_ms = int(time.time() * 1000)
    return Alert(
        dedup_key=f"test|{summary}",
        status=FIRING,
        rule="budget",
        severity="warning",
        dimension="agent",
        scope="support_triage",
        observed=0.8,
        threshold=0.8,
        unit="ratio",
        window="day",
        summary=summary,
        runbook_url="docs/runbooks.md#runbook-budget",
        at_ms=now_ms,
        started_at_ms=now_ms,
        agent="support_triage",
    )


async def test_the_alert_relay_sends_past_hostile_records(settings: Settings, catalogue: Catalogue) -> None:
    topic, sink, counted = settings.topic(ALERTS), Sink(), SkippedRecords()
    good = wire.decode(catalogue, alert_record(catalogue, settings, an_alert("template")).value)
    bad = fits(hostile(catalogue, "keel.alerts-value", good, timestamp="at_ms", text="summary"))
    await write_raw(settings, topic, bad, every_partition=True)
    async with RecordProducer(client_config(settings)) as producer:
        await producer.send_all([alert_record(catalogue, settings, an_alert("first"))])
    relaying = asyncio.create_task(relay(settings, catalogue, [sink], asyncio.sleep, skipped=counted))
    try:
        async with asyncio.timeout(60):
            while "first" not in [a.summary for a in sink.alerts]:
                await asyncio.sleep(0.2)
            await write_raw(settings, topic, bad, every_partition=True)
            async with RecordProducer(client_config(settings)) as producer:
                await producer.send_all([alert_record(catalogue, settings, an_alert("second"))])
            while "second" not in [a.summary for a in sink.alerts]:
                await asyncio.sleep(0.2)
        committed, ends = await group_offsets(settings, ALERTS, alert_relay_group(settings), wait_s=30, nonempty=True)
    finally:
        relaying.cancel()
        await asyncio.gather(relaying, return_exceptions=True)
    assert relaying.cancelled()
    assert committed == ends  # every record committed, the ones passed over too
    for reason, count in expected(bad, times=2 * settings.partitions).items():
        assert counted.count("alert-relay", topic, reason) == count, reason
