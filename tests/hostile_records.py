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

from streams import wire
from streams.catalogue import Catalogue, CatalogueSchema

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
