"""Records a reader of Keel's topics may find there, written by anyone with access: each with the
reason code a reader that passes it over counts it under (None: harmless, it reads as the good one).

``hostile`` builds them from one good value of the subject the reader reads, so that every reader is
fed the same kinds: no value, no framing, ids of no schema or of another subject, a schema version
this build does not know, bodies cut short or too long, a timestamp no datetime holds, a string that is
not UTF-8, an enum symbol from a newer schema, keys that are huge or not UTF-8, and headers with no
value, bytes that are not UTF-8, or numbers of thousands of digits.
"""

from __future__ import annotations

import copy
import io
import struct
from dataclasses import dataclass
from typing import Any

import fastavro
from aiokafka import AIOKafkaProducer
from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy
from review_samples import decision_with, review_record

from streams.agent.definition import Agent
from streams.contracts.headers import H_RERUN_NUMBER, H_SKIP_MODEL
from streams.core import wire
from streams.core.catalogue import Catalogue, CatalogueSchema
from streams.core.kafka_client import ClientConfig
from streams.core.settings import Settings
from streams.cost.budget import Amount, BudgetLimits, BudgetRequest, Limits
from streams.cost.budget_records import BudgetCodec
from streams.review.records import decision_record

Headers = tuple[tuple[str, bytes | None], ...]
MARK = "\x7fMARK\x7f"  # a string field's placeholder, replaced by bytes that are not UTF-8
NOT_UTF8 = b"\xff\xfe\xfd\xfc\xfb\xfa"
REQUEST_VALUE = {  # a valid value of another subject (keel.request-value, id 1)
    "event_id": "e-other",
    "occurred_at": 1,
    "tenant": "t",
    "source_system": "s",
    "business_key": "k",
    "payload": "{}",
    "trace_id": None,
}


@dataclass(frozen=True, slots=True)
class Hostile:
    name: str
    value: bytes | None
    reason: str | None  # the skip reason a reader counts it under; None: it reads as the good record
    key: bytes | None = None
    headers: Headers = ()


