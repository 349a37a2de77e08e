"""Keel's own Kafka consumers (apart from faust's): reading partitions to their end, and group members."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError, KafkaTimeoutError

from streams.core.kafka_client import ClientConfig
from streams.core.settings import Settings
from streams.kafka import kafka_records
from streams.kafka.connection import client_config

kafka_records.install()  # a header name that is not UTF-8 stops no reader (streams/kafka/kafka_records.py)

log = logging.getLogger(__name__)
T = TypeVar("T")

# The poll interval allowance of a member that waits on others as long as it takes (alert sinks that are
# down, a broker that is away) before it polls again: a day, not aiokafka's five minutes.
PATIENT_POLL_MS = 86_400_000


async def read_to_end(kafka: ClientConfig, tps: list[TopicPartition]) -> AsyncIterator[Any]:
    """Every record of ``tps``, in order per partition, up to each partition's end when the read starts."""
    consumer = AIOKafkaConsumer(**kafka.kwargs(), enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await seek_to_beginnings(consumer, tps)
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for messages in (await consumer.getmany(*tps, timeout_ms=1000)).values():
                for message in messages:
                    yield message
    finally:
        await consumer.stop()


def transient(exc: KafkaError) -> bool:
    """Whether asking again may succeed: aiokafka's own ``retriable`` (a broker away, a leader that
    moved), and a request that timed out."""
    return bool(exc.retriable) or isinstance(exc, KafkaTimeoutError)


async def until_read(
    read: Callable[[], Awaitable[T]], *, what: str, first_delay_s: float = 0.1, max_delay_s: float = 5.0
) -> T:
    """``read`` (a fetch, a position, end offsets) asked again with exponential backoff while it fails
    with a transient Kafka error; any other error is raised, for the process to end on (crash-only:
    a reader that stops silently would leave what it feeds stale)."""
    delay_s = first_delay_s
    while True:
        try:
            return await read()
        except KafkaError as exc:
            if not transient(exc):
                raise
            log.warning("%s failed (%r); reading again in %.1f s", what, exc, delay_s)
        await asyncio.sleep(delay_s)
        delay_s = min(max(delay_s, 0.01) * 2, max_delay_s)


async def seek_to_beginnings(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> None:
    """Position assigned partitions at their first record kept: explicit and immediate, because
    ``seek_to_beginning()`` can race the fetcher."""
    for tp, offset in (await consumer.beginning_offsets(tps)).items():
        consumer.seek(tp, offset)


def group_consumer(
    settings: Settings, group_id: str, *, max_poll_interval_ms: int = 300_000, fetch_max_wait_ms: int = 500
) -> AIOKafkaConsumer:
    """A member of ``group_id`` that commits by hand, from the earliest offset when the group has none,
    with the worker's session and heartbeat settings."""
    return AIOKafkaConsumer(
        **client_config(settings).kwargs(),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_interval_ms=max_poll_interval_ms,
        fetch_max_wait_ms=fetch_max_wait_ms,
        session_timeout_ms=int(settings.session_timeout_s * 1000),
        heartbeat_interval_ms=int(settings.heartbeat_interval_s * 1000),
    )


class Following:
    """A reader that, once started, follows its topics in a task of its own (``ConfigFeed``,
    ``TopicTable``): ``following`` is that task (it ends only by failing, or ``stop``)."""

    _consumer: AIOKafkaConsumer | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def following(self) -> asyncio.Task[None] | None:
        return self._task

    def _start_following(self, name: str) -> None:
        self._task = asyncio.create_task(self._follow(), name=name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    async def _follow(self) -> None:
        while True:
            await self._read_once()

    async def _read_once(self) -> None:
        raise NotImplementedError
