"""Fetched records whose header names are not UTF-8 are read, not fatal.

Kafka's protocol says a header name is a UTF-8 string, but brokers do not check it, so any client can
write one that is not. aiokafka decodes header names strictly while it unpacks a fetched batch: one
such record makes every ``getmany`` of its partition raise ``UnicodeDecodeError``, again after every
restart, for every reader of the topic (Keel's own consumers and faust's alike) — and, since a batch
is unpacked whole, the good records written in the same batch are never handed out either.

``install()`` (called when ``streams.kafka.consumers`` is imported) makes the fetcher read such a batch as
the Java consumer does: invalid bytes of a header name become U+FFFD, every other byte (keys, values,
header values, offsets, timestamps) is kept, and each reader then treats the record as the input it
is (a worker's dead letter, a reader's skipped record). Batches whose header names are UTF-8, all
batches Keel and standard clients write, are unpacked by aiokafka exactly as before; only a batch
that fails is read again here, from the record batch format (v2) of the Kafka protocol.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from aiokafka import codec
from aiokafka.consumer import fetcher
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.record.util import decode_varint_py as decode_varint  # bounds-checked, unlike the C one

Headers = list[tuple[str, bytes | None]]

_BATCH_HEAD = struct.Struct(">qiibIhiqqqhii")  # v2: base offset … record count (61 bytes)
_LENGTH = struct.Struct(">i")  # every format: the batch length, after its 8-byte offset
_LOG_OVERHEAD = 12
_TIMESTAMP_TYPE = 0x08  # attributes: 1 when the broker's log-append time stands for every record
_DECOMPRESS: dict[int, Callable[[Any], bytes]] = {
    1: codec.gzip_decode,
    2: codec.snappy_decode,
    3: codec.lz4_decode,
    4: codec.zstd_decode,
}


@dataclass(frozen=True, slots=True)
class Record:
    """What the fetcher reads of a record (aiokafka's ``DefaultRecord``)."""

    offset: int
    timestamp: int
    timestamp_type: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    checksum: None = None


def read_batch(raw: bytes | memoryview) -> list[Record]:
    """The records of one v2 record batch (its 61-byte head, then the records, maybe compressed),
    header names decoded with replacement. Raises ``ValueError`` or ``struct.error`` for bytes that
    are not a batch."""
    raw = memoryview(raw)
    head = _BATCH_HEAD.unpack_from(raw)
    base_offset, magic, attributes, base_ts, max_ts, count = head[0], head[3], head[5], head[7], head[8], head[12]
    if magic != 2:
        raise ValueError(f"record batch format v{magic}: only v2 carries headers")
    body: bytes | memoryview = raw[_BATCH_HEAD.size :]
    codec_id = attributes & 0x07
    if codec_id:
        if codec_id not in _DECOMPRESS:
            raise ValueError(f"unknown compression codec {codec_id}")
        body = _DECOMPRESS[codec_id](bytes(body))
    try:
        return _records(body, count, base_offset, max_ts if attributes & _TIMESTAMP_TYPE else None, base_ts)
    except IndexError as exc:
        raise ValueError("a record runs past the end of its batch") from exc


def _records(
    body: bytes | memoryview, count: int, base_offset: int, log_append_ts: int | None, base_ts: int
) -> list[Record]:
    records, pos = [], 0
    for _ in range(count):
        length, pos = decode_varint(body, pos)
        end = pos + length
        pos += 1  # the record's attributes: unused
        ts_delta, pos = decode_varint(body, pos)
        offset_delta, pos = decode_varint(body, pos)
        key, pos = _bytes(body, pos)
        value, pos = _bytes(body, pos)
        n_headers, pos = decode_varint(body, pos)
        headers: Headers = []
        for _ in range(n_headers):
            name, pos = _bytes(body, pos)
            header_value, pos = _bytes(body, pos)
            headers.append(((name or b"").decode("utf-8", errors="replace"), header_value))
        if pos != end:
            raise ValueError(f"a record of {length} bytes read as {length + pos - end}")
        timestamp, timestamp_type = (base_ts + ts_delta, 0) if log_append_ts is None else (log_append_ts, 1)
        records.append(Record(base_offset + offset_delta, timestamp, timestamp_type, key, value, headers))
    if pos != len(body):
        raise ValueError(f"{len(body) - pos} bytes after the batch's {count} records")
    return records


def _bytes(body: bytes | memoryview, pos: int) -> tuple[bytes | None, int]:
    length, pos = decode_varint(body, pos)
    if length < 0:
        return None, pos
    if pos + length > len(body):
        raise ValueError("a field runs past the end of its batch")
    return bytes(body[pos : pos + length]), pos + length


class _Batch:
    """A fetched batch as aiokafka's, whose records are read again by ``read_batch`` when aiokafka
    cannot decode a header name of one of them."""

    def __init__(self, batch: Any, raw: memoryview) -> None:
        self._batch, self._raw = batch, raw
        self._records: Iterator[Any] | None = None

    def __getattr__(self, name: str) -> Any:  # base_offset, next_offset, is_control_batch, validate_crc…
        return getattr(self._batch, name)

    def __iter__(self) -> _Batch:
        return self

    def __next__(self) -> Any:
        if self._records is None:
            try:
                self._records = iter(list(self._batch))
            except UnicodeDecodeError:
                self._records = iter(read_batch(self._raw))
        return next(self._records)


class _Records:
    """aiokafka's ``MemoryRecords`` of one fetch response, keeping each batch's bytes."""

    def __init__(self, data: bytes) -> None:
        self._records = MemoryRecords(data)
        self._data, self._pos = memoryview(data), 0

    def size_in_bytes(self) -> int:
        return int(self._records.size_in_bytes())

    def has_next(self) -> bool:
        return bool(self._records.has_next())

    def next_batch(self) -> Any:
        batch = self._records.next_batch()
        if batch is None:
            return None
        start = self._pos
        self._pos = start + _LOG_OVERHEAD + _LENGTH.unpack_from(self._data, start + 8)[0]
        return _Batch(batch, self._data[start : self._pos]) if batch.magic == 2 else batch


def install() -> None:
    """Every aiokafka consumer of this process reads fetched batches through ``_Records``."""
    fetcher.MemoryRecords = _Records
