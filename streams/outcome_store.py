"""Completed events and their recorded outcome, kept in a compacted topic (one per agent).

A redelivered event (a crash before its offset was committed, a rebalance, a producer retry) finds its
outcome here and the worker re-emits the recorded records instead of calling the model again. The
entry is written, and acknowledged by the broker, *before* the outcome records are produced: whatever
the crash point, an event's outcome is either recorded (and re-emitted as it was) or not decided yet
(and decided once). An event sent to a retry tier has an entry saying so, holding its tier record: a
redelivery from an earlier tier re-emits that, a delivery from that tier runs the event again.

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
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.domain import Headers
from streams.emit import OutRecord

Send = Callable[[str, bytes, bytes, int], Awaitable[None]]  # topic, key, value, partition → acknowledged


@dataclass(frozen=True, slots=True)
class Recorded:
    """An entry: the records an event wrote, and whether it still waits in a retry tier."""

    records: list[OutRecord]
    retry_tier: int | None = None  # None: the outcome is final

    def settles(self, tier: int) -> bool:
        """Whether this entry already answers a delivery read from ``tier`` (0: the input topic): the
        outcome is final, or that tier's pass already ran and sent the event on to a later tier."""
        return self.retry_tier is None or self.retry_tier > tier


def encode_entry(entry: Recorded) -> bytes:
    records = [
        {
            "t": r.topic,
            "p": r.partition,
            "k": None if r.key is None else base64.b64encode(r.key).decode(),
            "v": base64.b64encode(r.value).decode(),
            "h": [[k, None if v is None else base64.b64encode(v).decode()] for k, v in r.headers],
        }
        for r in entry.records
    ]
    return orjson.dumps({"retry_tier": entry.retry_tier, "records": records})


def decode_entry(blob: bytes) -> Recorded:
    document = orjson.loads(blob)
    if isinstance(document, list):  # written before retry tiers: a final outcome
        document = {"retry_tier": None, "records": document}
    records = [
        OutRecord(
            topic=item["t"],
            key=None if item["k"] is None else base64.b64decode(item["k"]),
            value=base64.b64decode(item["v"]),
            headers=_headers(item["h"]),
            partition=item.get("p"),
        )
        for item in document["records"]
    ]
    return Recorded(records, document["retry_tier"])


def _headers(pairs: list[list[Any]]) -> Headers:
    return tuple((str(k), None if v is None else base64.b64decode(v)) for k, v in pairs)


class OutcomeStore:
    def __init__(self, bootstrap_servers: str, topic: str, send: Send) -> None:
        self.topic = topic
        self._bootstrap = bootstrap_servers
        self._send = send
        self._partitions: dict[int, dict[bytes, bytes]] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    async def recorded(self, event_id: str, *, partition: int) -> Recorded | None:
        entries = await self._loaded(partition)
        blob = entries.get(event_id.encode())
        return None if blob is None else decode_entry(blob)

    async def record(self, event_id: str, entry: Recorded, *, partition: int) -> None:
        """Write the entry and wait for the broker's acknowledgement."""
        entries = await self._loaded(partition)
        key, blob = event_id.encode(), encode_entry(entry)
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
