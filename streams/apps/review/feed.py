"""The review topics and the decisions topic, read into a ``ReviewQueue``: from the beginning to their end
at start, then live.

The topics keep their records until deleted (streams/contracts/topics.py), so the queue a restarted service
shows is the one it showed before: every item, and the first decision on each, in log order. The price
is the start time, which grows with the topics' size (10,000 items load in about 0.4 s on loopback).
One consumer without a group reads every partition; nothing is committed.

A record that is not a review item or decision of Keel's (anyone can write to a topic) is counted in
``keel_records_skipped_total`` and passed over (streams/kafka/skipped.py). A transient Kafka error is read
through again; any other error ends the feed's task, and `keel review serve` with it: a queue that
silently stopped following its topics would show reviewers a stale queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from streams.core.catalogue import Catalogue
from streams.core.errors import DecodeError
from streams.core.kafka_client import ClientConfig
from streams.kafka.consumers import seek_to_beginnings, until_read
from streams.kafka.skipped import SkippedRecords
from streams.review.queue import ReviewQueue
from streams.review.records import decode_decision, decode_item

log = logging.getLogger(__name__)
READER = "review-feed"


class ReviewFeed:
    def __init__(
        self,
        kafka: ClientConfig,
        catalogue: Catalogue,
        queue: ReviewQueue,
        *,
        review_topics: list[str],
        decisions_topic: str,
        partitions: int,
        skipped: SkippedRecords | None = None,
        consumer: AIOKafkaConsumer | None = None,
    ) -> None:
        """``consumer``: one to use instead of a new one (tests)."""
        self._catalogue, self._queue = catalogue, queue
        self._decisions_topic = decisions_topic
        self._skipped = skipped or SkippedRecords()
        self._tps = [TopicPartition(t, p) for t in [*review_topics, decisions_topic] for p in range(partitions)]
        self._consumer = consumer or AIOKafkaConsumer(**kafka.kwargs(), enable_auto_commit=False, fetch_max_wait_ms=100)
        self._positions: dict[TopicPartition, int] = {}
        self._moved = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Read every partition to the end it has now, then keep following in the background."""
        await self._consumer.start()
        self._consumer.assign(self._tps)
        await seek_to_beginnings(self._consumer, self._tps)
        ends = await until_read(lambda: self._consumer.end_offsets(self._tps), what="the review topics' ends")
        while not self._at_least(ends):
            await self._read_once()
        self._task = asyncio.create_task(self._follow(), name="review-feed")

    @property
    def following(self) -> asyncio.Task[None] | None:
        """The task that follows the topics once started: it ends only by failing (or ``stop``)."""
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    async def reached(self, tp: TopicPartition, offset: int, *, timeout_s: float) -> bool:
        """Wait until the records of ``tp`` before ``offset`` are in the queue; False on timeout."""
        return await self._wait(lambda: self._positions.get(tp, 0) >= offset, timeout_s=timeout_s)

    async def caught_up(self, *, timeout_s: float) -> bool:
        """Wait until every record written so far to the topics is in the queue; False on timeout."""
        ends = await until_read(lambda: self._consumer.end_offsets(self._tps), what="the review topics' ends")
        return await self._wait(lambda: self._at_least(ends), timeout_s=timeout_s)

    def decisions_partition(self, partition: int) -> TopicPartition:
        return TopicPartition(self._decisions_topic, partition)

    async def _follow(self) -> None:
        while True:
            await self._read_once()

    async def _read_once(self) -> None:
        consumer = self._consumer
        batch = await until_read(lambda: consumer.getmany(timeout_ms=500), what="reading the review topics")
        for messages in batch.values():
            for message in messages:
                self._take(message)
        positions = {tp: await self._position(tp) for tp in self._tps}
        async with self._moved:
            self._positions.update(positions)
            self._moved.notify_all()

    async def _position(self, tp: TopicPartition) -> int:
        position: int = await until_read(lambda: self._consumer.position(tp), what="a review partition's position")
        return position

    def _take(self, message: ConsumerRecord) -> None:
        try:
            if message.topic == self._decisions_topic:
                self._queue.record(decode_decision(self._catalogue, message.value or b""), offset=message.offset)
            else:
                self._queue.add(decode_item(self._catalogue, message.value or b"", tuple(message.headers or ())))
        except DecodeError as exc:  # not a record of ours: nothing a reviewer could act on
            self._skipped.skip(READER, message, exc)

    def _at_least(self, ends: dict[TopicPartition, int]) -> bool:
        return all(self._positions.get(tp, 0) >= end for tp, end in ends.items())

    async def _wait(self, done: Callable[[], bool], *, timeout_s: float) -> bool:
        try:
            async with asyncio.timeout(timeout_s), self._moved:
                await self._moved.wait_for(done)
        except TimeoutError:
            return False
        return True
