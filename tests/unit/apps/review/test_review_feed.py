"""The review feed over a consumer stand-in: records that are not review items or decisions are
counted and passed over, at start-up and while following; transient Kafka errors are read through; any
other error ends the following task (for `keel review serve` to exit on)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError, RequestTimedOutError, TopicAuthorizationFailedError
from hostile_records import Hostile, hostile_review_decisions, hostile_review_items
from kafka_stand_in import StandInConsumer
from review_samples import decision_with, review_record

from streams.agent.definition import Agent
from streams.apps.review.feed import READER, ReviewFeed
from streams.core.catalogue import Catalogue
from streams.core.review_item import ReviewItem
from streams.core.settings import Settings
from streams.kafka.skipped import SkippedRecords
from streams.review.queue import ReviewQueue
from streams.review.records import decision_record, decode_item

SETTINGS = Settings(namespace="t1")
REVIEW = TopicPartition(SETTINGS.topic("support_triage.review"), 0)
DECISIONS = TopicPartition(SETTINGS.topic("keel.review.decisions"), 0)


@dataclass
class Fed:
    consumer: StandInConsumer
    queue: ReviewQueue
    feed: ReviewFeed
    skipped: SkippedRecords


@pytest.fixture
async def fed(catalogue: Catalogue) -> AsyncIterator[Fed]:
    consumer, queue, skipped = StandInConsumer(), ReviewQueue(), SkippedRecords()
    feed = ReviewFeed(
        "unused:9092",
        catalogue,
        queue,
        review_topics=[REVIEW.topic],
        decisions_topic=DECISIONS.topic,
        partitions=1,
        skipped=skipped,
        consumer=consumer,  # type: ignore[arg-type]
    )
    yield Fed(consumer, queue, feed, skipped)
    with contextlib.suppress(TopicAuthorizationFailedError):  # the failure a test made (stop raises it again)
        await feed.stop()


def write_item(fed: Fed, catalogue: Catalogue, agent: Agent) -> ReviewItem:
    record = review_record(catalogue, SETTINGS, agent)
    fed.consumer.write(REVIEW, record.value, key=record.key, headers=record.headers)
    return decode_item(catalogue, record.value, record.headers)


def write_decision(fed: Fed, catalogue: Catalogue, item: ReviewItem) -> None:
    record = decision_record(
        catalogue, DECISIONS.topic, decision_with(decision_id=f"d-{item.item_id}", item_id=item.item_id)
    )
    fed.consumer.write(DECISIONS, record.value, key=record.key, headers=record.headers)


def hostile_items(catalogue: Catalogue, agent: Agent) -> list[Hostile]:
    return hostile_review_items(catalogue, SETTINGS, agent)


def hostile_decisions(catalogue: Catalogue) -> list[Hostile]:
    return hostile_review_decisions(catalogue, DECISIONS.topic)


def skip_counts(fed: Fed, tp: TopicPartition, written: list[Hostile]) -> tuple[Counter[str], Counter[str]]:
    """(what the feed counted, what it should have) per reason, for ``tp``."""
    expected = Counter(h.reason for h in written if h.reason is not None)
    return Counter({r: int(fed.skipped.count(READER, tp.topic, r)) for r in expected}), expected


async def test_start_up_passes_over_every_kind_of_bad_record_and_loads_the_good_ones(
    fed: Fed, catalogue: Catalogue, agents: dict[str, Agent]
) -> None:
    triage = agents["support_triage"]
    bad_items, bad_decisions = hostile_items(catalogue, triage), hostile_decisions(catalogue)
    fed.consumer.write_all(REVIEW, bad_items)
    fed.consumer.write_all(DECISIONS, bad_decisions)
    decided, waiting = write_item(fed, catalogue, triage), write_item(fed, catalogue, triage)
    write_decision(fed, catalogue, decided)
    async with asyncio.timeout(10):
        await fed.feed.start()
    assert skip_counts(fed, REVIEW, bad_items)[0] == skip_counts(fed, REVIEW, bad_items)[1]
    assert skip_counts(fed, DECISIONS, bad_decisions)[0] == skip_counts(fed, DECISIONS, bad_decisions)[1]
    state = fed.queue.get(decided.item_id)
    assert state is not None and state.decision is not None and state.decision.decision_id == f"d-{decided.item_id}"
    assert waiting.item_id in [item.item_id for item in fed.queue.waiting()]


async def test_following_reads_past_bad_records_and_transient_errors(
    fed: Fed, catalogue: Catalogue, agents: dict[str, Agent]
) -> None:
    triage = agents["support_triage"]
    async with asyncio.timeout(10):
        await fed.feed.start()
        fed.consumer.fail(KafkaConnectionError())  # the broker went away for a moment
        fed.consumer.fail(RequestTimedOutError())
        bad_items = hostile_items(catalogue, triage)
        fed.consumer.write_all(REVIEW, bad_items)
        item = write_item(fed, catalogue, triage)
        assert await fed.feed.reached(REVIEW, item_offset(fed) + 1, timeout_s=10)
    assert item.item_id in [i.item_id for i in fed.queue.waiting()]
    assert skip_counts(fed, REVIEW, bad_items)[0] == skip_counts(fed, REVIEW, bad_items)[1]
    following = fed.feed.following
    assert following is not None and not following.done()


async def test_a_kafka_error_that_will_not_pass_ends_the_following_task(fed: Fed) -> None:
    async with asyncio.timeout(10):
        await fed.feed.start()
        fed.consumer.fail(TopicAuthorizationFailedError())
        following = fed.feed.following
        assert following is not None
        with pytest.raises(TopicAuthorizationFailedError):
            await following


def item_offset(fed: Fed) -> int:
    return len(fed.consumer.logs[REVIEW]) - 1
