"""The review applier over a consumer stand-in: records that are not decisions are counted and passed
over, decisions on items no decision can apply (an item Keel did not write) are refused and counted,
and the decision behind them is applied and committed."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError
from hostile_records import hostile_review_decisions
from kafka_stand_in import StandInConsumer
from review_samples import NO_PRICES, decision_with, review_item

from streams.agent.definition import Agent
from streams.apps.review import applier as review_applier
from streams.apps.review.applier import READER, UNBUILDABLE, ReviewApplier
from streams.apps.review.metrics import ReviewMetrics
from streams.contracts.emit import Emitter
from streams.contracts.out_record import OutRecord
from streams.core import wire
from streams.core.catalogue import Catalogue
from streams.core.review_item import Decision, ReviewItem
from streams.core.settings import Settings
from streams.kafka.skipped import SkippedRecords
from streams.review.queue import ReviewQueue
from streams.review.records import decision_record

SETTINGS = Settings(namespace="t1", partitions=3)
DECISIONS = TopicPartition(SETTINGS.topic("keel.review.decisions"), 0)


class Producer:
    """Takes what the applier writes."""

    written: list[OutRecord] = []

    def __init__(self, *_: Any, **__: Any) -> None:
        Producer.written = []

    async def send_all(self, records: list[OutRecord]) -> list[tuple[str, int, int]]:
        self.written += records
        return [(r.topic, r.partition or 0, 0) for r in records]

    async def stop(self) -> None:
        return None


class Feed:
    """The feed has read everything (the test puts it in the queue itself)."""

    async def reached(self, tp: TopicPartition, offset: int, *, timeout_s: float) -> bool:
        return True

    async def caught_up(self, *, timeout_s: float) -> bool:
        return True


def rerunning(agent: Agent) -> Agent:
    handoff = agent.definition.handoff.model_copy(update={"on_reject": "rerun"})
    return replace(agent, definition=agent.definition.model_copy(update={"handoff": handoff}))


@dataclass
class Rig:
    consumer: StandInConsumer
    queue: ReviewQueue
    metrics: ReviewMetrics

    def decide(self, catalogue: Catalogue, item: ReviewItem, action: str, *, reason: str | None = None) -> Decision:
        """A decision on ``item`` written to the log, and read by the feed into the queue."""
        decision = decision_with(
            decision_id=f"d-{item.item_id}", item_id=item.item_id, agent=item.agent, action=action, reason=reason
        )
        record = decision_record(catalogue, DECISIONS.topic, decision)
        written = self.consumer.write(DECISIONS, record.value, key=record.key)
        self.queue.record(decision, offset=written.offset)
        return decision

    def refused(self, agent: str, why: str) -> float:
        return (
            self.metrics.registry.get_sample_value("keel_review_decisions_refused_total", {"agent": agent, "why": why})
            or 0.0
        )


@pytest.fixture
def rig(monkeypatch: pytest.MonkeyPatch) -> Rig:
    monkeypatch.setattr(review_applier, "RecordProducer", Producer)
    queue = ReviewQueue()
    metrics = ReviewMetrics(["support_triage"], queue.depths, skipped=SkippedRecords())
    return Rig(StandInConsumer(), queue, metrics)


async def applied(rig: Rig, catalogue: Catalogue, agent: Agent) -> list[OutRecord]:
    """Run the applier until it has read every decision written (and committed it)."""
    service = SimpleNamespace(catalogue=catalogue, queue=rig.queue, feed=Feed(), agent={agent.name: agent}.get)
    emitter = Emitter(catalogue, SETTINGS, [agent], pricing=NO_PRICES)
    applier = ReviewApplier(SETTINGS, service, emitter, rig.metrics)  # type: ignore[arg-type]
    running = asyncio.create_task(applier.run(consumer=rig.consumer))  # type: ignore[arg-type]
    try:
        async with asyncio.timeout(10):
            while rig.consumer.committed(DECISIONS) != len(rig.consumer.logs[DECISIONS]):
                await rig.consumer.idle()
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    assert not running.done() or running.cancelled(), running
    return Producer.written


async def test_records_that_are_not_decisions_are_counted_and_the_next_decision_applied(
    rig: Rig, catalogue: Catalogue, agents: dict[str, Agent]
) -> None:
    triage = agents["support_triage"]
    bad = hostile_review_decisions(catalogue, DECISIONS.topic)
    rig.consumer.write_all(DECISIONS, [h for h in bad if h.reason is not None])
    rig.consumer.fail(KafkaConnectionError())  # read through
    item = review_item(catalogue, triage)
    rig.queue.add(item)
    rig.decide(catalogue, item, "approve")
    written = await applied(rig, catalogue, triage)
    assert [r.topic for r in written] == ["t1.support_triage.results", "t1.keel.audit"]
    for reason in {h.reason for h in bad if h.reason is not None}:
        expected = sum(h.reason == reason for h in bad)
        assert rig.metrics.skipped.count(READER, DECISIONS.topic, reason) == expected, reason


async def test_decisions_on_items_keel_did_not_write_are_refused_not_retried(
    rig: Rig, catalogue: Catalogue, agents: dict[str, Agent]
) -> None:
    triage = rerunning(agents["support_triage"])
    not_json = replace(review_item(catalogue, triage), request_payload="{not json")
    no_such_partition = replace(review_item(catalogue, triage), input_partition=99)
    good = review_item(catalogue, triage)
    for item in (not_json, no_such_partition, good):
        rig.queue.add(item)
    rig.decide(catalogue, not_json, "approve")
    rig.decide(catalogue, no_such_partition, "reject", reason="wrong")  # a re-run to partition 99
    rig.decide(catalogue, good, "approve")
    written = await applied(rig, catalogue, triage)
    assert {wire.decode(catalogue, r.value)["event_id"] for r in written} == {good.event_id}
    assert rig.refused("support_triage", UNBUILDABLE) == 2
