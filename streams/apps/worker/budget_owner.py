"""The owner of budget scopes: one decider per scope, so that concurrent calls cannot race a budget.

Every worker runs an owner. The owners form their own consumer group on ``keel.budget.requests``,
which is keyed by scope: each scope's requests land in one partition, and the group gives each
partition to exactly one owner, which applies them one at a time, in order (``streams.cost.budget.apply``).
After each batch it writes the changed ledgers to the compacted ``<app id>-budget-ledger`` topic (same
partition number) together with its answers, waits for the broker, and only then commits the request
offsets. An owner that takes over a partition loads its ledgers from that topic and reads on from the
committed offset; a ledger remembers the last request offset it applied, so a request read twice
changes nothing. While a partition moves, its requests wait (and are asked again, streams/apps/worker/budget_client.py).

A request Keel did not write (not a request, values no request has, an answer to a partition that
does not exist) is counted in ``keel_records_skipped_total`` and passed over; so is a ledger snapshot it
cannot read (the scope's ledger starts empty). A Kafka error starts the owner again; any other error
ends the worker (crash-only: streams/apps/worker/shell.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from streams.alerts.records import RUNBOOK_ANCHORS, alert_record, dedup_key, runbook_url
from streams.contracts.out_record import OutRecord
from streams.contracts.topics import BUDGET_DECISIONS, BUDGET_REQUESTS, budget_ledger_topic, budget_owner_group
from streams.core.alert import Alert, Dimension, Severity
from streams.core.catalogue import Catalogue
from streams.core.errors import DecodeError, UnexpectedValue
from streams.core.ports.clock import Clock
from streams.core.settings import Settings
from streams.cost.budget import KINDS, BudgetAlert, BudgetLimits, BudgetRequest, Ledger, apply, limits_in, period_of
from streams.cost.budget_records import BudgetCodec, decode_ledger, encode_ledger
from streams.kafka.connection import client_config
from streams.kafka.consumers import group_consumer, read_to_end, until_read
from streams.kafka.producer import RecordProducer, until_written
from streams.kafka.skipped import SkippedRecords

log = logging.getLogger(__name__)
READER = "budget-owner"
Remaining = tuple[str, str, str, float]  # scope, period kind, unit (usd | tokens), what is left


def budget_alert(settings: Settings, alert: BudgetAlert, *, now_ms: int) -> Alert:
    """One incident per budget and period (its dedup key): each higher level updates it, as a repeated
    trigger does in PagerDuty, and the end of the period or a raise resolves it."""
    kind, _, name = alert.scope.partition(":")
    dimension: Dimension = "tenant" if kind == "tenant" else "agent"
    severity: Severity = "critical" if alert.level >= 1.0 else ("warning" if alert.level > 0.5 else "info")
    shown = f"{alert.limit:g} USD" if alert.unit == "usd" else f"{alert.limit:g} tokens"
    verb = "reached" if alert.status == "firing" else "is back under"
    return Alert(
        dedup_key=f"{dedup_key('budget', dimension, name)}|{alert.period}",
        status=alert.status,
        rule="budget",
        severity=severity,
        dimension=dimension,
        scope=name,
        observed=alert.observed,
        threshold=alert.level,
        unit="ratio",
        window=alert.period,
        summary=f"budget of {alert.scope} {verb} {alert.level:.0%} of its {shown} for {alert.period}",
        runbook_url=runbook_url(settings, RUNBOOK_ANCHORS["budget"]),
        at_ms=now_ms,
        started_at_ms=now_ms,
        agent=name if dimension == "agent" else None,
        details={"limit": shown, "level": f"{alert.level:.0%}"},
    )


class BudgetOwner:
    def __init__(
        self,
        settings: Settings,
        catalogue: Catalogue,
        producer: RecordProducer,
        *,
        clock: Clock,
        skipped: SkippedRecords | None = None,
    ) -> None:
        self._settings, self._producer, self._clock = settings, producer, clock
        self._skipped = skipped or SkippedRecords()
        self._catalogue, self._codec = catalogue, BudgetCodec(catalogue)
        self._requests, self._decisions = settings.topic(BUDGET_REQUESTS), settings.topic(BUDGET_DECISIONS)
        self._ledger_topic = budget_ledger_topic(settings)
        self._ledgers: dict[str, Ledger] = {}  # of the scopes in the partitions owned now
        self._partition_of: dict[str, int] = {}
        self._limits: dict[str, BudgetLimits] = {}  # as the latest request declared them (for the metrics)
        self._done: dict[TopicPartition, int] = {}  # the next offset to read, once a batch is written
        self._owned: set[int] = set()  # request partitions assigned and loaded
        self.applying = asyncio.Lock()

    async def run(self, *, consumer: AIOKafkaConsumer | None = None) -> None:
        """Decide until cancelled. ``consumer``: one to use instead of the group's own (tests)."""
        consumer = consumer or group_consumer(self._settings, budget_owner_group(self._settings))
        await consumer.start()
        try:
            consumer.subscribe([self._requests], listener=_Listener(self, consumer))
            while True:
                batch = await until_read(lambda: consumer.getmany(timeout_ms=1000), what="budget requests")
                if batch:
                    async with self.applying:  # a rebalance waits until the batch's records are written
                        await self._apply_batch(self._loaded(consumer, batch))
                    await self.commit(consumer)
        finally:
            await consumer.stop()

    async def commit(self, consumer: AIOKafkaConsumer) -> None:
        """Commit what is applied and written: never a request whose ledger is not in the topic yet."""
        done, self._done = self._done, {}
        if done:
            try:
                await consumer.commit(done)
            except KafkaError as exc:  # the next owner re-reads from the last commit; ledgers skip what they hold
                log.warning("committing budget request offsets failed (%r)", exc)

    def remaining(self) -> Iterator[Remaining]:
        """What each owned scope has left this day and month, for the ``keel_budget_remaining`` gauge."""
        now_ms = self._clock.now_ms()
        for scope, ledger in list(self._ledgers.items()):
            limits = self._limits.get(scope)
            if limits is None:
                continue
            for kind in KINDS:
                period = period_of(kind, now_ms)
                limit, committed = limits_in(ledger, limits, period), ledger.committed(period)
                if limit.usd is not None:
                    yield scope, kind, "usd", limit.usd - committed.usd
                if limit.tokens is not None:
                    yield scope, kind, "tokens", float(limit.tokens - committed.tokens)

    def _loaded(
        self, consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list[Any]]
    ) -> dict[TopicPartition, list[Any]]:
        """The records of partitions whose ledgers are loaded. aiokafka hands out records of a new
        assignment while its listener still loads them: those are read again once it has (dropped,
        they would never be applied, and the partition's next commit would pass them). Records of a
        partition a rebalance took are left to its next owner."""
        for tp, messages in batch.items():
            if tp.partition not in self._owned and tp in consumer.assignment():
                consumer.seek(tp, messages[0].offset)
        return {tp: messages for tp, messages in batch.items() if tp.partition in self._owned}

    async def _apply_batch(self, batch: dict[TopicPartition, list[Any]]) -> None:
        out: list[OutRecord] = []
        changed: set[str] = set()
        for tp, messages in batch.items():
            for message in messages:
                try:
                    request, reply_partition = self._decode(message.value or b"")
                except DecodeError as exc:  # not a request Keel wrote: nothing to decide
                    self._skipped.skip(READER, message, exc)
                    continue
                out += self._apply(request, reply_partition, partition=tp.partition, offset=message.offset)
                changed.add(request.scope)
        for scope in changed:
            ledger = encode_ledger(self._ledgers[scope])
            out.append(OutRecord(self._ledger_topic, scope.encode(), ledger, (), self._partition_of[scope]))
        await until_written(lambda: self._producer.send_all(out), what="budget decisions and ledgers")
        for tp, messages in batch.items():
            if messages:
                self._done[tp] = messages[-1].offset + 1

    def _decode(self, value: bytes) -> tuple[BudgetRequest, int]:
        request, reply_partition = self._codec.decode_request(value)
        if reply_partition >= self._settings.partitions:  # no answer could be written there
            raise UnexpectedValue(f"budget request {request.request_id!r}: reply partition {reply_partition}")
        return request, reply_partition

    def _apply(self, request: BudgetRequest, reply_partition: int, *, partition: int, offset: int) -> list[OutRecord]:
        ledger = self._ledgers.get(request.scope, Ledger())
        ledger, decision, alerts = apply(ledger, request, offset=offset, now_ms=self._clock.now_ms())
        self._ledgers[request.scope], self._partition_of[request.scope] = ledger, partition
        if request.kind != "raise":
            self._limits[request.scope] = request.limits
        out = []
        if decision is not None and reply_partition >= 0:
            value = self._codec.encode_decision(decision)
            out.append(OutRecord(self._decisions, request.request_id.encode(), value, (), reply_partition))
        for alert in alerts:
            log.warning(
                "budget %s %s: %s at %.0f%% of %g %s (%s)",
                alert.scope, alert.period, alert.status, alert.observed * 100, alert.limit, alert.unit, alert.level,
            )  # fmt: skip
            as_alert = budget_alert(self._settings, alert, now_ms=self._clock.now_ms())
            out.append(alert_record(self._catalogue, self._settings, as_alert))
        return out

    async def load(self, partitions: list[int]) -> None:
        """The ledgers of newly owned partitions, as their last snapshots left them."""
        tps = [TopicPartition(self._ledger_topic, p) for p in partitions]
        async for message in read_to_end(client_config(self._settings), tps):
            self._load_one(message)
        self._owned.update(partitions)

    def _load_one(self, message: Any) -> None:
        key, value = message.key, message.value
        if key is None or value is None:  # a deleted snapshot (or not one of ours)
            return
        try:
            scope, ledger = key.decode(), decode_ledger(value)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # a snapshot this version did not write
            self._skipped.skip(READER, message, UnexpectedValue(f"ledger of {key!r}, which starts empty: {exc!r}"))
            return
        self._ledgers[scope], self._partition_of[scope] = ledger, message.partition

    def forget(self, partitions: list[int]) -> None:
        self._owned.difference_update(partitions)
        gone = [scope for scope, partition in self._partition_of.items() if partition in partitions]
        for scope in gone:
            self._ledgers.pop(scope, None)
            self._partition_of.pop(scope, None)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, owner: BudgetOwner, consumer: AIOKafkaConsumer) -> None:
        self._owner, self._consumer = owner, consumer

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """The batch under way is written first, so the next owner's ledgers hold every answer given."""
        async with self._owner.applying:
            await self._owner.commit(self._consumer)
            self._owner.forget([tp.partition for tp in revoked])

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        """Paused while their ledgers load: nothing of them is fetched meanwhile (see ``_loaded``)."""
        self._consumer.pause(*assigned)
        try:
            await self._owner.load([tp.partition for tp in assigned])
        finally:
            self._consumer.resume(*assigned)


async def run_owner(owner: BudgetOwner) -> None:
    """Run the owner until cancelled, starting again after a Kafka failure."""
    while True:
        try:
            await owner.run()
        except KafkaError as exc:
            log.warning("the budget owner stopped (%r); starting again", exc)
            await asyncio.sleep(1)
