"""In-stream alerts in `keel aggregate`: a forwarder over ``keel.usage`` and ``keel.audit`` that writes
observations keyed by scope, and the evaluator (streams/apps/aggregator/alert_evaluator.py) that turns them into alerts.
Both are tasks of the aggregator's faust app with consumers of their own. A record either cannot read
(not Keel's, or with values no Keel record has) is counted in ``keel_records_skipped_total`` and
passed over; a transient Kafka error is read through; anything else ends the aggregator (exit 70).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter

from streams.alerts.engine import AlertEngine
from streams.alerts.observation import Observation, from_audit, from_usage, partition_of
from streams.alerts.records import runbook_url
from streams.alerts.rules import AlertRules
from streams.apps.aggregator.alert_evaluator import AlertEvaluator
from streams.apps.faust_app import exit_for_restart
from streams.contracts.out_record import OutRecord
from streams.contracts.topics import AUDIT, USAGE, alert_forwarder_group, alert_observations_topic
from streams.core import wire
from streams.core.alert import Alert
from streams.core.catalogue import Catalogue
from streams.core.errors import DecodeError, UnexpectedValue
from streams.core.ports.clock import SystemClock
from streams.core.settings import Settings
from streams.kafka.connection import client_config
from streams.kafka.consumers import group_consumer, until_read
from streams.kafka.producer import RecordProducer, until_written
from streams.kafka.skipped import SkippedRecords

log = logging.getLogger(__name__)
FORWARDER = "alert-forwarder"


def add_alerting(
    app: faust.App,
    settings: Settings,
    catalogue: Catalogue,
    rules: AlertRules,
    registry: CollectorRegistry,
    *,
    skipped: SkippedRecords | None = None,
) -> None:
    """The forwarder and evaluator tasks; nothing when the rules file has no rules. ``skipped``: the
    aggregator's count of records passed over."""
    if not rules.rules:
        log.warning("no alert rules in %s: in-stream alerts are off", settings.alert_rules_file)
        return
    engine = AlertEngine(rules, runbook=lambda anchor: runbook_url(settings, anchor))
    sent = Counter("keel_alerts", "Alerts written to keel.alerts", ["rule", "status"], registry=registry)
    forwarded = Counter(
        "keel_alert_observations", "Usage and audit records forwarded to the alert rules", ["source"], registry=registry
    )
    producer = RecordProducer(client_config(settings), request_timeout_s=settings.produce_timeout_s)
    skipped = skipped or SkippedRecords()
    forwarder = Forwarder(settings, catalogue, engine, producer, forwarded, skipped=skipped)

    def count(alert: Alert) -> None:
        sent.labels(alert.rule, alert.status).inc()

    evaluator = AlertEvaluator(settings, catalogue, engine, producer, SystemClock(), on_alert=count, skipped=skipped)

    async def crash_only(what: str, job: Callable[[], Awaitable[None]]) -> None:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # crash-only: a supervisor restarts the aggregator, which takes over again
            exit_for_restart(f"the alert {what} failed", exc)

    @app.task  # type: ignore[untyped-decorator]  # faust is untyped
    async def forward() -> None:
        await crash_only("forwarder", forwarder.run)

    @app.task  # type: ignore[untyped-decorator]  # faust is untyped
    async def evaluate() -> None:
        await crash_only("evaluator", evaluator.run)

    async def stop_producer(_sender: Any, **_: Any) -> None:
        await producer.stop()

    app.on_before_shutdown.connect(stop_producer)  # type: ignore[arg-type]  # mode wants a positional-only sender


class Forwarder:
    """Keel's own consumer, not a faust agent: under load, faust's stream stopped taking new records
    after a rebalance (seen in tests/integration/test_alert_stream.py), so results never reached the
    rules and incidents never resolved. A source offset is committed only after its observations are
    acknowledged; whatever a rebalance cuts short is forwarded again by the next owner and recognised
    by its source offset (streams/alerts/engine.py)."""

    def __init__(
        self,
        settings: Settings,
        catalogue: Catalogue,
        engine: AlertEngine,
        producer: RecordProducer,
        forwarded: Counter,
        *,
        skipped: SkippedRecords | None = None,
    ) -> None:
        self._settings = settings
        self._skipped = skipped or SkippedRecords()
        self._catalogue = catalogue
        self._engine = engine
        self._producer = producer
        self._forwarded = forwarded
        self._usage_topic = settings.topic(USAGE)
        self._target = alert_observations_topic(settings)

    async def run(self, *, consumer: AIOKafkaConsumer | None = None) -> None:
        """Forward until cancelled. ``consumer``: one to use instead of the group's own (tests)."""
        consumer = consumer or group_consumer(self._settings, alert_forwarder_group(self._settings))
        consumer.subscribe([self._usage_topic, self._settings.topic(AUDIT)])
        await consumer.start()
        try:
            while True:
                batch = await until_read(
                    lambda: consumer.getmany(timeout_ms=500, max_records=5_000), what="usage and audit records"
                )
                if not batch:
                    continue
                await self._forward([m for messages in batch.values() for m in messages])
                try:
                    await consumer.commit({tp: messages[-1].offset + 1 for tp, messages in batch.items()})
                except KafkaError as exc:  # moved meanwhile: the next owner forwards them again
                    log.info("alert forwarder: commit refused (%r)", exc)
        finally:
            await consumer.stop()

    async def _forward(self, messages: list[Any]) -> None:
        records = [record for message in messages for record in self._observations(message)]
        await until_written(lambda: self._producer.send_all(records), what="alert observations")

    def _observations(self, message: Any) -> list[OutRecord]:
        try:
            obs = read_observation(self._catalogue, message, usage=message.topic == self._usage_topic)
        except DecodeError as exc:  # not Keel's record: the rules have nothing to look at
            self._skipped.skip(FORWARDER, message, exc)
            return []
        keys = self._engine.scope_keys(obs)
        if keys:
            self._forwarded.labels(obs.source).inc(len(keys))
        value, partitions = obs.to_bytes(), self._settings.partitions
        return [OutRecord(self._target, k.encode(), value, (), partition=partition_of(k, partitions)) for k in keys]


def read_observation(catalogue: Catalogue, message: Any, *, usage: bool) -> Observation:
    """The observation of a usage or audit record. Raises ``DecodeError`` for a record that is not
    Keel's, ``UnexpectedValue`` for one whose values no Keel record has."""
    subject = "keel.usage-value" if usage else "keel.audit-value"
    value = wire.decode(catalogue, message.value or b"", subject=subject)
    read = from_usage if usage else from_audit
    obs = read(value, partition=message.partition, offset=message.offset, at_ms=message.timestamp)  # aiokafka: ms
    problem = obs.problem()
    if problem is not None:
        raise UnexpectedValue(problem)
    return obs
