"""In-stream alerts in `keel aggregate`: a faust agent over ``keel.usage`` and ``keel.audit`` that forwards
observations keyed by scope, and the evaluator (streams/alert_evaluator.py) that turns them into alerts.

The faust agent sends through faust's producer, which faust flushes before it commits the source
offsets: a forwarded observation is never lost, and one forwarded again after a crash is recognised by
its source offset (streams/alert_engine.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
from prometheus_client import CollectorRegistry, Counter

from streams import wire
from streams.alert_engine import AlertEngine
from streams.alert_evaluator import AlertEvaluator
from streams.alert_observation import Observation, from_audit, from_usage, partition_of
from streams.alert_rules import AlertRules
from streams.alerts import Alert, runbook_url
from streams.catalogue import Catalogue
from streams.clock import SystemClock
from streams.errors import DecodeError
from streams.faust_app import exit_for_restart
from streams.producer import RecordProducer
from streams.settings import Settings
from streams.topics import AUDIT, USAGE, alert_observations_topic

log = logging.getLogger(__name__)


def add_alerting(
    app: faust.App, settings: Settings, catalogue: Catalogue, rules: AlertRules, registry: CollectorRegistry
) -> None:
    """The forwarding agent and the evaluator task; nothing when the rules file has no rules."""
    if not rules.rules:
        log.warning("no alert rules in %s: in-stream alerts are off", settings.alert_rules_file)
        return
    engine = AlertEngine(rules, runbook=lambda anchor: runbook_url(settings, anchor))
    sent = Counter("keel_alerts", "Alerts written to keel.alerts", ["rule", "status"], registry=registry)
    forwarded = Counter(
        "keel_alert_observations", "Usage and audit records forwarded to the alert rules", ["source"], registry=registry
    )
    _forwarder(app, settings, catalogue, engine, forwarded)
    producer = RecordProducer(settings.bootstrap_servers, request_timeout_s=settings.produce_timeout_s)

    def count(alert: Alert) -> None:
        sent.labels(alert.rule, alert.status).inc()

    evaluator = AlertEvaluator(settings, catalogue, engine, producer, SystemClock(), on_alert=count)

    @app.task  # type: ignore[untyped-decorator]  # faust is untyped
    async def evaluate() -> None:
        try:
            await evaluator.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # crash-only: a supervisor restarts the aggregator, which takes over again
            exit_for_restart("the alert evaluator failed", exc)

    async def stop_producer(_sender: Any, **_: Any) -> None:
        await producer.stop()

    app.on_before_shutdown.connect(stop_producer)  # type: ignore[arg-type]  # mode wants a positional-only sender


def _forwarder(
    app: faust.App, settings: Settings, catalogue: Catalogue, engine: AlertEngine, forwarded: Counter
) -> None:
    usage_topic = settings.topic(USAGE)
    sources = app.topic(usage_topic, settings.topic(AUDIT), key_serializer="raw", value_serializer="raw")
    target = app.topic(alert_observations_topic(settings), key_serializer="raw", value_serializer="raw")

    @app.agent(sources, name="keel.alert-observations")
    async def forward(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            obs = read_observation(catalogue, message, usage=message.topic == usage_topic)
            if obs is None:
                continue
            for key in engine.scope_keys(obs):
                partition = partition_of(key, settings.partitions)
                await target.send(key=key.encode(), value=obs.to_bytes(), partition=partition)
                forwarded.labels(obs.source).inc()


def read_observation(catalogue: Catalogue, message: Any, *, usage: bool) -> Observation | None:
    """The observation of a usage or audit record; None for a record that is not Keel's."""
    subject = "keel.usage-value" if usage else "keel.audit-value"
    try:
        value = wire.decode(catalogue, message.value or b"", subject=subject)
    except DecodeError as exc:
        log.warning("%s/%s/%s skipped by the alert rules: %s", message.topic, message.partition, message.offset, exc)
        return None
    read = from_usage if usage else from_audit
    return read(value, partition=message.partition, offset=message.offset, at_ms=int(message.timestamp * 1000))
