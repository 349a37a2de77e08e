"""Completed events and their recorded outcome, kept in a compacted topic (one per agent).

A redelivered event (a crash before its offset was committed, a rebalance, a producer retry) finds its
outcome here and the worker re-emits the recorded records instead of calling the model again. The
entry is written, and acknowledged by the broker, *before* the outcome records are produced: whatever
the crash point, an event's outcome is either recorded (and re-emitted as it was) or not decided yet
(and decided once). Each entry holds the number of the event's pass that wrote it: an event sent to a
retry tier or parked has an entry holding the record it waits in, and a redelivery of that pass re-emits
the record while the waiting record (the next pass) runs the event again. A review item (or a flagged
result) is answered the same way: the input record delivered again re-emits the item, a reviewer's
re-run (streams/pipeline/handoff.py) or an engineer's replay (streams/cli/dlq.py) runs the event as a later pass.

An entry also holds a digest of the input's key and value: a different record that reuses a recorded
event id is not a redelivery, and never receives that event's outcome (the worker dead-letters it as
``event_id_conflict``).

Entries go to the same partition number as their input event, so the worker that owns an input
partition reads exactly that store partition: it loads it on first use after the partition is
assigned, and forgets it when the partition is revoked (another worker may write it meanwhile).
Loaded entries are kept in a private SQLite database on local disk, not in the heap: a store
partition holds up to the retention period's entries, which would otherwise grow a long-running
worker's memory without bound.
The store also keeps each tool-using event's tool journal (streams/pipeline/tool_journal.py), under
``JOURNAL_PREFIX`` + the event id: no event id can take that key, since 0xFF never occurs in UTF-8.

This is deliberately not a faust Table: its recovery path has been seen here to stop delivering events
after a restart, and correctness must not rest on it.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
import sqlite3
import struct
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from aiokafka import TopicPartition

from streams.contracts.out_record import OutRecord
from streams.core.domain import SourceRecord
from streams.core.errors import ToolResponseInvalid, WriteRejected
from streams.core.kafka_client import ClientConfig
from streams.kafka.consumers import read_to_end
from streams.kafka.producer import until_written

log = logging.getLogger(__name__)
Send = Callable[[str, bytes, bytes, int], Awaitable[None]]  # topic, key, value, partition → acknowledged


@dataclass(frozen=True, slots=True)
class Recorded:
    """An entry: the records an event wrote, the pass that wrote them, and which input that was."""

    records: list[OutRecord]
    passed: int | None  # the event's pass that wrote them; None: a final entry of version 1 (pass unknown)
    digest: bytes | None = None  # ``input_digest`` of the input; None: an entry of version 1
    origin: str = ""  # where that input first arrived (topic/partition/offset)

    def settles(self, pass_number: int, *, replay: bool = False) -> bool:
        """Whether this entry already answers a delivery of ``pass_number`` (0: from the input topic):
        that pass, or a later one, ran already. A version 1 entry without a pass settles every delivery
        but a replay, as it did before passes were recorded on final entries."""
        return not replay if self.passed is None else pass_number <= self.passed

    def same_input(self, source: SourceRecord) -> bool:
        """Whether ``source`` is the input this entry recorded (a redelivery, a retry tier's or parked
        record, a re-run or a replay of it), not another record that reuses its event id."""
        return self.digest is None or hmac.compare_digest(self.digest, input_digest(source))


def input_digest(source: SourceRecord) -> bytes:
    """A fingerprint of an input record's key and value: what every delivery of one event shares."""
    key = b"\xff" if source.key is None else _blob(source.key)
    return hashlib.sha256(key + source.value).digest()[:16]


JOURNAL_PREFIX = b"\xfftools\xff"
_ENTRY_VERSION = 2
_INT = struct.Struct(">i")


def encode_entry(entry: Recorded) -> bytes:
    """A compact binary entry, written once per event: a version byte, the pass, the input's digest and
    origin, then each record's topic, partition, key, value and headers; every field length-prefixed
    (-1: None)."""
    parts = [bytes([_ENTRY_VERSION]), _INT.pack(-1 if entry.passed is None else entry.passed)]
    parts += [_blob(entry.digest), _blob(entry.origin.encode()), _INT.pack(len(entry.records))]
    for r in entry.records:
        parts += [_blob(r.topic.encode()), _INT.pack(-1 if r.partition is None else r.partition)]
        parts += [_blob(r.key), _blob(r.value), _INT.pack(len(r.headers))]
        for name, value in r.headers:
            parts += [_blob(name.encode()), _blob(value)]
    return b"".join(parts)


