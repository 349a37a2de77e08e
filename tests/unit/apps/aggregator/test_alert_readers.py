"""The aggregator's readers (usage aggregation, alert forwarder and evaluator) and the alert relay over
consumer stand-ins: records Keel did not write are counted and passed over, the next good one is
taken, and a relay that cannot go on exits 70."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError
from fakes import FakeClock
from hostile_records import NOT_UTF8, Hostile, hostile
from kafka_stand_in import StandInConsumer
from prometheus_client import Counter
from sample_alerts import Sink

from streams.alerts.engine import AlertEngine
from streams.alerts.observation import Observation
from streams.alerts.records import alert_record
from streams.alerts.rules import load_rules
from streams.apps.aggregator.alert_evaluator import AlertEvaluator
from streams.apps.aggregator.alert_stream import FORWARDER, Forwarder
from streams.apps.aggregator.usage_stream import read_usage
from streams.apps.relay import alert_relay
from streams.contracts.out_record import OutRecord
from streams.contracts.topics import ALERTS, AUDIT, USAGE, alert_observations_topic
from streams.core import wire
from streams.core.alert import FIRING, Alert
from streams.core.catalogue import Catalogue
from streams.core.errors import DecodeError
from streams.core.settings import Settings
from streams.kafka.skipped import SkippedRecords

SETTINGS = Settings(namespace="t1", partitions=1)
USAGE_TP = TopicPartition(SETTINGS.topic(USAGE), 0)
AUDIT_TP = TopicPartition(SETTINGS.topic(AUDIT), 0)
NOW = FakeClock().now_ms()
USAGE_VALUE: dict[str, Any] = {
    "event_id": "e-1",
    "agent": "support_triage",
    "agent_version": "1",
    "tenant": "acme",
    "provider": "sim",
    "model": "m",
    "model_version": "sim-1",
    "attempt": 1,
    "purpose": "initial",
    "tokens_in": 100,
    "tokens_out": 20,
    "latency_ms": 250.0,
    "outcome": "ok",
    "at": NOW,
    "cost_usd": 0.001,
    "price_version": "v1",
}


def usage(catalogue: Catalogue, **changes: Any) -> bytes:
    return wire.encode(catalogue.by_subject("keel.usage-value"), {**USAGE_VALUE, **changes})


def hostile_usage(catalogue: Catalogue) -> list[Hostile]:
    unexpected = [  # decodes, with numbers no Keel worker writes
        ("a latency that is not a number", usage(catalogue, latency_ms=float("nan"))),
        ("an endless cost", usage(catalogue, cost_usd=float("inf"))),
        ("a negative cost", usage(catalogue, cost_usd=-1.0)),
    ]
    return [
        *hostile(catalogue, "keel.usage-value", USAGE_VALUE, timestamp="at", text="agent"),
        *(Hostile(name, value, "unexpected_value") for name, value in unexpected),
    ]


class Producer:
    def __init__(self) -> None:
        self.written: list[OutRecord] = []

    async def send_all(self, records: list[OutRecord]) -> list[tuple[str, int, int]]:
        self.written += records
        return [(r.topic, r.partition or 0, 0) for r in records]

    async def flush(self) -> None:
        return None


def engine() -> AlertEngine:
    return AlertEngine(load_rules(SETTINGS.alert_rules_file), runbook=lambda anchor: f"docs/runbooks.md#{anchor}")


async def until_read(consumer: StandInConsumer, run: Callable[[], Awaitable[None]], *tps: TopicPartition) -> None:
    """Run a reader until it has read (and committed) everything written to ``tps``, then stop it."""
    running = asyncio.create_task(run())
    try:
        async with asyncio.timeout(10):
            while any(consumer.committed(tp) != len(consumer.logs[tp]) for tp in tps):
                await consumer.idle()
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    assert running.cancelled(), running


def counted(skipped: SkippedRecords, reader: str, topic: str, written: list[Hostile]) -> dict[str, tuple[float, int]]:
    """Per reason: (what was counted, what was written)."""
    reasons = {h.reason for h in written if h.reason is not None}
    return {r: (skipped.count(reader, topic, r), sum(h.reason == r for h in written)) for r in reasons}


def test_the_aggregation_reads_only_usage_records_with_numbers_keel_writes(catalogue: Catalogue) -> None:
    tokens = Hostile("negative tokens", usage(catalogue, tokens_in=-5), "unexpected_value")  # the windows add them
    for bad in [*hostile_usage(catalogue), tokens]:
        message = SimpleNamespace(topic=USAGE_TP.topic, partition=0, offset=3, timestamp=NOW / 1000, value=bad.value)
        if bad.reason is None:
            assert read_usage(catalogue, message).agent == "support_triage"
            continue
        with pytest.raises(DecodeError) as caught:
            read_usage(catalogue, message)
        assert caught.value.reason == bad.reason, bad.name


async def test_the_forwarder_forwards_only_what_it_can_read(catalogue: Catalogue) -> None:
    consumer, producer, skipped = StandInConsumer(), Producer(), SkippedRecords()
    forwarded = Counter("forwarded", "test", ["source"], registry=None)
    forwarder = Forwarder(SETTINGS, catalogue, engine(), producer, forwarded, skipped=skipped)  # type: ignore[arg-type]
    consumer.assign([USAGE_TP, AUDIT_TP])
    bad = hostile_usage(catalogue)
    consumer.write_all(USAGE_TP, bad)
    consumer.write(AUDIT_TP, b"\x00\x00\x00\x00\x03 not an audit record")  # id 3: keel.audit-value
    consumer.fail(KafkaConnectionError())
    consumer.write(USAGE_TP, usage(catalogue, event_id="e-good"))
    await until_read(consumer, lambda: forwarder.run(consumer=consumer), USAGE_TP, AUDIT_TP)  # type: ignore[arg-type]
    observed = [Observation.from_bytes(r.value) for r in producer.written]
    harmless = sum(h.reason is None for h in bad)
    assert sorted({o.event_id for o in observed}) == (["e-1"] if harmless else []) + ["e-good"]
    assert all(o.latency_ms == 250.0 and o.cost_usd == 0.001 for o in observed)
    assert all(seen == written for seen, written in counted(skipped, FORWARDER, USAGE_TP.topic, bad).values())
    assert skipped.count(FORWARDER, AUDIT_TP.topic, "malformed_avro") == 1


def observation(**changes: Any) -> Observation:
    fields: dict[str, Any] = {
        "source": "usage",
        "event_id": "e-1",
        "at_ms": NOW,
        "partition": 0,
        "offset": 1,
        "agent": "support_triage",
        "model": "sim/m",
        "tenant": "acme",
        "outcome": "ok",
        "reason": None,
        "latency_ms": 250.0,
        "cost_usd": 0.001,
    }
    return Observation(**{**fields, **changes})


async def test_the_evaluator_passes_over_observations_it_cannot_read(catalogue: Catalogue) -> None:
    topic = alert_observations_topic(SETTINGS)
    tp = TopicPartition(topic, 0)
    consumer, skipped, alerts = StandInConsumer(), SkippedRecords(), engine()
    evaluator = AlertEvaluator(SETTINGS, catalogue, alerts, Producer(), FakeClock(), skipped=skipped)  # type: ignore[arg-type]
    evaluator.live.add(0)  # taken over already
    good = observation().to_bytes()
    bad = [
        (NOT_UTF8, good),  # a key that is not UTF-8
        (b"agent=support_triage", b"not json"),
        (b"agent=support_triage", b"[2, 1, 2]"),  # another format version
        (b"agent=support_triage", b"[1, 2, 3]"),  # too few fields
        (b"agent=support_triage", b"{}"),
        (b"agent=support_triage", orjson.dumps([1, *[None] * 12])),
        (b"agent=support_triage", observation(latency_ms=None).to_bytes()),  # what NaN became in JSON
        (b"agent=support_triage", observation(at_ms="soon").to_bytes()),
        (b"agent=support_triage", observation(source="other").to_bytes()),
    ]
    consumer.assign([tp])
    for key, value in bad:
        consumer.write(tp, value, key=key)
    consumer.write(tp, observation(event_id="e-good", offset=9).to_bytes(), key=b"agent=support_triage")
    running = asyncio.create_task(evaluator.run(consumer=consumer))  # type: ignore[arg-type]
    try:
        async with asyncio.timeout(10):
            await consumer.idle()
            await consumer.idle()  # a batch read, evaluated, then nothing more
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    assert running.cancelled(), running
    assert skipped.count("alert-evaluator", topic, "unexpected_value") == len(bad)
    assert alerts.scopes["agent=support_triage"].applied == {("usage", 0): 9}  # the good one only


def alert(**changes: Any) -> Alert:
    fields: dict[str, Any] = {
        "dedup_key": "budget|agent=support_triage|day",
        "status": FIRING,
        "rule": "budget",
        "severity": "warning",
        "dimension": "agent",
        "scope": "support_triage",
        "observed": 0.8,
        "threshold": 0.8,
        "unit": "ratio",
        "window": "day",
        "summary": "s",
        "runbook_url": "docs/runbooks.md#runbook-budget",
        "at_ms": NOW,
        "started_at_ms": NOW,
        "agent": "support_triage",
        "sample_event_ids": (),
        "details": {},
    }
    return Alert(**{**fields, **changes})


async def test_the_relay_passes_over_what_is_not_an_alert_and_sends_the_next(catalogue: Catalogue) -> None:
    tp = TopicPartition(SETTINGS.topic(ALERTS), 0)
    consumer, sink, skipped = StandInConsumer(), Sink(), SkippedRecords()
    good = wire.decode(catalogue, alert_record(catalogue, SETTINGS, alert()).value)
    bad = hostile(catalogue, "keel.alerts-value", good, timestamp="at_ms", text="summary")
    consumer.subscribe([tp.topic])
    consumer.write_all(tp, bad)
    consumer.fail(KafkaConnectionError())
    consumer.write(tp, alert_record(catalogue, SETTINGS, alert(summary="the good one")).value)

    async def relay() -> None:
        await alert_relay.relay(SETTINGS, catalogue, [sink], asyncio.sleep, skipped=skipped, consumer=consumer)  # type: ignore[arg-type]

    await until_read(consumer, relay, tp)
    assert [a.summary for a in sink.alerts] == ["s"] * sum(h.reason is None for h in bad) + ["the good one"]
    assert all(seen == written for seen, written in counted(skipped, "alert-relay", tp.topic, bad).values())


async def test_a_relay_that_cannot_go_on_exits_70(catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch) -> None:
    consumer, exits = StandInConsumer(), []
    consumer.fail(TopicAuthorizationFailedError())
    monkeypatch.setattr(alert_relay, "group_consumer", lambda *_, **__: consumer)
    monkeypatch.setattr(alert_relay, "exit_for_restart", lambda what, exc: exits.append((what, type(exc))))
    async with asyncio.timeout(10):
        await alert_relay.run_relay(SETTINGS, catalogue, [Sink()])
    assert exits == [("the alert relay failed", TopicAuthorizationFailedError)]
