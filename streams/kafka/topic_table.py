"""Compacted topics kept in the worker for context lookups (streams/pipeline/context.py): every
partition read from the beginning to its end before the worker takes its first event, then followed,
so a lookup sees a change within a poll of its being written. Values are JSON objects (UTF-8); a
tombstone (no value) deletes its key; a value that is not a JSON object is passed over and counted."""

from __future__ import annotations

import functools
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.core.errors import ConfigError, DecodeError
from streams.core.kafka_client import ClientConfig
from streams.kafka.admin import partitions_of
from streams.kafka.consumers import Following, seek_to_beginnings, until_read
from streams.kafka.skipped import SkippedRecords

READER = "context-table"


class TopicTable(Following):
    def __init__(self, kafka: ClientConfig, topic: str, skipped: SkippedRecords) -> None:
        self.topic = topic
        self._kafka, self._skipped = kafka, skipped
        self._values: dict[str, Any] = {}
        self._consumer: AIOKafkaConsumer | None = None  # made in ``start``: aiokafka wants a running loop

    def get(self, key: str) -> Any | None:
        return self._values.get(key)

    def __len__(self) -> int:
        return len(self._values)

    async def start(self) -> None:
        """Read every partition to the end it has now, then follow the topic in the background."""
        consumer = AIOKafkaConsumer(**self._kafka.kwargs(), enable_auto_commit=False, fetch_max_wait_ms=100)
        self._consumer = consumer
        await consumer.start()
        partitions = await until_read(
            functools.partial(partitions_of, self._kafka, self.topic), what=f"the partitions of {self.topic}"
        )
        if not partitions:
            raise ConfigError(f"topic {self.topic}, which a context lookup reads, does not exist or may not be read")
        tps = [TopicPartition(self.topic, p) for p in partitions]
        consumer.assign(tps)
        await seek_to_beginnings(consumer, tps)
        ends = await until_read(lambda: consumer.end_offsets(tps), what=f"the end of {self.topic}")
        for tp in tps:
            while await until_read(functools.partial(consumer.position, tp), what=f"reading {self.topic}") < ends[tp]:
                await self._read_once()
        self._start_following(f"context-table-{self.topic}")

    async def _read_once(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        batch = await until_read(lambda: consumer.getmany(timeout_ms=500), what=f"reading {self.topic}")
        for messages in batch.values():
            for message in messages:
                self._take(message)

    def _take(self, message: Any) -> None:
        try:
            key = bytes(message.key or b"").decode("utf-8")
        except UnicodeDecodeError:
            self._skipped.skip(READER, message, DecodeError("the key is not UTF-8"))
            return
        if message.value is None:
            self._values.pop(key, None)
            return
        try:
            value = orjson.loads(message.value)
        except orjson.JSONDecodeError:
            value = None
        if not isinstance(value, dict):
            self._skipped.skip(READER, message, DecodeError("the value is not a JSON object"))
            return
        self._values[key] = value
