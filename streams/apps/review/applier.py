"""The applier: decisions on ``keel.review.decisions`` -> results, dead letters or re-runs, and audit.

It reads the decisions topic in its own consumer group and commits a partition's offset only after the
records of the decisions before it are written and acknowledged, so a stopped applier (or the group's
next member) goes on where the last one stopped, and nothing decided is lost.

Only the first decision on an item is applied. The review service's feed has read the whole decisions
log into the queue, which knows where each item's first decision is (its offset): a decision is applied
exactly when it is at that offset. A later decision on a decided item, or a physical copy of the first
one (a re-sent write), is at another offset: it is logged and counted, never applied. A restarted applier
therefore needs no list of what it applied: the log says which decision is first, the committed offset
says which are done. A crash between writing a decision's records and committing it applies it again
on restart, with byte-identical records (they are timed by the decision), which consumers fold by event
id like every other re-emitted outcome (at-least-once delivery, idempotent by key).

Anyone can write to the topics: a record that is not a decision is counted in
``keel_records_skipped_total`` and passed over; a decision whose records cannot be built from its item
(an item Keel did not write: its payload is not JSON, its partition does not exist) is refused and
counted, never retried, so that it cannot stop the decisions behind it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from streams.agent.definition import Agent
from streams.apps.review.kafka_service import KafkaReviewService
from streams.apps.review.metrics import ReviewMetrics
from streams.contracts.control_keys import load_control_keys
from streams.contracts.emit import Emitter
from streams.contracts.out_record import OutRecord
from streams.contracts.topics import REVIEW_DECISIONS, agent_topics, applier_group
from streams.core.errors import DecodeError, KeelError
from streams.core.review_item import Decision, ReviewItem
from streams.core.settings import Settings
from streams.kafka.connection import client_config
from streams.kafka.consumers import PATIENT_POLL_MS, group_consumer, until_read
from streams.kafka.producer import RecordProducer, until_written
from streams.review.apply import decision_records
from streams.review.records import decode_decision

log = logging.getLogger(__name__)
WAIT_LOG_S = 30.0
READER = "review-applier"
UNBUILDABLE = "unbuildable_item"  # the refusal of a decision whose item's records cannot be built


@dataclass(frozen=True, slots=True)
class _Applied:
    item: ReviewItem
    decision: Decision
    records: list[OutRecord]  # what applying it writes


class ReviewApplier:
    def __init__(
        self,
        settings: Settings,
        service: KafkaReviewService,
        emitter: Emitter,
        metrics: ReviewMetrics,
    ) -> None:
        """``service``: its queue and feed say which decision on an item is the first (it must be started)."""
        self._settings, self._service, self._emitter, self._metrics = settings, service, emitter, metrics
        self._catalogue, self._queue, self._feed = service.catalogue, service.queue, service.feed
        self._keys = load_control_keys(settings)  # a re-run's control headers are signed

    async def run(self, *, consumer: AIOKafkaConsumer | None = None) -> None:
        """Apply decisions until cancelled. ``consumer``: one to use instead of the group's own (tests)."""
        settings = self._settings
        consumer = consumer or group_consumer(settings, applier_group(settings), max_poll_interval_ms=PATIENT_POLL_MS)
        consumer.subscribe([settings.topic(REVIEW_DECISIONS)])
        producer = RecordProducer(client_config(settings), request_timeout_s=settings.produce_timeout_s)
        await consumer.start()
        try:
            while True:
                batch = await until_read(lambda: consumer.getmany(timeout_ms=1000, max_records=200), what="decisions")
                for tp, messages in batch.items():
                    await self._apply_batch(consumer, producer, tp, messages)
        finally:
            await consumer.stop()
            await producer.stop()

    async def _apply_batch(
        self, consumer: AIOKafkaConsumer, producer: RecordProducer, tp: TopicPartition, messages: list[ConsumerRecord]
    ) -> None:
        records: list[OutRecord] = []
        applied: list[_Applied] = []
        last = messages[-1].offset  # the queue must hold the batch's items and decisions: wait once for the last
        while not await self._feed.reached(tp, last + 1, timeout_s=WAIT_LOG_S):
            log.warning("%s/%s/%s: waiting for the review feed to read this far", tp.topic, tp.partition, last)
        for message in messages:
            built = await self._records_for(tp, message)
            if built is not None:
                records += built.records
                applied.append(built)
        if records:
            await until_written(lambda: producer.send_all(records), what=f"{len(applied)} review outcome(s)")
        for done in applied:
            item = done.item
            self._metrics.decisions.labels(item.agent, item.config_version, done.decision.action).inc()
            waited_s = max(done.decision.decided_at_ms - item.created_at_ms, 0) / 1000
            self._metrics.time_to_decision.labels(item.agent, item.config_version).observe(waited_s)
        try:
            await consumer.commit({tp: OffsetAndMetadata(last + 1, "")})
        except KafkaError as exc:  # moved to another applier (or the broker is away): it applies from the last commit
            log.warning("review applier: committing %s failed (%r); the next commit covers it", tp, exc)

    async def _records_for(self, tp: TopicPartition, message: ConsumerRecord) -> _Applied | None:
        where = f"{tp.topic}/{tp.partition}/{message.offset}"
        try:
            decision = decode_decision(self._catalogue, message.value or b"")
        except DecodeError as exc:
            self._metrics.skipped.skip(READER, message, exc)
            return None
        if self._queue.first_offset(decision.item_id) != message.offset:
            log.warning("%s: %s on %s refused: not the item's first decision", where, decision.action, decision.item_id)
            self._metrics.refused.labels(decision.agent, "already_decided").inc()
            return None
        state = self._queue.get(decision.item_id)
        if state is None and await self._feed.caught_up(timeout_s=WAIT_LOG_S):
            state = self._queue.get(decision.item_id)
        agent = self._service.agent(decision.agent)
        if state is None or agent is None:
            log.error("%s: %s on %s refused: no such item or agent here", where, decision.action, decision.item_id)
            self._metrics.refused.labels(agent.name if agent else "-", "no_such_item").inc()  # labels: known agents
            return None
        return self._build(state.item, decision, agent, where)

    def _build(self, item: ReviewItem, decision: Decision, agent: Agent, where: str) -> _Applied | None:
        input_topic = agent_topics(agent, self._settings).input
        why: str
        try:
            records = decision_records(item, decision, agent, self._emitter, input_topic=input_topic, keys=self._keys)
        except KeelError as exc:  # an output that no longer fits the agent's schema: nothing can be released
            why, cause = exc.reason, repr(exc)
        except ValueError as exc:  # JSON or Avro: an item Keel did not write, which no decision can apply
            why, cause = UNBUILDABLE, repr(exc)
        else:
            partitions = self._settings.partitions
            if all(r.partition is None or 0 <= r.partition < partitions for r in records):
                return _Applied(item, decision, records)
            why, cause = UNBUILDABLE, f"the item's input partition {item.input_partition} does not exist"
        log.error("%s: %s on %s cannot be applied (%s): %s", where, decision.action, decision.item_id, why, cause)
        self._metrics.refused.labels(decision.agent, why).inc()
        return None
