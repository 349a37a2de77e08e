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
import logging
import struct
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.emit import OutRecord

log = logging.getLogger(__name__)
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


_ENTRY_VERSION = 1
_INT = struct.Struct(">i")


def encode_entry(entry: Recorded) -> bytes:
    """A compact binary entry, written once per event: a version byte, the retry tier, then each
    record's topic, partition, key, value and headers; every field length-prefixed (-1: None)."""
    parts = [bytes([_ENTRY_VERSION]), _INT.pack(-1 if entry.retry_tier is None else entry.retry_tier)]
    parts.append(_INT.pack(len(entry.records)))
    for r in entry.records:
        parts += [_blob(r.topic.encode()), _INT.pack(-1 if r.partition is None else r.partition)]
        parts += [_blob(r.key), _blob(r.value), _INT.pack(len(r.headers))]
        for name, value in r.headers:
            parts += [_blob(name.encode()), _blob(value)]
    return b"".join(parts)


def decode_entry(blob: bytes) -> Recorded:
    """Raises ``ValueError`` for a blob this version of Keel did not write."""
    if not blob or blob[0] != _ENTRY_VERSION:
        raise ValueError(f"not an outcome store entry of version {_ENTRY_VERSION}")
    reader = _Reader(blob)
    tier = reader.int()
    records = []
    for _ in range(reader.int()):
        topic, partition, key = reader.text(), reader.int(), reader.blob()
        value = reader.blob() or b""
        headers = tuple((reader.text(), reader.blob()) for _ in range(reader.int()))
        records.append(OutRecord(topic, key, value, headers, None if partition < 0 else partition))
    if reader.position != len(blob):
        raise ValueError("trailing bytes after the outcome store entry")
    return Recorded(records, None if tier < 0 else tier)


def _blob(data: bytes | None) -> bytes:
    return _INT.pack(-1) if data is None else _INT.pack(len(data)) + data


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.position = data, 1  # after the version byte

    def int(self) -> int:
        (value,) = _INT.unpack_from(self.data, self.position)
        self.position += 4
        return int(value)

    def blob(self) -> bytes | None:
        length = self.int()
        if length < 0:
            return None
        start, self.position = self.position, self.position + length
        if self.position > len(self.data):
            raise ValueError("truncated outcome store entry")
        return self.data[start : self.position]

    def text(self) -> str:
        return (self.blob() or b"").decode()


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
        if blob is None:
            return None
        try:
            return decode_entry(blob)
        except (ValueError, struct.error) as exc:  # not an entry this version wrote: decide the event again
            log.warning("outcome store %s: unreadable entry for %s (%s)", self.topic, event_id, exc)
            return None

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
