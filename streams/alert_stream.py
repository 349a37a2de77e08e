"""In-stream alerts in `keel aggregate`: a forwarder over ``keel.usage`` and ``keel.audit`` that writes
observations keyed by scope, and the evaluator (streams/alert_evaluator.py) that turns them into alerts.
Both are tasks of the aggregator's faust app with consumers of their own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter

from streams import wire
from streams.alert_engine import AlertEngine
from streams.alert_evaluator import AlertEvaluator
from streams.alert_observation import Observation, from_audit, from_usage, partition_of
from streams.alert_rules import AlertRules
from streams.alerts import Alert, runbook_url
from streams.catalogue import Catalogue
from streams.clock import SystemClock
from streams.consumers import group_consumer
from streams.emit import OutRecord
from streams.errors import DecodeError
from streams.faust_app import exit_for_restart
from streams.producer import RecordProducer, until_written
from streams.settings import Settings
from streams.topics import AUDIT, USAGE, alert_forwarder_group, alert_observations_topic

log = logging.getLogger(__name__)


def add_alerting(
    app: faust.App, settings: Settings, catalogue: Catalogue, rules: AlertRules, registry: CollectorRegistry
) -> None:
    """The forwarder and evaluator tasks; nothing when the rules file has no rules."""
    if not rules.rules:
        log.warning("no alert rules in %s: in-stream alerts are off", settings.alert_rules_file)
        return
    engine = AlertEngine(rules, runbook=lambda anchor: runbook_url(settings, anchor))
    sent = Counter("keel_alerts", "Alerts written to keel.alerts", ["rule", "status"], registry=registry)
    forwarded = Counter(
        "keel_alert_observations", "Usage and audit records forwarded to the alert rules", ["source"], registry=registry
    )
    producer = RecordProducer(settings.bootstrap_servers, request_timeout_s=settings.produce_timeout_s)
    forwarder = Forwarder(settings, catalogue, engine, producer, forwarded)

    def count(alert: Alert) -> None:
        sent.labels(alert.rule, alert.status).inc()

    evaluator = AlertEvaluator(settings, catalogue, engine, producer, SystemClock(), on_alert=count)

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
    by its source offset (streams/alert_engine.py)."""

    def __init__(
        self,
        settings: Settings,
        catalogue: Catalogue,
        engine: AlertEngine,
        producer: RecordProducer,
        forwarded: Counter,
    ) -> None:
        self._settings = settings
        self._catalogue = catalogue
        self._engine = engine
        self._producer = producer
        self._forwarded = forwarded
        self._usage_topic = settings.topic(USAGE)
        self._target = alert_observations_topic(settings)

    async def run(self) -> None:
        consumer = group_consumer(self._settings, alert_forwarder_group(self._settings))
        consumer.subscribe([self._usage_topic, self._settings.topic(AUDIT)])
        await consumer.start()
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=5_000)
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
        obs = read_observation(self._catalogue, message, usage=message.topic == self._usage_topic)
        if obs is None:
            return []
        keys = self._engine.scope_keys(obs)
        if keys:
            self._forwarded.labels(obs.source).inc(len(keys))
        value, partitions = obs.to_bytes(), self._settings.partitions
        return [OutRecord(self._target, k.encode(), value, (), partition=partition_of(k, partitions)) for k in keys]


def read_observation(catalogue: Catalogue, message: Any, *, usage: bool) -> Observation | None:
    """The observation of a usage or audit record; None for a record that is not Keel's."""
    subject = "keel.usage-value" if usage else "keel.audit-value"
    try:
        value = wire.decode(catalogue, message.value or b"", subject=subject)
    except DecodeError as exc:
        log.warning("%s/%s/%s skipped by the alert rules: %s", message.topic, message.partition, message.offset, exc)
        return None
    read = from_usage if usage else from_audit
    return read(value, partition=message.partition, offset=message.offset, at_ms=message.timestamp)  # aiokafka: ms
