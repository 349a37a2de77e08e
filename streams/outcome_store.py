"""Completed events and their recorded outcome, kept in a compacted topic (one per agent).

A redelivered event (a crash before its offset was committed, a rebalance, a producer retry) finds its
outcome here and the worker re-emits the recorded records instead of calling the model again. The
entry is written, and acknowledged by the broker, *before* the outcome records are produced: whatever
the crash point, an event's outcome is either recorded (and re-emitted as it was) or not decided yet
(and decided once).

Entries go to the same partition number as their input event, so the worker that owns an input
partition reads exactly that store partition: it loads it on first use after the partition is
assigned, and forgets it when the partition is revoked (another worker may write it meanwhile).
This is deliberately not a faust Table: its recovery path has been seen here to stop delivering events
after a restart, and correctness must not rest on it.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.domain import Headers
from streams.emit import OutRecord

Send = Callable[[str, bytes, bytes, int], Awaitable[None]]  # topic, key, value, partition → acknowledged


def encode_records(records: list[OutRecord]) -> bytes:
    return orjson.dumps(
        [
            {
                "t": r.topic,
                "k": None if r.key is None else base64.b64encode(r.key).decode(),
                "v": base64.b64encode(r.value).decode(),
                "h": [[k, None if v is None else base64.b64encode(v).decode()] for k, v in r.headers],
            }
            for r in records
        ]
    )


def decode_records(blob: bytes) -> list[OutRecord]:
    return [
        OutRecord(
            topic=item["t"],
            key=None if item["k"] is None else base64.b64decode(item["k"]),
            value=base64.b64decode(item["v"]),
            headers=_headers(item["h"]),
        )
        for item in orjson.loads(blob)
    ]


def _headers(pairs: list[list[Any]]) -> Headers:
    return tuple((str(k), None if v is None else base64.b64decode(v)) for k, v in pairs)


class OutcomeStore:
    def __init__(self, bootstrap_servers: str, topic: str, send: Send) -> None:
        self.topic = topic
        self._bootstrap = bootstrap_servers
        self._send = send
        self._partitions: dict[int, dict[bytes, bytes]] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    async def recorded(self, event_id: str, *, partition: int) -> list[OutRecord] | None:
        entries = await self._loaded(partition)
        blob = entries.get(event_id.encode())
        return None if blob is None else decode_records(blob)

    async def record(self, event_id: str, records: list[OutRecord], *, partition: int) -> None:
        """Write the entry and wait for the broker's acknowledgement."""
        entries = await self._loaded(partition)
        key, blob = event_id.encode(), encode_records(records)
        await self._send(self.topic, key, blob, partition)
        entries[key] = blob

    def forget(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self._partitions.pop(partition, None)

    async def _loaded(self, partition: int) -> dict[bytes, bytes]:
        entries = self._partitions.get(partition)
        if entries is not None:
            return entries
        async with self._locks.setdefault(partition, asyncio.Lock()):
            if partition not in self._partitions:
                self._partitions[partition] = await self._read(partition)
            return self._partitions[partition]

    async def _read(self, partition: int) -> dict[bytes, bytes]:
        """Everything in one store partition, up to its end as of now (later entries win)."""
        tp = TopicPartition(self.topic, partition)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            consumer.assign([tp])
            begin = (await consumer.beginning_offsets([tp]))[tp]
            end = (await consumer.end_offsets([tp]))[tp]
            consumer.seek(tp, begin)  # explicit and immediate: seek_to_beginning() can race the fetcher
            entries: dict[bytes, bytes] = {}
            while await consumer.position(tp) < end:
                for message in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                    if message.value is None:
                        entries.pop(message.key, None)
                    else:
                        entries[message.key] = message.value
            return entries
        finally:
            await consumer.stop()
