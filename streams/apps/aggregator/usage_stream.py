"""The aggregation stream: a faust app of its own (`keel aggregate`) over ``keel.usage`` into windowed
faust tables, and the in-stream alert rules over ``keel.usage`` and ``keel.audit``
(streams/apps/aggregator/alert_stream.py). It runs apart from the agent workers, in its own consumer group, so that
counting never slows down deciding; run one or more (up to the partition count) next to them.

Two tables, each keyed by ``p<partition>|<dimension>=<value>`` for the dimensions agent, model and
tenant (streams/cost/usage_windows.py): 1-minute tumbling windows and 1-hour windows hopping every 5 minutes,
placed by the usage record's timestamp (the attempt's start, which Keel sets when it writes the
record). Each worker aggregates the usage partitions it owns; the tables' changelogs are compacted
topics that a restarted worker recovers from, and that ``keel usage`` reads and adds up. A record
redelivered after a crash is not counted twice (each window remembers the offsets it counted), and a
record later than the declared lateness is counted apart instead of changing a window long closed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, NoReturn

import faust
from faust.serializers import codecs
from prometheus_client import CollectorRegistry, Counter, generate_latest

from streams.alerts.rules import AlertRules, load_rules
from streams.apps import faust_app
from streams.apps.aggregator.alert_stream import add_alerting
from streams.apps.aggregator.canary_judge import add_canary_judge
from streams.apps.registry.client_mode import load_schemas
from streams.contracts.topics import USAGE, topic_plan, usage_app_id
from streams.core import wire
from streams.core.catalogue import Catalogue
from streams.core.errors import DecodeError, UnexpectedValue
from streams.core.settings import Settings
from streams.cost.usage_windows import WINDOWS, Lateness, UsageRecord, UsageStats, WindowSpec
from streams.kafka.admin import ensure_topics
from streams.kafka.connection import client_config
from streams.kafka.skipped import SkippedRecords

log = logging.getLogger(__name__)
CODEC = "keel-usage-stats"
READER = "usage-aggregation"


class _StatsCodec(codecs.Codec):
    def _dumps(self, obj: Any) -> bytes:
        return bytes(obj.to_bytes())

    def _loads(self, s: bytes) -> Any:
        return UsageStats.from_bytes(s)


def create_usage_app(settings: Settings, catalogue: Catalogue, rules: AlertRules) -> tuple[faust.App, UsageMetrics]:
    """The aggregator's faust app: one agent and its two tables, and the alert rules' agent and task."""
    codecs.register(CODEC, _StatsCodec())
    app = faust_app.new_app(settings, app_id=usage_app_id(settings), web_port=settings.aggregator_web_port)
    metrics = UsageMetrics()
    tables = [_table(app, settings, spec) for spec in WINDOWS]
    topic = app.topic(settings.topic(USAGE), key_serializer="raw", value_serializer="raw")
    lateness = Lateness(allowed_ms=int(settings.usage_lateness_s * 1000))

    faust_app.serve_metrics(app, lambda: generate_latest(metrics.registry))
    add_alerting(app, settings, catalogue, rules, metrics.registry, skipped=metrics.records_skipped)
    add_canary_judge(app, settings, catalogue, metrics.records_skipped)

    @app.agent(topic, name="keel.usage-aggregation")
    async def aggregate(stream: Any) -> None:
        try:
            async for event in stream.events():
                count(event.message)
        except Exception as exc:  # a bug: faust would commit past the record and start the agent again
            faust_app.exit_for_restart("the usage aggregation failed", exc)

    def count(message: Any) -> None:
        try:
            record = read_usage(catalogue, message)
        except DecodeError as exc:  # not Keel's record: nothing to count, and nothing to stop for
            metrics.skipped.labels("undecodable").inc()
            metrics.records_skipped.skip(READER, message, exc)
            return
        if lateness.too_late(record):
            metrics.skipped.labels("late").inc()
            return
        metrics.counted.inc()
        delta = UsageStats.of(record)
        for table in tables:
            for key in record.table_keys():
                table[key] += delta

    faust_app.exit_on_crash(app)
    return app, metrics


def read_usage(catalogue: Catalogue, message: Any) -> UsageRecord:
    """A faust message of ``keel.usage`` (its timestamp in seconds) as the windows count it. Raises
    ``DecodeError``: not a usage record, or ``UnexpectedValue``: numbers no Keel record has."""
    value = wire.decode(catalogue, message.value or b"", subject="keel.usage-value")
    record = UsageRecord.from_value(
        value, partition=message.partition, offset=message.offset, at_ms=int(message.timestamp * 1000)
    )
    problem = record.problem()
    if problem is not None:
        raise UnexpectedValue(problem)
    return record


class UsageMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.counted = Counter(
            "keel_usage_records_counted", "Usage records added to the windows", registry=self.registry
        )
        self.skipped = Counter(
            "keel_usage_records_skipped",
            "Usage records not counted: late (past the declared lateness) or undecodable",
            ["why"],
            registry=self.registry,
        )
        self.records_skipped = SkippedRecords()  # by every reader of the aggregator
        self.records_skipped.register(self.registry)


def run_aggregator(settings: Settings) -> NoReturn:
    catalogue, agents = load_schemas(settings)  # it writes alerts: with a Schema Registry, under its ids
    rules = load_rules(settings.alert_rules_file)
    asyncio.run(ensure_topics(client_config(settings), topic_plan(agents, settings)))
    app, _ = create_usage_app(settings, catalogue, rules)
    faust_app.run(app, settings, what="usage aggregator")


def _table(app: faust.App, settings: Settings, spec: WindowSpec) -> Any:
    table = app.Table(  # its changelog topic is created with the others (streams/contracts/topics.py)
        spec.table,
        default=UsageStats,
        partitions=settings.partitions,
        schema=faust.Schema(key_serializer="json", value_serializer=CODEC),
    )
    if spec.step_s == spec.size_s:
        return table.tumbling(spec.size_s, expires=spec.expires).relative_to_stream()
    return table.hopping(spec.size_s, spec.step_s, expires=spec.expires).relative_to_stream()
