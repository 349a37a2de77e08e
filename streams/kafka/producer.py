"""Keel's own Kafka producer: outcome, audit, usage and store records, and published or replayed events.

Kept apart from faust's producer on purpose (the aggregator is a faust app that writes alerts too): faust
flushes its producer before every offset commit, and the consumer waits on that commit, so one record
stuck on a deleted topic would stall every partition. Here a stuck record only holds the event that
wrote it, and `until_written` sends it again. A short metadata age lets a re-created topic be found
again within seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)
from aiokafka.partitioner import DefaultPartitioner, murmur2

from streams.contracts.out_record import OutRecord
from streams.core.errors import WriteRejected
from streams.core.kafka_client import ClientConfig

log = logging.getLogger(__name__)
T = TypeVar("T")
# Errors no number of tries mends: the record is too large for the client or the broker, or invalid.
NEVER_WRITTEN = (MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError, CorruptRecordException)


class RecordProducer:
    """Long-lived in the worker; ``async with RecordProducer(...)`` for one batch (publishing, replay)."""

    def __init__(self, kafka: ClientConfig, *, request_timeout_s: float = 30.0) -> None:
        self._kafka = kafka
        self._request_timeout_ms = int(request_timeout_s * 1000)
        self._producer: AIOKafkaProducer | None = None
        self._lock: asyncio.Lock | None = None

    async def __aenter__(self) -> RecordProducer:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def send_all(self, records: Iterable[OutRecord]) -> list[tuple[str, int, int]]:
        """Send every record, then wait for all acknowledgements together (no per-record round trip).
        Returns where each record landed: (topic, partition, offset)."""
        producer = await self._ready()
        pending = [
            await producer.send(
                r.topic, r.value, key=r.key, headers=list(r.headers), partition=r.partition, timestamp_ms=r.timestamp_ms
            )
            for r in records
        ]
        return [(m.topic, m.partition, m.offset) for m in await asyncio.gather(*pending)]

    async def send_one(self, topic: str, key: bytes, value: bytes, partition: int) -> None:
        producer = await self._ready()
        await (await producer.send(topic, value, key=key, partition=partition))

    async def flush(self) -> None:
        """Wait until every record sent so far is acknowledged (or has failed)."""
        if self._producer is not None:
            await self._producer.flush()

    async def stop(self, *, timeout_s: float = 10.0) -> None:
        if self._producer is not None:
            try:
                async with asyncio.timeout(timeout_s):
                    await self._producer.stop()
            except TimeoutError:
                pass  # records still unacknowledged belong to events that were not acked either

    async def _ready(self) -> AIOKafkaProducer:
        """Created on first use: aiokafka binds a producer to the running event loop."""
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    **self._kafka.kwargs(),
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=2,
                    max_batch_size=512 * 1024,
                    request_timeout_ms=self._request_timeout_ms,
                    metadata_max_age_ms=10_000,
                    partitioner=KeyHashCache(),
                )
                await producer.start()
                self._producer = producer
        return self._producer


class KeyHashCache:
    """aiokafka's default partitioner (murmur2 of the key, as the Java client), with the hashes of the
    latest keys kept: an event's records (outcome, audit, usage) share its key, and aiokafka's murmur2
    is pure Python. Partitions come out exactly as the default's."""

    def __init__(self, *, size: int = 1024) -> None:
        self._size = size
        self._hashes: dict[bytes, int] = {}
        self._default = DefaultPartitioner()

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return int(self._default(key, all_partitions, available))  # random, as the default
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= self._size:
                self._hashes.clear()  # the keys that repeat are the latest events': cheaper than an LRU
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[hashed % len(all_partitions)]


async def until_written(
    write: Callable[[], Awaitable[T]], *, what: str, attempt_timeout_s: float = 15.0, max_delay_s: float = 10.0
) -> T:
    """Retry a write to Kafka until it succeeds. The event is not acked meanwhile, so its offset stays
    put and the partition waits: an outcome is never skipped because a topic is missing or the broker
    is away. Each try is bounded, because a send to a deleted topic can wait on stale metadata for
    minutes; sending again refreshes it. Re-sent records may duplicate physically; consumers
    de-duplicate by event id. Returns what the write that succeeded returned. Raises ``WriteRejected``
    for a record that can never be written (``NEVER_WRITTEN``): retrying it would hold the partition
    for ever."""
    delay_s = 0.2
    while True:
        try:
            async with asyncio.timeout(attempt_timeout_s):
                return await write()
        except NEVER_WRITTEN as exc:
            raise WriteRejected(f"{what} can never be written: {exc!r}") from exc
        except (KafkaError, TimeoutError) as exc:
            log.warning("writing %s failed (%r); retrying in %.1f s, the input partition waits", what, exc, delay_s)
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, max_delay_s)