def decode_entry(blob: bytes) -> Recorded:
    """Raises ``ValueError`` for a blob no version of Keel wrote. Version 1 entries (no digest) held the
    next pass where version 2 holds the pass that ran."""
    if not blob or blob[0] not in (1, _ENTRY_VERSION):
        raise ValueError(f"not an outcome store entry of version 1 or {_ENTRY_VERSION}")
    reader = _Reader(blob)
    if blob[0] == 1:
        next_pass = reader.int()
        passed, digest, origin = (None if next_pass < 0 else next_pass - 1), None, ""
    else:
        passed, digest, origin = reader.int(), reader.blob(), reader.text()
        passed = None if passed < 0 else passed
    records = []
    for _ in range(reader.int()):
        topic, partition, key = reader.text(), reader.int(), reader.blob()
        value = reader.blob() or b""
        headers = tuple((reader.text(), reader.blob()) for _ in range(reader.int()))
        records.append(OutRecord(topic, key, value, headers, None if partition < 0 else partition))
    if reader.position != len(blob):
        raise ValueError("trailing bytes after the outcome store entry")
    return Recorded(records, passed, digest, origin)


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
    def __init__(self, kafka: ClientConfig, topic: str, send: Send) -> None:
        self.topic = topic
        self._kafka = kafka
        self._send = send
        self._entries = _Entries()
        self._loaded: set[int] = set()
        self._locks: dict[int, asyncio.Lock] = {}

    async def recorded(self, event_id: str, *, partition: int) -> Recorded | None:
        blob = await self._stored(event_id.encode(), partition=partition)
        if blob is None:
            return None
        try:
            return decode_entry(blob)
        except (
            ValueError,
            struct.error,
            UnicodeDecodeError,
        ) as exc:  # not an entry this version wrote: decide the event again
            log.warning("outcome store %s: unreadable entry for %s (%s)", self.topic, event_id, exc)
            return None

    async def record(self, event_id: str, entry: Recorded, *, partition: int) -> None:
        """Write the entry and wait for the broker's acknowledgement."""
        await self._store(event_id.encode(), encode_entry(entry), partition=partition)

    def journal(self, event_id: str, *, partition: int) -> StoredJournal:
        """Where the event's tool loop keeps its journal (streams/pipeline/tool_journal.py)."""
        return StoredJournal(self, JOURNAL_PREFIX + event_id.encode(), partition)

    async def _stored(self, key: bytes, *, partition: int) -> bytes | None:
        await self._load(partition)
        return self._entries.get(partition, key)

    async def _store(self, key: bytes, blob: bytes, *, partition: int) -> None:
        await self._load(partition)
        await self._send(self.topic, key, blob, partition)
        self._entries.put(partition, [(key, blob)])

    def forget(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self._loaded.discard(partition)
            self._entries.drop(partition)

    def close(self) -> None:
        self._entries.close()

    async def _load(self, partition: int) -> None:
        if partition in self._loaded:
            return
        async with self._locks.setdefault(partition, asyncio.Lock()):
            if partition not in self._loaded:
                await self._read(partition)
                self._loaded.add(partition)

    async def _read(self, partition: int) -> None:
        """Everything in one store partition, up to its end as of now (later entries win)."""
        self._entries.drop(partition)
        async for message in read_to_end(self._kafka, [TopicPartition(self.topic, partition)]):
            if message.key is not None:
                self._entries.put(partition, ((message.key, message.value),))


class StoredJournal:
    """One event's tool journal in its store partition; a save returns once the broker has it (it is
    tried again while Kafka is away, as an outcome is: the event waits)."""

    def __init__(self, store: OutcomeStore, key: bytes, partition: int) -> None:
        self._store, self._key, self._partition = store, key, partition

    async def load(self) -> bytes | None:
        return await self._store._stored(self._key, partition=self._partition)

    async def save(self, blob: bytes) -> None:
        write = functools.partial(self._store._store, self._key, blob, partition=self._partition)
        try:
            await until_written(write, what="the tool journal")
        except WriteRejected as exc:  # too large for the store topic: the event cannot go on safely
            raise ToolResponseInvalid(f"the tool journal ({len(blob)} bytes) cannot be kept: {exc}") from exc


class _Entries:
    """Loaded store partitions in a private, temporary SQLite database: SQLite keeps a small page
    cache in memory and the rest in a file of its own that is deleted when the database is closed
    (or the process ends). Writes are buffered and go to SQLite a batch at a time, in one
    transaction. Every call is synchronous, so no other coroutine comes between."""

    def __init__(self, *, batch: int = 512) -> None:
        self._db = sqlite3.connect("", isolation_level=None)  # "": private and on disk, not ":memory:"
        self._db.execute("PRAGMA page_size = 16384")  # an entry (a few KB) fits in a page, no overflow chain
        self._db.execute("PRAGMA journal_mode = OFF")  # nothing to recover: the topic is the source of truth
        self._db.execute("PRAGMA synchronous = OFF")
        # Rows appended in rowid order, found through a small index: much cheaper to insert into than
        # a table clustered on random event ids.
        self._db.execute("CREATE TABLE entries (partition INTEGER, key BLOB, blob BLOB)")
        self._db.execute("CREATE UNIQUE INDEX entries_by_key ON entries (partition, key)")
        self._batch = batch
        self._pending: dict[tuple[int, bytes], bytes | None] = {}  # None: a tombstone

    def get(self, partition: int, key: bytes) -> bytes | None:
        if (partition, key) in self._pending:
            return self._pending[partition, key]
        row = self._db.execute("SELECT blob FROM entries WHERE partition = ? AND key = ?", (partition, key)).fetchone()
        return None if row is None else bytes(row[0])

    def put(self, partition: int, entries: Iterable[tuple[bytes, bytes | None]]) -> None:
        """In order; a ``None`` blob (a tombstone) removes the key."""
        for key, blob in entries:
            self._pending[partition, key] = blob
        if len(self._pending) >= self._batch:
            self._flush()

    def drop(self, partition: int) -> None:
        self._flush()
        self._db.execute("DELETE FROM entries WHERE partition = ?", (partition,))

    def close(self) -> None:
        self._db.close()

    def _flush(self) -> None:
        pending, self._pending = self._pending, {}
        self._db.execute("BEGIN")
        self._db.executemany(
            "DELETE FROM entries WHERE partition = ? AND key = ?", [k for k, blob in pending.items() if blob is None]
        )
        self._db.executemany(
            "INSERT OR REPLACE INTO entries VALUES (?, ?, ?)",
            [(*k, blob) for k, blob in pending.items() if blob is not None],
        )
        self._db.execute("COMMIT")
