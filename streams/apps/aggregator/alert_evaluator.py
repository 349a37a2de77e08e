"""The alert evaluator inside `keel aggregate`: observation partitions in, alerts out.

Aggregators share the observation partitions through a consumer group; each evaluates the scopes of
the partitions it holds (a scope lives in one partition). The evaluator keeps no state of its own that
outlives it. Partitions it is given (at start, after a rebalance) stay paused until its main loop takes
them over, between two batches, so nothing is evaluated half taken over. Taking over, it:

- reads their observations of the rules' lookback again (the topic keeps 25 hours), which rebuilds the
  windows, the failure streaks and the samples as they were; it commits no offsets, because its state
  is always the log's last lookback;
- reads ``keel.alerts`` back and takes over the incidents still firing there, so an incident open
  before a restart is not fired a second time; it resolves once its rule has read clear for its
  clear-after period.

Only then does it evaluate them: every ``KEEL_ALERT_EVAL_INTERVAL_S``, writing alerts with Keel's own
producer and waiting until the broker has them. Why read the alerts back rather than keep incidents in
a faust table: what was *sent* is then the truth (a crash between deciding and writing errs towards
sending), and the windows behind them are rebuilt from the log instead of being written to a changelog
on every observation.

An observation it cannot read (the topic is open to anyone who may write to Keel's topics) is counted
in ``keel_records_skipped_total`` and passed over: read back at every take-over, one would otherwise
stop every evaluator that takes its partition over, again and again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from streams.alerts.engine import AlertEngine
from streams.alerts.observation import Observation, partition_of, scope_key
from streams.alerts.records import alert_record
from streams.contracts.topics import alert_evaluator_group, alert_observations_topic
from streams.core.alert import Alert
from streams.core.catalogue import Catalogue
from streams.core.errors import UnexpectedValue
from streams.core.ports.clock import Clock
from streams.core.settings import Settings
from streams.kafka.alert_log import open_incidents, read_alerts
from streams.kafka.consumers import group_consumer, until_read
from streams.kafka.producer import RecordProducer, until_written
from streams.kafka.skipped import SkippedRecords

log = logging.getLogger(__name__)
READER = "alert-evaluator"


class AlertEvaluator:
    def __init__(
        self,
        settings: Settings,
        catalogue: Catalogue,
        engine: AlertEngine,
        producer: RecordProducer,
        clock: Clock,
        *,
        on_alert: Callable[[Alert], None] | None = None,
        skipped: SkippedRecords | None = None,
    ) -> None:
        self._settings = settings
        self._skipped = skipped or SkippedRecords()
        self._catalogue = catalogue
        self._engine = engine
        self._producer = producer
        self._clock = clock
        self._on_alert = on_alert  # called with each alert written (metrics)
        self._topic = alert_observations_topic(settings)
        self.live: set[int] = set()  # partitions caught up with: evaluated
        self._catching_up: dict[TopicPartition, int] = {}  # the end offset each must reach first
        self._assigned: set[TopicPartition] = set()  # given by the group, paused, not taken over yet
        self._refused_logged = 0
        self._rebalances = 0

    async def run(self, *, consumer: AIOKafkaConsumer | None = None) -> None:
        """Evaluate until cancelled. ``consumer``: one to use instead of the group's own (tests)."""
        consumer = consumer or group_consumer(self._settings, alert_evaluator_group(self._settings))
        consumer.subscribe([self._topic], listener=_Rebalance(self, consumer))
        await consumer.start()
        try:
            next_at = self._clock.monotonic()
            while True:
                await self._take_over(consumer)
                batch = await until_read(
                    lambda: consumer.getmany(timeout_ms=200, max_records=20_000), what="alert observations"
                )
                for tp, messages in batch.items():
                    if tp in self._catching_up or tp.partition in self.live:  # not before its take-over
                        for message in messages:
                            self._observe(message)
                await self._check_caught_up(consumer)
                if self._clock.monotonic() >= next_at:
                    await self.evaluate()
                    next_at = self._clock.monotonic() + self._settings.alert_eval_interval_s
        finally:
            await consumer.stop()

    async def evaluate(self) -> None:
        alerts = self._engine.evaluate(self._clock.now_ms(), partitions=self.live)
        if self._engine.refused > self._refused_logged:
            log.warning(
                "alert evaluator: %d observations of new scopes refused (too many scopes)", self._engine.refused
            )
            self._refused_logged = self._engine.refused
        if not alerts:
            return
        records = [alert_record(self._catalogue, self._settings, alert) for alert in alerts]
        await until_written(lambda: self._producer.send_all(records), what="alerts")
        for alert in alerts:
            log.warning("alert %s: %s (%s)", alert.status, alert.dedup_key, alert.summary)
            if self._on_alert is not None:
                self._on_alert(alert)

    def assigned(self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]) -> None:
        """Held back until the main loop takes them over: nothing is read or evaluated meanwhile."""
        consumer.pause(*assigned)
        self._assigned |= assigned
        self._rebalances += 1

    async def revoked(self, revoked: set[TopicPartition]) -> None:
        self._rebalances += 1
        partitions = {tp.partition for tp in revoked}
        self._engine.forget(partitions)
        self.live -= partitions
        self._assigned -= revoked
        for tp in revoked:
            self._catching_up.pop(tp, None)
        await self._producer.flush()  # the next owner reads back what was sent

    async def _take_over(self, consumer: AIOKafkaConsumer) -> None:
        """Read back the open incidents and the lookback's observations of newly assigned partitions."""
        if not self._assigned:
            return
        rebalances, tps = self._rebalances, list(self._assigned)
        now_ms = self._clock.now_ms()
        incidents = open_incidents(await read_alerts(self._settings, self._catalogue))
        ends = await until_read(lambda: consumer.end_offsets(tps), what="the observations' ends")
        since = dict.fromkeys(tps, now_ms - self._engine.rules.lookback_s * 1000)
        starts = await until_read(lambda: consumer.offsets_for_times(since), what="the observations' lookback")
        if rebalances != self._rebalances:  # partitions moved meanwhile: take over afresh, with what they sent
            return
        taking, self._assigned = self._assigned, set()
        for tp in taking:
            start = starts.get(tp)
            consumer.seek(tp, start.offset if start is not None else ends[tp])
            self._catching_up[tp] = ends[tp]
        consumer.resume(*taking)
        partitions = {tp.partition for tp in taking}
        taken = 0
        for alert in incidents:
            partition = partition_of(scope_key(alert.dimension, alert.scope), self._settings.partitions)
            if partition in partitions:
                taken += self._engine.restore(alert, now_ms=now_ms, partition=partition)
        log.warning("alert evaluator: took over partitions %s with %d open incident(s)", sorted(partitions), taken)

    def _observe(self, message: Any) -> None:
        try:
            key = (message.key or b"").decode()
            obs = Observation.from_bytes(message.value or b"")
        except (ValueError, TypeError) as exc:  # orjson's and UTF-8's errors are ValueErrors
            self._skipped.skip(READER, message, UnexpectedValue(f"not an observation: {exc!r}"))
            return
        self._engine.observe(key, obs, partition=message.partition)

    async def _check_caught_up(self, consumer: AIOKafkaConsumer) -> None:
        for tp, end in list(self._catching_up.items()):
            if tp in consumer.assignment() and await consumer.position(tp) >= end:
                self._catching_up.pop(tp, None)
                self.live.add(tp.partition)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, evaluator: AlertEvaluator, consumer: AIOKafkaConsumer) -> None:
        self._evaluator = evaluator
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._evaluator.revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._evaluator.assigned(self._consumer, assigned)