def hostile(
    catalogue: Catalogue,
    subject: str,
    good: dict[str, Any],
    *,
    timestamp: str | None,
    text: str,
    enum: str | None = None,
    headers: Headers = (),
) -> list[Hostile]:
    """Every kind of bad record for a reader of ``subject``, built from ``good`` (a value it reads):
    ``timestamp``, ``text`` and ``enum`` name one timestamp-millis, string and enum field of it (None:
    it has none);
    ``headers`` are the ones a good record carries."""
    schema = catalogue.by_subject(subject)
    framed = wire.encode(schema, good)
    other = catalogue.by_subject("keel.request-value")
    unknown_id = max(s.id for s in _schemas(catalogue)) + 1
    records = [
        Hostile("no value (a tombstone)", None, "wrong_magic_byte"),
        Hostile("an empty value", b"", "wrong_magic_byte"),
        Hostile("JSON, not Avro", b'{"event_id": "x"}', "wrong_magic_byte"),
        Hostile("an id of no schema", b"\x00" + struct.pack(">I", 999_999) + framed[5:], "unknown_schema_id"),
        Hostile(
            "a newer version of the schema", b"\x00" + struct.pack(">I", unknown_id) + framed[5:], "unknown_schema_id"
        ),
        Hostile("a record of another subject", wire.encode(other, REQUEST_VALUE), "unexpected_schema"),
        Hostile("a body cut short", framed[: len(framed) // 2], "malformed_avro"),
        Hostile("bytes left over", framed + b"\x00\x01", "malformed_avro"),
        Hostile("a string that is not UTF-8", _not_utf8(schema, good, text), "invalid_utf8"),
        Hostile("a huge key that is not UTF-8", framed, None, key=NOT_UTF8 * 100_000, headers=headers),
        Hostile("headers with no value and bytes", framed, None, headers=(*headers, ("x", None), ("y", NOT_UTF8))),
    ]
    if timestamp is not None:
        records += [
            Hostile("a timestamp past year 9999", wire.encode(schema, {**good, timestamp: 2**62}), "malformed_avro"),
            Hostile("a timestamp before year 1", wire.encode(schema, {**good, timestamp: -(2**62)}), "malformed_avro"),
        ]
    if enum is not None:
        records.append(Hostile("an enum symbol from a newer schema", _new_symbol(schema, good, enum), "malformed_avro"))
    return records


def hostile_headers(framed: bytes, headers: Headers, *, number: str, text: str, reason: str | None) -> list[Hostile]:
    """A good value with the header ``number`` holding thousands of digits, or None, and ``text`` not
    UTF-8; ``reason``: what a reader that parses them counts (None: it reads them as harmless)."""
    others = tuple((k, v) for k, v in headers if k not in (number, text))
    return [
        Hostile("a header number of 5,000 digits", framed, reason, headers=(*others, (number, b"9" * 5000))),
        Hostile("a header number with no value", framed, None, headers=(*others, (number, None))),
        Hostile("a header that is not UTF-8", framed, reason, headers=(*others, (number, b"2"), (text, NOT_UTF8))),
    ]


def _schemas(catalogue: Catalogue) -> list[CatalogueSchema]:
    ids = range(1, 1000)
    return [s for s in map(catalogue.by_id, ids) if s is not None]


def _not_utf8(schema: CatalogueSchema, good: dict[str, Any], field: str) -> bytes:
    framed = wire.encode(schema, {**good, field: MARK})
    return framed.replace(MARK.encode(), NOT_UTF8[: len(MARK)].ljust(len(MARK), b"\xff"))


def _new_symbol(schema: CatalogueSchema, good: dict[str, Any], field: str) -> bytes:
    """``good`` with ``field`` set to a symbol a newer schema adds, framed with this schema's id."""
    raw = copy.deepcopy(schema.raw)
    enum_type = next(f["type"] for f in raw["fields"] if f["name"] == field)
    enum_type["symbols"].append("from_a_newer_schema")
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(raw), {**good, field: "from_a_newer_schema"})
    return b"\x00" + struct.pack(">I", schema.id) + body.getvalue()


# --- per topic: what the tests of each reader write ----------------------------------------------


def hostile_review_items(catalogue: Catalogue, settings: Settings, agent: Agent) -> list[Hostile]:
    """For ``<agent>.review``: every kind, and review records whose re-run headers are not Keel's (those
    load, as pass 1)."""
    record = review_record(catalogue, settings, agent)
    good = wire.decode(catalogue, record.value)
    return [
        *hostile(catalogue, "keel.review-value", good, timestamp="created_at", text="agent", headers=record.headers),
        *hostile_headers(
            record.value,
            record.headers,
            number=H_RERUN_NUMBER,
            text=H_SKIP_MODEL,
            reason=None,  # loaded, as pass 1
        ),
    ]


def hostile_review_decisions(catalogue: Catalogue, topic: str) -> list[Hostile]:
    """For ``keel.review.decisions`` (the harmless ones decide an item no queue holds)."""
    record = decision_record(catalogue, topic, decision_with(item_id="nobody-knows-it"))
    good = wire.decode(catalogue, record.value)
    return hostile(
        catalogue, "keel.review-decisions-value", good, timestamp="decided_at", text="reviewer", enum="action"
    )


def budget_reservation(
    request_id: str, *, at_ms: int, usd: float = 0.01, scope: str = "agent:support_triage"
) -> BudgetRequest:
    limits = BudgetLimits(Limits(usd=1.0))
    return BudgetRequest("reserve", request_id, scope, at_ms, Amount(usd, 100), limits, at_ms + 60_000)


def hostile_budget_requests(catalogue: Catalogue, *, now_ms: int, partitions: int) -> list[Hostile]:
    """For ``keel.budget.requests``: every kind, and requests that decode with values no worker writes
    (the harmless ones are reservations of 0.01 USD, id ``x``)."""
    codec = BudgetCodec(catalogue)
    good = wire.decode(catalogue, codec.encode_request(budget_reservation("x", at_ms=now_ms), reply_partition=0))
    unexpected = [
        ("a time in year 1", budget_reservation("y", at_ms=-62_135_596_800_000), 0),
        ("a cost that is not a number", budget_reservation("y", at_ms=now_ms, usd=float("nan")), 0),
        ("a negative cost", budget_reservation("y", at_ms=now_ms, usd=-5.0), 0),
        ("an answer to a partition that does not exist", budget_reservation("y", at_ms=now_ms), partitions),
    ]
    return [
        *hostile(catalogue, "keel.budget-requests-value", good, timestamp="at_ms", text="scope", enum="kind"),
        *(Hostile(name, codec.encode_request(r, reply_partition=p), "unexpected_value") for name, r, p in unexpected),
    ]


# --- header names that are not UTF-8 ---------------------------------------------------------------

RawHeaders = tuple[tuple[bytes, bytes | None], ...]


class _RawName(str):
    """A header name that encodes to any bytes: standard clients encode str names as UTF-8, so only
    this builder can write one that is not (as any client speaking the protocol itself can)."""

    raw: bytes

    def __new__(cls, raw: bytes) -> _RawName:
        name = super().__new__(cls, "?")
        name.raw = raw
        return name

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


def raw_batch(records: list[tuple[bytes | None, bytes | None, RawHeaders]], *, compression: int = 0) -> bytearray:
    """One v2 record batch of ``(key, value, headers)``, header names as given, by aiokafka's pure-Python
    builder (its C one refuses names that are not str)."""
    builder = _DefaultRecordBatchBuilderPy(
        2, compression, is_transactional=0, producer_id=-1, producer_epoch=-1, base_sequence=-1, batch_size=1 << 24
    )
    for offset, (key, value, headers) in enumerate(records):
        named = [(_RawName(name), v) for name, v in headers]
        builder.append(offset, timestamp=None, key=key, value=value, headers=named)  # type: ignore[arg-type]
    return builder.build()


async def send_raw_batch(
    kafka: ClientConfig, topic: str, partition: int, records: list[tuple[bytes | None, bytes | None, RawHeaders]]
) -> int:
    """Write ``records`` as one batch to ``topic``/``partition``; the first one's offset."""
    producer = AIOKafkaProducer(**kafka.kwargs(), enable_idempotence=False)
    await producer.start()
    try:
        batch = producer.create_batch()
        batch._builder = _DefaultRecordBatchBuilderPy(  # type: ignore[assignment]
            2, 0, is_transactional=0, producer_id=-1, producer_epoch=-1, base_sequence=0, batch_size=1 << 24
        )
        for key, value, headers in records:
            named = [(_RawName(name), v) for name, v in headers]
            batch.append(timestamp=None, key=key, value=value, headers=named)
        sent = await (await producer.send_batch(batch, topic, partition=partition))
        return int(sent.offset)
    finally:
        await producer.stop()
