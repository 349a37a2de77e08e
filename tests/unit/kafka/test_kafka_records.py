"""Fetched batches with header names that are not UTF-8 (streams/kafka/kafka_records.py): read as the Java
consumer reads them, every other byte kept; every other batch exactly as aiokafka reads it."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.consumer import fetcher
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from hostile_records import NOT_UTF8, raw_batch
from hypothesis import given
from hypothesis import strategies as st

from streams.kafka import kafka_records

GZIP = DefaultRecordBatch.CODEC_GZIP

optional_bytes = st.none() | st.binary(max_size=300)
records = st.lists(
    st.tuples(
        optional_bytes,
        optional_bytes,
        st.lists(st.tuples(st.text(max_size=20), optional_bytes), max_size=4),
        st.integers(min_value=0, max_value=2**40),
    ),
    min_size=1,
    max_size=20,
)


def seen(record: Any) -> tuple[Any, ...]:
    return (record.offset, record.timestamp, record.timestamp_type, record.key, record.value, list(record.headers))


def aiokafka_batch(items: list[tuple[Any, ...]], compression: int) -> bytes:
    builder = DefaultRecordBatchBuilder(2, compression, 0, -1, -1, -1, 1 << 24)
    for offset, (key, value, headers, timestamp) in enumerate(items):
        builder.append(offset, timestamp, key, value, headers)
    return bytes(builder.build())


@given(items=records, compression=st.sampled_from([0, GZIP]))
def test_a_batch_reads_as_aiokafka_reads_it(items: list[tuple[Any, ...]], compression: int) -> None:
    raw = aiokafka_batch(items, compression)
    assert [seen(r) for r in kafka_records.read_batch(raw)] == [seen(r) for r in DefaultRecordBatch(raw)]


@pytest.mark.parametrize("compression", [0, GZIP])
def test_a_header_name_that_is_not_utf8_is_read_with_replacement_and_the_batch_is_kept(compression: int) -> None:
    raw = bytes(
        raw_batch(
            [
                (b"k0", b"before", ()),
                (b"k1", b"hostile", ((NOT_UTF8 + b".keel", b"\xff"), (b"ok", None))),
                (None, b"after", ()),
            ],
            compression=compression,
        )
    )
    with pytest.raises(UnicodeDecodeError):
        list(DefaultRecordBatch(raw))  # what every reader of the partition met on every fetch
    batch = kafka_records._Records(raw).next_batch()
    read = list(batch)
    assert [(r.offset, r.key, r.value) for r in read] == [
        (0, b"k0", b"before"),
        (1, b"k1", b"hostile"),
        (2, None, b"after"),
    ]
    assert read[1].headers == [("\ufffd" * len(NOT_UTF8) + ".keel", b"\xff"), ("ok", None)]
    assert (batch.base_offset, batch.next_offset, batch.is_control_batch) == (0, 3, False)  # the rest is aiokafka's


def test_batches_after_one_read_again_keep_their_own_records() -> None:
    first = bytes(raw_batch([(b"k", b"v", ((NOT_UTF8, b"x"),))]))
    second = aiokafka_batch([(b"k2", b"v2", [("h", b"v")], 5)], 0)
    fetched = kafka_records._Records(first + second)
    batches = []
    while fetched.has_next():
        batches.append([seen(r) for r in fetched.next_batch()])
    assert [[(r[0], r[3], r[4]) for r in b] for b in batches] == [[(0, b"k", b"v")], [(0, b"k2", b"v2")]]
    assert batches[1][0][5] == [("h", b"v")]


def test_bytes_that_are_not_a_batch_are_refused() -> None:
    raw = bytearray(raw_batch([(b"k", b"v", ())]))
    with pytest.raises(ValueError, match="runs past|read as"):
        kafka_records.read_batch(bytes(raw[:-1]))


def test_installed_for_every_consumer_of_the_process() -> None:
    import streams.kafka.consumers  # noqa: F401  (installs it)

    assert fetcher.MemoryRecords is kafka_records._Records
