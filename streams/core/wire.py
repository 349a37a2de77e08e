"""Avro values in the Confluent wire format: magic byte 0, a 4-byte big-endian schema id, the body.

Schemas are parsed once (in the catalogue); encoding and decoding here do no schema work per event.
"""

from __future__ import annotations

import io
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro

from streams.core.catalogue import Catalogue, CatalogueSchema
from streams.core.errors import (
    InvalidUtf8,
    MalformedAvro,
    NotConfluentFramed,
    UnexpectedSchema,
    UnknownSchemaId,
)

MAGIC = 0
_HEADER = struct.Struct(">bI")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def encode(schema: CatalogueSchema, value: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    buffer.write(_HEADER.pack(MAGIC, schema.id))
    fastavro.schemaless_writer(buffer, schema.parsed, value)
    return buffer.getvalue()


def epoch_ms(value: datetime | int) -> int:
    """A ``timestamp-millis`` field as decoded (fastavro reads it as an aware datetime) in ms since the
    epoch, exactly (no float on the way)."""
    return value if isinstance(value, int) else (value - _EPOCH) // _MILLISECOND


def read_header(data: bytes) -> int:
    """Return the schema id of a framed value, or raise if it is not Confluent-framed."""
    if len(data) < _HEADER.size:
        raise NotConfluentFramed(f"value is {len(data)} bytes, shorter than the 5-byte wire-format header")
    magic, schema_id = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise NotConfluentFramed(
            f"first byte is {data[0]:#04x}, not the Confluent wire-format magic byte 0x00 "
            "(was the value written without an Avro serializer?)"
        )
    return int(schema_id)


def decode(catalogue: Catalogue, data: bytes, *, subject: str | None = None) -> dict[str, Any]:
    """Decode a framed value; when ``subject`` is given, its schema must belong to that subject."""
    schema_id = read_header(data)
    schema = catalogue.by_id(schema_id)
    if schema is None:
        raise UnknownSchemaId(f"schema id {schema_id} is not in the schema catalogue")
    if subject is not None and schema.subject != subject:
        raise UnexpectedSchema(f"schema id {schema_id} is {schema.subject!r}, expected {subject!r}")
    body = io.BytesIO(data)
    body.seek(_HEADER.size)
    try:
        value = fastavro.schemaless_reader(body, schema.parsed, None)
    except UnicodeDecodeError as exc:
        raise InvalidUtf8(f"a string field is not valid UTF-8: {exc}") from exc
    except (EOFError, ValueError, IndexError, struct.error, OverflowError, MemoryError) as exc:
        raise MalformedAvro(f"body does not match schema {schema.subject} (id {schema_id}): {exc!r}") from exc
    if body.tell() != len(data):
        raise MalformedAvro(
            f"{len(data) - body.tell()} bytes left over after decoding {schema.subject} (id {schema_id})"
        )
    if not isinstance(value, dict):
        raise MalformedAvro(f"decoded value is a {type(value).__name__}, expected a record")
    return value
